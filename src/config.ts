/**
 * The one validated configuration object. Every default lives here and nowhere else.
 * Values come from the environment (and `.env`, loaded by the entry points).
 */
import fs from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { z } from 'zod';

const bool = z
  .enum(['true', 'false', '1', '0', 'on', 'off', 'yes', 'no'])
  .transform((v) => ['true', '1', 'on', 'yes'].includes(v));

const port = z.coerce.number().int().min(0).max(65535);
const seconds = z.coerce.number().int().positive();
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: port.default(3000),
  HOST: z.string().min(1).default('0.0.0.0'),
  // Unset: http://localhost:<PORT> (derived in loadConfig so it follows PORT).
  ISSUER: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
  DATABASE_URL: optionalString.pipe(
    z.url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// or postgresql:// URL' }).optional(),
  ),
  REDIS_URL: optionalString.pipe(
    z.url({ protocol: /^rediss?$/, error: 'must be a redis:// or rediss:// URL' }).optional(),
  ),
  REDIS_KEY_PREFIX: z.string().default('veil:'),
  VEIL_DATA_DIR: z.string().min(1).default('.veil-data'),
  KEYS_DIR: z.string().min(1).default('keys'),
  /** Master key(s) protecting secrets at rest: base64url 32-byte keys, current first ("new,old" while rotating). */
  VEIL_MASTER_KEY: z.string().min(1).optional(),
  VEIL_MASTER_KEY_FILE: z.string().min(1).optional(),
  /** How often each process checks KEYS_DIR for rotated signing keys (rotations through the admin API are announced at once). */
  KEYS_RELOAD_SECONDS: seconds.default(10),
  VEIL_MIGRATE_ON_START: bool.default(true),
  VEIL_SEED: z.enum(['on', 'off']).default('on'),
  ADMIN_PORT: port.default(3001),
  ADMIN_HOST: z.string().min(1).default('127.0.0.1'),
  ADMIN_TOKEN: optionalString.pipe(z.string().min(16, 'must be at least 16 characters').optional()),
  /** A file holding the admin token (a mounted secret); neither set: generated into KEYS_DIR/admin-token. */
  ADMIN_TOKEN_FILE: optionalString,
  /** Extra Host names the admin listener answers to (a proxy's name), comma-separated host[:port]. */
  ADMIN_ALLOWED_HOSTS: optionalString.transform((v) => v?.split(',').map((h) => h.trim().toLowerCase()).filter(Boolean) ?? []).pipe(
    z.array(z.string().regex(/^([a-z0-9.-]+|\[[0-9a-f:.]+\])(:[0-9]{1,5})?$/, 'each entry must be host or host:port')),
  ),
  /** TLS on the admin listener (PEM files); required when ADMIN_HOST is not loopback. */
  ADMIN_TLS_CERT: optionalString,
  ADMIN_TLS_KEY: optionalString,
  COOKIE_KEYS: optionalString.transform((v) => v?.split(',').map((k) => k.trim()).filter(Boolean)).pipe(
    z.array(z.string().min(32, 'each key must be at least 32 characters')).optional(),
  ),
  ACCESS_TOKEN_TTL: seconds.default(600),
  AUTHORIZATION_CODE_TTL: seconds.default(60),
  ID_TOKEN_TTL: seconds.default(3600),
  REFRESH_TOKEN_TTL: seconds.default(14 * 24 * 3600),
  SESSION_TTL: seconds.default(14 * 24 * 3600),
  INTERACTION_TTL: seconds.default(3600),
  GRANT_TTL: seconds.default(365 * 24 * 3600),
  RESOURCE_JWKS_CACHE_SECONDS: seconds.default(300),
  RESOURCE_JWKS_COOLDOWN_SECONDS: seconds.default(30),
  /** Let jwks_uri fetches reach loopback, private (RFC 1918, CGNAT) and ULA addresses: development and tests. */
  RESOURCE_JWKS_ALLOW_PRIVATE: bool.default(false),
  ARGON2_MEMORY_KIB: z.coerce.number().int().min(19456, 'must be at least 19456 (OWASP minimum)').default(19456),
  ARGON2_ITERATIONS: z.coerce.number().int().min(2, 'must be at least 2 (OWASP minimum)').default(2),
  ARGON2_PARALLELISM: z.coerce.number().int().min(1).max(16).default(1),
  BRAND_NAME: z.string().min(1).default('Veil'),
  BRAND_LOGO_URL: optionalString.pipe(z.string().refine((v) => /^(https:\/\/|\/)/.test(v), 'must be an https:// URL or a path').optional()),
  BRAND_COLOR: z
    .string()
    .regex(/^#[0-9a-fA-F]{6}$/, 'must be a hex colour such as #4f46e5')
    .default('#4f46e5'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  LOGIN_MAX_FAILURES_PER_ACCOUNT: z.coerce.number().int().positive().default(5),
  LOGIN_MAX_FAILURES_PER_IP: z.coerce.number().int().positive().default(20),
  LOGIN_LOCK_SECONDS: seconds.default(15 * 60),
  LOGIN_ACCOUNT_DELAY_AFTER: z.coerce.number().int().positive().default(10),
  LOGIN_ACCOUNT_MAX_DELAY_SECONDS: z.coerce.number().int().positive().default(60),
  TOKEN_RATE_LIMIT_PER_CLIENT: z.coerce.number().int().positive().default(100),
  TOKEN_RATE_LIMIT_PER_ADDRESS: z.coerce.number().int().positive().default(500),
  // Worker processes; "auto" is one per core. Unset or empty: 1 (no cluster).
  WEB_CONCURRENCY: optionalString.pipe(
    z
      .string()
      .regex(/^(auto|[1-9][0-9]{0,2})$/, 'must be a whole number from 1 to 999, or "auto" (one worker per core)')
      .optional(),
  ),
  TLS_CERT: optionalString,
  TLS_KEY: optionalString,
  TRUST_PROXY: bool.default(false),
  SHUTDOWN_TIMEOUT_SECONDS: seconds.default(10),
});

