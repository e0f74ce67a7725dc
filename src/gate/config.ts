/**
 * The gate's configuration: a JSON file (the issue's shape, extended, never renamed) validated
 * with zod, then a few keys overridden from the environment. Every error names the file, the
 * JSON path inside it and the problem (`gate.json: routes[0].scopes.all: expected an array of
 * strings`); file paths in the file are resolved relative to the file's directory. Secrets are
 * read here (client secret, introspection secrets) so a missing file is a start-up error; the
 * decryption keys are read by `startGate` (src/gate/verifiers.ts), which names the file too.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { VeilError } from '../errors/veil-error.js';
import { requireRuleProblems, requireRuleSchema } from './policy-rules.js';

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** A configuration the gate cannot run with; the message says where and why. */
export class GateConfigError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('invalid_config', message, options);
  }
}

/** RFC 9110 §5.1 field name (token). */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 6749 §3.3 scope-token. */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
/** Route names become metric labels: short and plain. */
const ROUTE_NAME = /^[A-Za-z0-9_.:/*-]{1,80}$/;

/**
 * Headers the gate answers itself or that carry credentials or framing: a route may not map a
 * claim onto them (the gateway would copy a claim into, say, Authorization or Cookie).
 */
const RESERVED_HEADERS = new Set([
  'authorization',
  'x-veil-authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'host',
  'content-length',
  'content-type',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'www-authenticate',
  'location',
  'x-envoy-auth-headers-to-remove',
]);

const nonEmpty = (what: string) => z.string({ error: `expected ${what}` }).min(1, { error: `expected ${what}` });
const httpUrl = (what: string) =>
  z.string({ error: `expected ${what} (an http or https URL)` }).refine((v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol), {
    error: `expected ${what} (an http or https URL)`,
  });
const stringList = (what = 'an array of strings') => z.array(z.string({ error: `expected ${what}` }), { error: `expected ${what}` });
const scopeList = stringList().refine((list) => list.every((s) => SCOPE_TOKEN.test(s)), { error: 'scopes must be non-empty and without spaces, quotes or backslashes' });
const filePath = (what: string) => nonEmpty(`${what} (a file path)`);

const audienceSchema = z.strictObject({
  identifier: nonEmpty('the API identifier (its resource URI)'),
  decryptionKeys: z
    .array(filePath('a private JWK or JWK Set file'), { error: 'expected an array of key file paths' })
    .min(1, { error: 'expected at least one decryption key file' }),
  /** The API's introspection credentials (`veil resources create` prints them); needed with `introspect.enabled`. */
  introspection: z.strictObject({ clientId: nonEmpty('the introspection client id'), secretFile: filePath('the introspection secret file') }).optional(),
});

const exchangeSchema = z.strictObject({
  resource: nonEmpty('the internal service resource identifier'),
  scope: z
    .string({ error: 'expected a space-separated scope string' })
    .refine((v) => v.split(' ').every((s) => SCOPE_TOKEN.test(s)), { error: 'expected scope tokens separated by single spaces' })
    .optional(),
});

const routeSchema = z.strictObject({
  /** The route's label in metrics and logs. Default: host + path (or pattern). */
  name: z.string({ error: 'expected a string' }).regex(ROUTE_NAME, { error: 'expected 1-80 letters, digits or _ . : / * -' }).optional(),
  /** Exact host name (case-insensitive, port ignored unless given) or `*.example.com`; absent: any host. */
  host: nonEmpty('a host name').optional(),
  /** Path prefix (a trailing `*` is implied): `/orders` matches `/orders`, `/orders/1`, `/orders-old`. */
  path: z
    .string({ error: 'expected a path starting with /' })
    .refine((v) => v.startsWith('/'), { error: 'expected a path starting with /' })
    .optional(),
  /** A JavaScript regular expression the whole normalised path must match (anchored at both ends); instead of `path`. */
  pattern: z
    .string({ error: 'expected a regular expression string' })
    .refine(
      (v) => {
        try {
          new RegExp(v);
          return true;
        } catch {
          return false;
        }
      },
      { error: 'expected a valid regular expression' },
    )
    .optional(),
  /** Methods this route allows; absent: every method. */
  methods: z
    .array(z.enum(HTTP_METHODS, { error: `expected one of ${HTTP_METHODS.join(', ')}` }), { error: 'expected an array of HTTP methods' })
    .min(1, { error: 'expected at least one method' })
    .optional(),
  /** Let requests through without a token (nothing forwarded upstream, Authorization stripped unless kept). */
  public: z.boolean({ error: 'expected true or false' }).default(false),
  /** Which `audiences[].identifier` the route's tokens are for. */
  audience: nonEmpty('an audience identifier').optional(),
  scopes: z
    .strictObject({
      /** Every one of these. */
      all: scopeList.optional(),
      /** At least one of these. */
      any: scopeList.refine((l) => l.length > 0, { error: 'expected at least one scope' }).optional(),
    })
    .optional(),
  /** Claim name → header name. `scope` comes as the space-separated string. */
  headers: z
    .record(
      z.string(),
      z
        .string({ error: 'expected a header name' })
        .regex(HEADER_NAME, { error: 'expected a header name' })
        .refine((h) => !RESERVED_HEADERS.has(h.toLowerCase()), { error: 'this header name is reserved' }),
      { error: 'expected an object of claim name to header name' },
    )
    .default({}),
  /** Pass the incoming Authorization upstream (default: the gateway removes it). */
  keepAuthorization: z.boolean({ error: 'expected true or false' }).default(false),
  exchange: exchangeSchema.optional(),
  /** Policy decisions on confidential claims, decided by Veil through the gate's client (policy-rules.ts). */
  require: z.array(requireRuleSchema, { error: 'expected an array of policy rules' }).min(1, { error: 'expected at least one policy rule' }).optional(),
});

const fileSchema = z.strictObject({
  issuer: httpUrl('the issuer'),
  listen: z
    .strictObject({
      host: nonEmpty('a host').default('127.0.0.1'),
      port: z.number({ error: 'expected a port number' }).int({ error: 'expected a port number' }).min(0).max(65535).default(3400),
    })
    .default({ host: '127.0.0.1', port: 3400 }),
  /** Default: `${issuer}/jwks` (Veil's jwks_uri). */
  jwksUri: httpUrl('the JWKS URI').optional(),
  /** Default: the issuer's discovery document's token_endpoint. */
  tokenEndpoint: httpUrl('the token endpoint').optional(),
  /** Default: the issuer's discovery document's introspection_endpoint (Veil: `${issuer}/token/introspection`). */
  introspectionEndpoint: httpUrl('the introspection endpoint').optional(),
  audiences: z.array(audienceSchema, { error: 'expected an array of audiences' }).min(1, { error: 'expected at least one audience' }),
  /** The gate's own client at Veil, for token exchange. The secret: `secretFile`, or `GATE_CLIENT_SECRET`. */
  client: z.strictObject({ id: nonEmpty('the client id'), secretFile: filePath('the client secret file').optional() }).optional(),
  introspect: z
    .strictObject({
      enabled: z.boolean({ error: 'expected true or false' }).default(false),
      cacheSeconds: z.number({ error: 'expected a number of seconds' }).min(0).max(300).default(5),
    })
    .default({ enabled: false, cacheSeconds: 5 }),
  /** The SDK's verified-token cache. */
  cache: z
    .strictObject({
      maxEntries: z.number({ error: 'expected a number' }).int().min(1).default(10_000),
      maxAgeSeconds: z.number({ error: 'expected a number of seconds' }).min(1).default(60),
    })
    .default({ maxEntries: 10_000, maxAgeSeconds: 60 }),
  /** How long a shutdown waits for checks in flight. */
  shutdownTimeoutSeconds: z.number({ error: 'expected a number of seconds' }).min(0).default(10),
  routes: z.array(routeSchema, { error: 'expected an array of routes' }).min(1, { error: 'expected at least one route' }),
});

type FileConfig = z.infer<typeof fileSchema>;
export type GateRouteConfig = z.infer<typeof routeSchema> & { name: string };
export type GateAudienceConfig = Omit<z.infer<typeof audienceSchema>, 'introspection'> & {
  /** Introspection credentials, secret read. */
  introspection?: { clientId: string; clientSecret: string };
};

/** The parsed configuration: paths absolute, secrets read, defaults filled. */
export interface GateConfig extends Omit<FileConfig, 'routes' | 'audiences' | 'client'> {
  audiences: GateAudienceConfig[];
  routes: GateRouteConfig[];
  /** The gate's client at Veil (for token exchange, and introspection without an API's own credentials); present when its secret is. */
  client?: { id: string; secret: string };
}

/** `routes[0].scopes.all` from zod's path. */
export function jsonPath(parts: readonly PropertyKey[]): string {
  let out = '';
  for (const part of parts) out += typeof part === 'number' ? `[${part}]` : `${out ? '.' : ''}${String(part)}`;
  return out || '(top level)';
}

/** Environment keys applied over the file, before validation (the same keys through env). */
const ENV_OVERRIDES: ReadonlyArray<{ name: string; path: string[]; parse: (v: string) => unknown }> = [
  { name: 'GATE_ISSUER', path: ['issuer'], parse: (v) => v },
  { name: 'GATE_LISTEN_HOST', path: ['listen', 'host'], parse: (v) => v },
  { name: 'GATE_LISTEN_PORT', path: ['listen', 'port'], parse: (v) => (/^\d+$/.test(v) ? Number(v) : v) },
  { name: 'GATE_CLIENT_ID', path: ['client', 'id'], parse: (v) => v },
  { name: 'GATE_CLIENT_SECRET_FILE', path: ['client', 'secretFile'], parse: (v) => v },
  { name: 'GATE_INTROSPECT_ENABLED', path: ['introspect', 'enabled'], parse: (v) => (/^(true|1|on|yes)$/i.test(v) ? true : /^(false|0|off|no)$/i.test(v) ? false : v) },
  { name: 'GATE_INTROSPECT_CACHE_SECONDS', path: ['introspect', 'cacheSeconds'], parse: (v) => (/^\d+(\.\d+)?$/.test(v) ? Number(v) : v) },
  { name: 'GATE_TOKEN_ENDPOINT', path: ['tokenEndpoint'], parse: (v) => v },
  { name: 'GATE_INTROSPECTION_ENDPOINT', path: ['introspectionEndpoint'], parse: (v) => v },
  { name: 'GATE_JWKS_URI', path: ['jwksUri'], parse: (v) => v },
];

function applyEnv(raw: unknown, env: NodeJS.ProcessEnv): { value: unknown; sources: Map<string, string> } {
  const sources = new Map<string, string>();
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { value: raw, sources };
  const value = structuredClone(raw) as Record<string, unknown>;
  for (const { name, path: keys, parse } of ENV_OVERRIDES) {
    const given = env[name]?.trim();
    if (!given) continue;
    let node = value;
    for (const key of keys.slice(0, -1)) {
      if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
      node = node[key] as Record<string, unknown>;
    }
    node[keys.at(-1)!] = parse(given);
    sources.set(jsonPath(keys), name);
  }
  return { value, sources };
}

async function readSecret(file: string, where: string): Promise<string> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new GateConfigError(`${where}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
  const secret = text.trim();
  if (!secret) throw new GateConfigError(`${where}: ${file} is empty`);
  return secret;
}

/** Cross-field rules zod's per-field schemas cannot see; each names its path. */
function checkRoutes(config: FileConfig, hasClientSecret: boolean): Array<{ path: PropertyKey[]; message: string }> {
  const problems: Array<{ path: PropertyKey[]; message: string }> = [];
  const needsClientSecret = config.introspect.enabled && config.audiences.some((a) => !a.introspection);
  if (needsClientSecret && config.client && !config.client.secretFile && !hasClientSecret) {
    problems.push({ path: ['client', 'secretFile'], message: 'required to introspect as the client (or set GATE_CLIENT_SECRET)' });
  }
  const audiences = new Set<string>();
  config.audiences.forEach((a, i) => {
    if (audiences.has(a.identifier)) problems.push({ path: ['audiences', i, 'identifier'], message: `duplicate audience ${a.identifier}` });
    audiences.add(a.identifier);
    // Without the API's own credentials the gate introspects as its client (Veil lets a client
    // introspect the tokens of the APIs in its exchange_from).
    if (config.introspect.enabled && !a.introspection && !config.client) {
      problems.push({
        path: ['audiences', i, 'introspection'],
        message:
          "required when introspect.enabled is true (the API introspection clientId and secretFile), unless the gate's client (with this API in its exchange_from) is configured",
      });
    }
  });
  const names = new Set<string>();
  config.routes.forEach((r, i) => {
    const at = (...rest: PropertyKey[]) => ['routes', i, ...rest];
    if (r.path !== undefined && r.pattern !== undefined) problems.push({ path: at('pattern'), message: 'give either path or pattern, not both' });
    if (r.name !== undefined) {
      if (names.has(r.name)) problems.push({ path: at('name'), message: `duplicate route name ${r.name}` });
      names.add(r.name);
    }
    problems.push(...requireRuleProblems(r, at, config.client, hasClientSecret));
    if (r.public) {
      for (const key of ['audience', 'scopes', 'exchange'] as const) {
        if (r[key] !== undefined) problems.push({ path: at(key), message: 'a public route takes no token, so it cannot have one' });
      }
      if (Object.keys(r.headers).length) problems.push({ path: at('headers'), message: 'a public route takes no token, so it has no claims to forward' });
      return;
    }
    if (r.audience === undefined) problems.push({ path: at('audience'), message: 'required (one of audiences[].identifier), unless the route is public' });
    else if (!audiences.has(r.audience)) problems.push({ path: at('audience'), message: `${r.audience} is not one of audiences[].identifier` });
    const seen = new Map<string, string>();
    for (const [claim, header] of Object.entries(r.headers)) {
      const key = header.toLowerCase();
      if (seen.has(key)) problems.push({ path: at('headers', claim), message: `header ${header} is already used for claim ${seen.get(key)}` });
      seen.set(key, claim);
    }
    if (r.exchange && r.keepAuthorization) problems.push({ path: at('keepAuthorization'), message: 'an exchange route passes the exchanged token, not the incoming one' });
    if (r.exchange && !config.client)
      problems.push({ path: ['client'], message: `required by routes[${i}].exchange (the gate's client id and secretFile, or GATE_CLIENT_SECRET)` });
    else if (r.exchange && !config.client?.secretFile && !hasClientSecret) {
      problems.push({ path: ['client', 'secretFile'], message: `required by routes[${i}].exchange (or set GATE_CLIENT_SECRET)` });
    }
  });
  return problems;
}

