/**
 * The one validated configuration object. Every default lives here and nowhere else.
 * Values come from the environment (and `.env`, loaded by the entry points).
 */
import { isIP } from 'node:net';
import path from 'node:path';
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
  VEIL_MIGRATE_ON_START: bool.default(true),
  VEIL_SEED: z.enum(['on', 'off']).default('on'),
  ADMIN_PORT: port.default(3001),
  ADMIN_HOST: z.string().min(1).default('127.0.0.1'),
  ADMIN_TOKEN: optionalString.pipe(z.string().min(16, 'must be at least 16 characters').optional()),
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
  migrateOnStart: boolean;
  seed: boolean;
  admin: { host: string; port: number; token: string | undefined };
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
  argon2: { memoryCost: number; timeCost: number; parallelism: number };
  brand: { name: string; logoUrl: string | undefined; color: string };
  logLevel: Env['LOG_LEVEL'];
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
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
  if (production) {
    if (!e.DATABASE_URL) problems.push('DATABASE_URL: required when NODE_ENV=production (embedded PGlite is for development)');
    if (!e.REDIS_URL) problems.push('REDIS_URL: required when NODE_ENV=production (the in-process store is for development)');
    if (!issuer.startsWith('https://')) problems.push('ISSUER: must be https:// when NODE_ENV=production');
    if (!e.COOKIE_KEYS) problems.push('COOKIE_KEYS: required when NODE_ENV=production');
    if (e.VEIL_SEED === 'on' && source.VEIL_SEED !== undefined) problems.push('VEIL_SEED: dev seeding is refused when NODE_ENV=production');
  }
  if (!isLoopback(e.ADMIN_HOST) && !e.ADMIN_TOKEN) {
    problems.push(`ADMIN_TOKEN: required when ADMIN_HOST (${e.ADMIN_HOST}) is not a loopback address`);
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
    migrateOnStart: e.VEIL_MIGRATE_ON_START,
    // Seeding only ever happens against embedded stores and never in production.
    seed: e.VEIL_SEED === 'on' && !production && !e.DATABASE_URL,
    admin: { host: e.ADMIN_HOST, port: e.ADMIN_PORT, token: e.ADMIN_TOKEN },
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
    argon2: { memoryCost: e.ARGON2_MEMORY_KIB, timeCost: e.ARGON2_ITERATIONS, parallelism: e.ARGON2_PARALLELISM },
    brand: { name: e.BRAND_NAME, logoUrl: e.BRAND_LOGO_URL, color: e.BRAND_COLOR },
    logLevel: e.LOG_LEVEL,
  };
}