export type Env = z.infer<typeof envSchema>;

export interface VeilConfig {
  env: Env['NODE_ENV'];
  production: boolean;
  http: { host: string; port: number };
  issuer: string;
  database: { kind: 'postgres'; url: string } | { kind: 'pglite'; dataDir: string };
  redis: { kind: 'redis'; url: string; keyPrefix: string } | { kind: 'memory'; keyPrefix: string };
  dataDir: string;
  keysDir: string;
  masterKey: { value: string | undefined; file: string | undefined };
  keysReloadSeconds: number;
  migrateOnStart: boolean;
  seed: boolean;
  admin: {
    host: string;
    port: number;
    /** ADMIN_TOKEN or the content of ADMIN_TOKEN_FILE; undefined: generated into KEYS_DIR/admin-token at start. */
    token: string | undefined;
    /** Host header values served besides the bind address and localhost (lower case, host or host:port). */
    allowedHosts: string[];
    tls: { certFile: string; keyFile: string; cert: Buffer; key: Buffer } | undefined;
  };
  cookieKeys: string[] | undefined;
  ttl: {
    accessToken: number;
    authorizationCode: number;
    idToken: number;
    refreshToken: number;
    session: number;
    interaction: number;
    grant: number;
  };
  /**
   * How resource servers' jwks_uri key sets are cached and how often they may be re-fetched;
   * `allowPrivate` lets every jwks_uri (resource servers' and clients') reach loopback and private addresses.
   */
  resourceJwks: { cacheSeconds: number; cooldownSeconds: number; allowPrivate: boolean };
  argon2: { memoryCost: number; timeCost: number; parallelism: number };
  brand: { name: string; logoUrl: string | undefined; color: string };
  logLevel: Env['LOG_LEVEL'];
  /** `auto`: readable lines when standard output is a terminal (outside production and CI), JSON otherwise. */
  logFormat: Env['LOG_FORMAT'];
  throttle: {
    login: {
      /** Failures for one email from one address that lock that pair. */
      maxFailuresPerAccount: number;
      maxFailuresPerIp: number;
      lockSeconds: number;
      /** Failures for one email from anywhere after which each attempt waits a doubling delay. */
      accountDelayAfter: number;
      accountMaxDelaySeconds: number;
    };
    /** Requests per second per client at /token and /token/introspection. */
    tokenPerClient: number;
    /** Requests per second per address there, whatever client id is claimed. */
    tokenPerAddress: number;
  };
  /** Worker processes (`node:cluster`) over the shared stores; 1 runs Veil in this process. */
  workers: number;
  /** TLS on the public listener, read from TLS_CERT / TLS_KEY (PEM) when the config is loaded. */
  tls: { certFile: string; keyFile: string; cert: Buffer; key: Buffer } | undefined;
  /** Behind one TLS-terminating proxy: honour X-Forwarded-Proto/-Host, client address from X-Forwarded-For. */
  trustProxy: boolean;
  /** How long a shutdown waits for in-flight requests before cutting their connections. */
  shutdownTimeoutSeconds: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

/** Reads the PEM pair and checks that Node can use it; a problem is reported, not thrown. */
function readTls(certFile: string, keyFile: string, problems: string[], names = { cert: 'TLS_CERT', key: 'TLS_KEY' }): VeilConfig['tls'] {
  const read = (name: string, file: string) => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      problems.push(`${name}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      return undefined;
    }
  };
  const cert = read(names.cert, certFile);
  const key = read(names.key, keyFile);
  if (!cert || !key) return undefined;
  try {
    tls.createSecureContext({ cert, key });
  } catch (err) {
    problems.push(`${names.cert}/${names.key}: not a usable PEM certificate and matching private key (${(err as Error).message})`);
    return undefined;
  }
  return { certFile, keyFile, cert, key };
}

/** ADMIN_TOKEN, or the first line of ADMIN_TOKEN_FILE (never quoted in a problem: it is a secret). */
function readAdminToken(e: Env, problems: string[]): string | undefined {
  if (e.ADMIN_TOKEN && e.ADMIN_TOKEN_FILE) {
    problems.push('ADMIN_TOKEN and ADMIN_TOKEN_FILE: set one, not both');
    return undefined;
  }
  if (!e.ADMIN_TOKEN_FILE) return e.ADMIN_TOKEN;
  let token: string;
  try {
    token = fs.readFileSync(path.resolve(e.ADMIN_TOKEN_FILE), 'utf8').trim();
  } catch (err) {
    problems.push(`ADMIN_TOKEN_FILE: cannot read ${e.ADMIN_TOKEN_FILE} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    return undefined;
  }
  if (!/^[\x21-\x7e]{16,}$/.test(token)) {
    problems.push(`ADMIN_TOKEN_FILE: ${e.ADMIN_TOKEN_FILE} must hold one token of at least 16 printable characters`);
    return undefined;
  }
  return token;
}

/** Parse and validate; throws ConfigError naming every offending variable. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): VeilConfig {
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const production = e.NODE_ENV === 'production';
  const dataDir = path.resolve(e.VEIL_DATA_DIR);
  const issuer = (e.ISSUER ?? `http://localhost:${e.PORT}`).replace(/\/+$/, '');

  const problems: string[] = [];
  let tlsFiles: VeilConfig['tls'];
  if (e.TLS_CERT && e.TLS_KEY) tlsFiles = readTls(path.resolve(e.TLS_CERT), path.resolve(e.TLS_KEY), problems);
  else if (e.TLS_CERT) problems.push('TLS_KEY: required with TLS_CERT (set both, or neither)');
  else if (e.TLS_KEY) problems.push('TLS_CERT: required with TLS_KEY (set both, or neither)');
  const workers = e.WEB_CONCURRENCY === 'auto' ? os.availableParallelism() : Number(e.WEB_CONCURRENCY ?? 1);
  if (workers > 1) {
    const missing = [e.DATABASE_URL ? '' : 'DATABASE_URL', e.REDIS_URL ? '' : 'REDIS_URL'].filter(Boolean);
    if (missing.length) {
      problems.push(
        `WEB_CONCURRENCY: ${workers} workers need shared stores; set ${missing.join(' and ')} (embedded PGlite and the in-process store cannot be shared between processes)`,
      );
    }
  }
  if (production) {
    if (!e.DATABASE_URL) problems.push('DATABASE_URL: required when NODE_ENV=production (embedded PGlite is for development)');
    if (!e.REDIS_URL) problems.push('REDIS_URL: required when NODE_ENV=production (the in-process store is for development)');
    if (!issuer.startsWith('https://')) problems.push('ISSUER: must be https:// when NODE_ENV=production');
    if (!e.COOKIE_KEYS) problems.push('COOKIE_KEYS: required when NODE_ENV=production');
    if (!e.VEIL_MASTER_KEY && !e.VEIL_MASTER_KEY_FILE) problems.push('VEIL_MASTER_KEY or VEIL_MASTER_KEY_FILE: required when NODE_ENV=production (it encrypts keys and secrets at rest)');
    if (issuer.startsWith('https://') && !e.TLS_CERT && !e.TLS_KEY && !e.TRUST_PROXY) {
      problems.push(
        'TLS_CERT/TLS_KEY or TRUST_PROXY: neither is set; with NODE_ENV=production and an https ISSUER, set TLS_CERT and TLS_KEY (Veil terminates TLS) or TRUST_PROXY=true (a proxy terminates TLS)',
      );
    }
    if (e.VEIL_SEED === 'on' && source.VEIL_SEED !== undefined) problems.push('VEIL_SEED: dev seeding is refused when NODE_ENV=production');
  }
  if (e.VEIL_MASTER_KEY && e.VEIL_MASTER_KEY_FILE) problems.push('VEIL_MASTER_KEY and VEIL_MASTER_KEY_FILE: set one, not both');
  const adminToken = readAdminToken(e, problems);
  let adminTls: VeilConfig['admin']['tls'];
  const adminTlsNames = { cert: 'ADMIN_TLS_CERT', key: 'ADMIN_TLS_KEY' };
  if (e.ADMIN_TLS_CERT && e.ADMIN_TLS_KEY) adminTls = readTls(path.resolve(e.ADMIN_TLS_CERT), path.resolve(e.ADMIN_TLS_KEY), problems, adminTlsNames);
  else if (e.ADMIN_TLS_CERT) problems.push('ADMIN_TLS_KEY: required with ADMIN_TLS_CERT (set both, or neither)');
  else if (e.ADMIN_TLS_KEY) problems.push('ADMIN_TLS_CERT: required with ADMIN_TLS_KEY (set both, or neither)');
  // Off loopback the token crosses a network: it must be one the operator chose and handed out
  // (a generated file is only readable on this machine), and it must travel inside TLS.
  if (!isLoopback(e.ADMIN_HOST)) {
    if (!e.ADMIN_TOKEN && !e.ADMIN_TOKEN_FILE) {
      problems.push(`ADMIN_TOKEN or ADMIN_TOKEN_FILE: required when ADMIN_HOST (${e.ADMIN_HOST}) is not a loopback address`);
    }
    if (!e.ADMIN_TLS_CERT && !e.ADMIN_TLS_KEY) {
      problems.push(`ADMIN_TLS_CERT/ADMIN_TLS_KEY: required when ADMIN_HOST (${e.ADMIN_HOST}) is not a loopback address (the admin token must not cross a network in clear text)`);
    }
  }
  if (problems.length) throw new ConfigError(`invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);

  return {
    env: e.NODE_ENV,
    production,
    http: { host: e.HOST, port: e.PORT },
    issuer,
    database: e.DATABASE_URL
      ? { kind: 'postgres', url: e.DATABASE_URL }
      : { kind: 'pglite', dataDir: path.join(dataDir, 'pglite') },
    redis: e.REDIS_URL
      ? { kind: 'redis', url: e.REDIS_URL, keyPrefix: e.REDIS_KEY_PREFIX }
      : { kind: 'memory', keyPrefix: e.REDIS_KEY_PREFIX },
    dataDir,
    keysDir: path.resolve(e.KEYS_DIR),
    masterKey: { value: e.VEIL_MASTER_KEY, file: e.VEIL_MASTER_KEY_FILE && path.resolve(e.VEIL_MASTER_KEY_FILE) },
    keysReloadSeconds: e.KEYS_RELOAD_SECONDS,
    migrateOnStart: e.VEIL_MIGRATE_ON_START,
    // Seeding only ever happens against embedded stores and never in production.
    seed: e.VEIL_SEED === 'on' && !production && !e.DATABASE_URL,
    admin: { host: e.ADMIN_HOST, port: e.ADMIN_PORT, token: adminToken, allowedHosts: e.ADMIN_ALLOWED_HOSTS, tls: adminTls },
    cookieKeys: e.COOKIE_KEYS,
    ttl: {
      accessToken: e.ACCESS_TOKEN_TTL,
      authorizationCode: e.AUTHORIZATION_CODE_TTL,
      idToken: e.ID_TOKEN_TTL,
      refreshToken: e.REFRESH_TOKEN_TTL,
      session: e.SESSION_TTL,
      interaction: e.INTERACTION_TTL,
      grant: e.GRANT_TTL,
    },
    resourceJwks: { cacheSeconds: e.RESOURCE_JWKS_CACHE_SECONDS, cooldownSeconds: e.RESOURCE_JWKS_COOLDOWN_SECONDS, allowPrivate: e.RESOURCE_JWKS_ALLOW_PRIVATE },
    argon2: { memoryCost: e.ARGON2_MEMORY_KIB, timeCost: e.ARGON2_ITERATIONS, parallelism: e.ARGON2_PARALLELISM },
    brand: { name: e.BRAND_NAME, logoUrl: e.BRAND_LOGO_URL, color: e.BRAND_COLOR },
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    throttle: {
      login: {
        maxFailuresPerAccount: e.LOGIN_MAX_FAILURES_PER_ACCOUNT,
        maxFailuresPerIp: e.LOGIN_MAX_FAILURES_PER_IP,
        lockSeconds: e.LOGIN_LOCK_SECONDS,
        accountDelayAfter: e.LOGIN_ACCOUNT_DELAY_AFTER,
        accountMaxDelaySeconds: e.LOGIN_ACCOUNT_MAX_DELAY_SECONDS,
      },
      tokenPerClient: e.TOKEN_RATE_LIMIT_PER_CLIENT,
      tokenPerAddress: e.TOKEN_RATE_LIMIT_PER_ADDRESS,
    },
    workers,
    tls: tlsFiles,
    trustProxy: e.TRUST_PROXY,
    shutdownTimeoutSeconds: e.SHUTDOWN_TIMEOUT_SECONDS,
  };
}