const defaultRouteName = (r: z.infer<typeof routeSchema>, i: number) => {
  const name = `${r.host ?? '*'}${r.path ?? (r.pattern !== undefined ? `~${r.pattern}` : '/')}`;
  return ROUTE_NAME.test(name) ? name : `routes[${i}]`;
};

/**
 * Reads and validates the configuration file. `env` supplies GATE_CLIENT_SECRET and the
 * overrides above (GATE_ISSUER, GATE_LISTEN_HOST/PORT, GATE_CLIENT_ID, GATE_CLIENT_SECRET_FILE,
 * GATE_INTROSPECT_ENABLED, GATE_INTROSPECT_CACHE_SECONDS, GATE_TOKEN_ENDPOINT,
 * GATE_INTROSPECTION_ENDPOINT, GATE_JWKS_URI).
 */
export async function loadGateConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<GateConfig> {
  const name = path.basename(file);
  const dir = path.dirname(path.resolve(file));
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new GateConfigError(`${file}: cannot read the configuration file (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new GateConfigError(`${name}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
  return parseGateConfig(raw, { name, dir, env });
}

/** Validates an already parsed configuration object; `name` prefixes every error, `dir` resolves relative paths. */
export async function parseGateConfig(raw: unknown, where: { name: string; dir: string; env?: NodeJS.ProcessEnv }): Promise<GateConfig> {
  const env = where.env ?? {};
  const { value, sources } = applyEnv(raw, env);
  const label = (parts: readonly PropertyKey[]) => {
    const p = jsonPath(parts);
    const fromEnv = [...sources].find(([key]) => p === key || p.startsWith(`${key}.`));
    return fromEnv ? `${fromEnv[1]} (${p})` : `${where.name}: ${p}`;
  };
  const parsed = fileSchema.safeParse(value);
  if (!parsed.success) {
    throw new GateConfigError(parsed.error.issues.map((i) => `${label(i.path)}: ${i.message}`).join('\n'));
  }
  const config = parsed.data;
  const envSecret = env.GATE_CLIENT_SECRET?.trim() || undefined;
  const problems = checkRoutes(config, envSecret !== undefined);
  if (problems.length) throw new GateConfigError(problems.map((p) => `${label(p.path)}: ${p.message}`).join('\n'));

  const resolve = (p: string) => path.resolve(where.dir, p);
  const audiences: GateAudienceConfig[] = [];
  for (const [i, a] of config.audiences.entries()) {
    const { introspection, ...rest } = a;
    audiences.push({
      ...rest,
      decryptionKeys: a.decryptionKeys.map(resolve),
      ...(introspection && {
        introspection: {
          clientId: introspection.clientId,
          clientSecret: await readSecret(resolve(introspection.secretFile), label(['audiences', i, 'introspection', 'secretFile'])),
        },
      }),
    });
  }
  let client: GateConfig['client'];
  if (config.client) {
    const secret = envSecret ?? (config.client.secretFile ? await readSecret(resolve(config.client.secretFile), label(['client', 'secretFile'])) : undefined);
    // Only exchange routes and introspection as the client need the secret (checked above).
    if (secret) client = { id: config.client.id, secret };
  }
  const routes = config.routes.map((r, i) => ({ ...r, name: r.name ?? defaultRouteName(r, i) }));
  const taken = new Set<string>();
  for (const [i, r] of routes.entries()) {
    // Default names can collide (two routes on one path, different methods): keep labels unique.
    if (taken.has(r.name)) r.name = `routes[${i}]`;
    taken.add(r.name);
  }
  const { client: _client, ...rest } = config;
  return { ...rest, audiences, routes, ...(client && { client }) };
}
