/**
 * Token issuance, side by side: Veil's sealed access tokens (client_credentials), refresh and
 * introspection, and in the same run plain oidc-provider with its in-memory adapter issuing
 * opaque, signed JWT and nested (signed then encrypted) JWT access tokens as the reference.
 *
 *   npm run bench:tokens                  (builds first; needs the local PostgreSQL and Redis)
 *   BENCH_SECONDS=5 npm run bench:tokens  (measured seconds per target; BENCH_WARMUP_SECONDS,
 *                                          BENCH_CONNECTIONS likewise; defaults 10, 2, 10)
 *   BENCH_ONLY='jwt,API grant' npm run bench:tokens   (only the targets whose name contains one of
 *                                                       these, e.g. to profile one; writes no docs)
 *   BENCH_CPU_PROF=/tmp/prof npm run bench:tokens   (writes each server's .cpuprofile there, and
 *                                                    leaves docs/BENCHMARKS.md alone)
 *
 * Each server is its own child process pinned to core 0 (taskset), autocannon runs in this
 * process pinned to core 1, targets one after another with the same duration and connections.
 * Prints a table and writes its section of docs/BENCHMARKS.md. Requests only ever go to
 * 127.0.0.1, and the run stops by itself; the database, Redis keys and temp files it creates
 * are removed again, also on failure.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { calculateJwkThumbprint, compactDecrypt, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, type JWK } from 'jose';
import pg from 'pg';
import { httpAuthorizationCodeFlow, type HttpFlowClient } from '../test/helpers/http-flow.js';
import { freePort } from '../test/helpers/net.js';
import { REPO_ROOT } from '../test/helpers/process.js';
import { loadSettings, measure, type Measurement, type Target } from './lib/load.js';
import { pinningNote, pinSelf, ServerProcess } from './lib/processes.js';
import { REFERENCE_CLIENT, REFERENCE_READY, REFERENCE_RESOURCES, type ReferenceFormat } from './lib/reference-config.js';
import { table, textTable, writeSection } from './lib/report.js';

const PG_ADMIN_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = 'redis://127.0.0.1:6379';
const API = 'https://api.bench';
const GOALS = { sealedRps: 1500, introspectionRps: 3000, refreshRps: 1000, sealedBytes: 1000 };
/**
 * Ratios against plain oidc-provider's signed JWT in the same run (issue 8): sealed issuance no
 * slower than before it (0.34), refresh of an API grant at least 1.5 times before it (1.5 × 0.26).
 */
const RATIO_GOALS = { sealedVsJwt: 0.34, apiRefreshVsJwt: 0.39 };
/** The sealing the floor is made of: what Veil does per client-credentials token (bench/sealer.ts). */
const FLOOR_SEALING = 'ES256 + ECDH-ES+A256KW/A256GCM, P-256: veil sealAccessToken';

const settings = loadSettings();
/** Only the targets whose name contains this (a development aid: no report is written). */
const only = process.env.BENCH_ONLY;
const selected = (name: string) => !only || only.split(',').some((part) => name.includes(part.trim()));
const profileDir = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : undefined;
const nodeFlags = (name: string) => (profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`] : []);
pinSelf();

// ---------------------------------------------------------------------------------------------
// Clean-up: everything created is registered here and removed in reverse, once.

const cleanups: Array<{ what: string; run: () => Promise<unknown> }> = [];
let cleaned: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaned ??= (async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c.run();
      } catch (err) {
        console.error(`clean-up failed (${c.what}):`, err);
      }
    }
  })();
  return cleaned;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// Helpers

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
const form = (params: Record<string, string>) => new URLSearchParams(params).toString();
const formHeaders = (authorization: string) => ({ 'content-type': 'application/x-www-form-urlencoded', authorization });

async function post(url: string, headers: Record<string, string>, body: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers, body });
  const text = await res.text();
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = { raw: text.slice(0, 500) };
  }
  return { status: res.status, json };
}

async function mustPost(what: string, url: string, headers: Record<string, string>, body: string): Promise<Record<string, unknown>> {
  const r = await post(url, headers, body);
  if (r.status !== 200) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

function admin(adminUrl: string, keysDir: string) {
  return async <T>(p: string, body: unknown): Promise<T> => {
    // No ADMIN_TOKEN configured: Veil generated one into KEYS_DIR at its first start.
    const authorization = `Bearer ${fs.readFileSync(path.join(keysDir, 'admin-token'), 'utf8').trim()}`;
    const res = await fetch(`${adminUrl}${p}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body: JSON.stringify(body) });
    const text = await res.text();
    if (res.status !== 201 && res.status !== 200) throw new Error(`admin POST ${p}: ${res.status} ${text}`);
    return JSON.parse(text) as T;
  };
}

async function responds(url: string): Promise<boolean> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
}

const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');
const fmtMs = (n: number) => `${n.toFixed(n < 10 ? 1 : 0)} ms`;
const fmtPct = (n: number | undefined) => (n === undefined ? 'n/a' : `${Math.round(n * 100)}%`);
const progress = (m: Measurement) =>
  console.log(
    `  ${fmtInt(m.rps)} req/s, p50 ${fmtMs(m.p50)}, p99 ${fmtMs(m.p99)}, server CPU ${fmtPct(m.serverCpu)}, bench CPU ${fmtPct(m.clientCpu)}, others on server core ${fmtPct(m.otherOnServerCore)}${m.failure ? `; FAILED: ${m.failure}` : ''}`,
  );

// ---------------------------------------------------------------------------------------------
// The reference: plain oidc-provider

interface ReferenceResults {
  measurements: Record<ReferenceFormat, Measurement>;
  sizes: Record<ReferenceFormat, number>;
}

async function benchReference(): Promise<ReferenceResults> {
  const port = await freePort();
  const server = new ServerProcess(
    'reference oidc-provider',
    [...nodeFlags('reference'), '--import', 'tsx', 'bench/reference-provider.ts', String(port)],
    { NODE_ENV: 'development' },
    REPO_ROOT,
  );
  cleanups.push({ what: 'reference provider', run: () => server.stop() });
  await server.waitUntil('its ready line', () => REFERENCE_READY.test(server.output));
  const issuer = `http://127.0.0.1:${port}`;
  const headers = formHeaders(basic(REFERENCE_CLIENT.id, REFERENCE_CLIENT.secret));

  const measurements = {} as Record<ReferenceFormat, Measurement>;
  const sizes = {} as Record<ReferenceFormat, number>;
  for (const format of ['opaque', 'jwt', 'nested'] as const) {
    const body = form({ grant_type: 'client_credentials', resource: REFERENCE_RESOURCES[format], scope: 'read' });
    const sample = await mustPost(`reference ${format} token`, `${issuer}/token`, headers, body);
    const token = String(sample.access_token);
    const parts = token.split('.').length;
    const expected = { opaque: 1, jwt: 3, nested: 5 }[format];
    if (parts !== expected) throw new Error(`reference ${format}: expected ${expected} dot-separated parts, got ${parts}`);
    sizes[format] = Buffer.byteLength(token);
    if (!selected(`oidc-provider ${format}`)) continue;
    console.log(`measuring reference ${format} ...`);
    measurements[format] = await measure({ name: `oidc-provider ${format}`, server, url: issuer, path: '/token', headers, body }, settings);
    progress(measurements[format]);
  }
  await server.stop();
  return { measurements, sizes };
}

// ---------------------------------------------------------------------------------------------
// Veil

interface VeilResults {
  sealed: Measurement;
  introspection: Measurement;
  refresh: Measurement;
  apiRefresh: Measurement;
  sizes: { clientCredentials: number; refresh: number; refreshToken: number };
  claims: { jweHeader: string[]; payload: string[] };
}

async function createStores() {
  const id = `${process.pid}_${randomBytes(4).toString('hex')}`;
  const databaseName = `veil_bench_${id}`;
  const adminDb = new pg.Client({ connectionString: PG_ADMIN_URL });
  await adminDb.connect();
  await adminDb.query(`CREATE DATABASE "${databaseName}"`);
  await adminDb.end();
  cleanups.push({
    what: `database ${databaseName}`,
    run: async () => {
      const dropper = new pg.Client({ connectionString: PG_ADMIN_URL });
      await dropper.connect();
      try {
        await dropper.query(`DROP DATABASE IF EXISTS "${databaseName}" WITH (FORCE)`);
      } finally {
        await dropper.end();
      }
    },
  });
  const keyPrefix = `veilbench:${id}:`;
  cleanups.push({
    what: `Redis keys ${keyPrefix}*`,
    run: async () => {
      const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 2 });
      await redis.connect();
      try {
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 1000);
          if (keys.length) await redis.del(...keys);
          cursor = next;
        } while (cursor !== '0');
      } finally {
        redis.disconnect();
      }
    },
  });
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${databaseName}`;
  return { databaseUrl: u.toString(), keyPrefix };
}

async function benchVeil(): Promise<VeilResults> {
  if (!fs.existsSync(path.join(REPO_ROOT, 'dist/main.js'))) throw new Error('dist/main.js is missing: run `npm run build` first');
  const stores = await createStores();
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'veil-bench-tokens-'));
  cleanups.push({ what: `temp dir ${tmp}`, run: () => fsp.rm(tmp, { recursive: true, force: true }) });
  const port = await freePort();
  const adminPort = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const adminUrl = `http://127.0.0.1:${adminPort}`;

  const server = new ServerProcess(
    'Veil',
    [...nodeFlags('veil'), path.join(REPO_ROOT, 'dist/main.js')],
    {
      NODE_ENV: 'development',
      DATABASE_URL: stores.databaseUrl,
      REDIS_URL,
      REDIS_KEY_PREFIX: stores.keyPrefix,
      KEYS_DIR: path.join(tmp, 'keys'),
      VEIL_DATA_DIR: path.join(tmp, 'data'),
      VEIL_SEED: 'off',
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      PORT: String(port),
      ADMIN_PORT: String(adminPort),
      ISSUER: issuer,
      // The bench measures issuance, not the throttles: all its traffic comes from one address.
      TOKEN_RATE_LIMIT_PER_CLIENT: '1000000',
      TOKEN_RATE_LIMIT_PER_ADDRESS: '1000000',
      LOGIN_MAX_FAILURES_PER_IP: '1000000',
    },
    REPO_ROOT,
  );
  // Started before the stores' clean-up is registered to run: stopped first, then dropped.
  cleanups.push({ what: 'Veil', run: () => server.stop() });
  // "Veil is ready" is logged at info, so at LOG_LEVEL=warn readiness is the admin listener
  // (the last thing Veil opens before that line) answering.
  await server.waitUntil('"Veil is ready" / the admin listener', async () => server.output.includes('"Veil is ready"') || (await responds(`${adminUrl}/healthz`)));
  const call = admin(adminUrl, path.join(tmp, 'keys'));

  // The resource server, with its own P-256 encryption key.
  const { publicKey, privateKey } = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256', extractable: true });
  const jwk: JWK = await exportJWK(publicKey);
  jwk.kid = await calculateJwkThumbprint(jwk);
  jwk.use = 'enc';
  const rs = await call<{ introspection_client_id: string; introspection_client_secret: string }>('/admin/resources', {
    identifier: API,
    name: 'Bench API',
    scopes: ['read', 'write'],
    jwk,
  });
  const worker = await call<{ client: { client_id: string }; client_secret: string }>('/admin/clients', {
    client_name: 'bench',
    grant_types: ['client_credentials'],
    resources: [API],
    resource_scopes: { [API]: ['read'] },
  });
  const redirectUri = 'http://127.0.0.1:9/cb';
  const web = await call<{ client: { client_id: string }; client_secret: string }>('/admin/clients', {
    client_name: 'bench-web',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    resources: [API],
    resource_scopes: { [API]: ['read'] },
  });
  const user = { email: 'bench@example.com', password: `bench ${randomBytes(8).toString('hex')}` };
  await call('/admin/users', { ...user, name: 'Bench User' });

  // One sealed token: its size, its shape, and the token introspection is driven with.
  const ccHeaders = formHeaders(basic(worker.client.client_id, worker.client_secret));
  const ccBody = form({ grant_type: 'client_credentials', resource: API, scope: 'read' });
  const sealed = String((await mustPost('Veil client_credentials', `${issuer}/token`, ccHeaders, ccBody)).access_token);
  if (sealed.split('.').length !== 5) throw new Error(`Veil's client_credentials token is not a compact JWE: ${sealed.slice(0, 60)}...`);
  const jweHeader = decodeProtectedHeader(sealed);
  const inner = new TextDecoder().decode((await compactDecrypt(sealed, privateKey)).plaintext);
  const payload = decodeJwt(inner);

  const rsHeaders = formHeaders(basic(rs.introspection_client_id, rs.introspection_client_secret));
  const inBody = form({ token: sealed });
  const introspected = await mustPost('Veil introspection', `${issuer}/token/introspection`, rsHeaders, inBody);
  if (introspected.active !== true) throw new Error(`introspection of a fresh sealed token is not active: ${JSON.stringify(introspected)}`);

  // Refresh tokens rotate on every use and reuse revokes the grant, so each request takes a
  // token from a pool and puts the one it gets back. A run can strand at most one token per
  // connection (requests in flight when it stops), so the pool starts with enough for two runs.
  const webClient: HttpFlowClient = { issuer, clientId: web.client.client_id, clientSecret: web.client_secret, redirectUri };
  const pool: string[] = [];
  let refreshAccessToken = '';
  console.log(`obtaining ${2 * settings.connections + 2} refresh tokens by the authorization code flow ...`);
  for (let i = 0; i < 2 * settings.connections + 2; i++) {
    const t = await httpAuthorizationCodeFlow(webClient, user, 'openid offline_access', { resource: API, scope: 'openid offline_access read' });
    if (!t.refresh_token) throw new Error(`the code flow returned no refresh token: ${JSON.stringify(t)}`);
    pool.push(t.refresh_token);
  }
  const rtHeaders = formHeaders(basic(webClient.clientId, webClient.clientSecret!));
  {
    const first = await mustPost('Veil refresh', `${issuer}/token`, rtHeaders, form({ grant_type: 'refresh_token', refresh_token: pool.pop()! }));
    refreshAccessToken = String(first.access_token);
    pool.push(String(first.refresh_token));
  }
  const refreshTokenBytes = Buffer.byteLength(pool[0]!);

  // The same without an ID token: a grant for the API alone (no `openid`), the pure OAuth refresh.
  const apiPool: string[] = [];
  for (let i = 0; i < 2 * settings.connections + 2; i++) {
    const t = await httpAuthorizationCodeFlow(webClient, user, 'offline_access', { resource: API, scope: 'offline_access read' });
    if (!t.refresh_token) throw new Error(`the API-only code flow returned no refresh token: ${JSON.stringify(t)}`);
    apiPool.push(t.refresh_token);
  }
  const refreshTarget = (name: string, tokens: string[]): Target => ({
    name,
    server,
    url: issuer,
    path: '/token',
    headers: rtHeaders,
    beforeRun: () => {
      if (tokens.length < settings.connections) throw new Error(`only ${tokens.length} refresh tokens left for ${settings.connections} connections`);
    },
    requests: [
      {
        method: 'POST',
        path: '/token',
        headers: rtHeaders,
        setupRequest: (req) => ({ ...req, body: form({ grant_type: 'refresh_token', refresh_token: tokens.pop() ?? 'pool-exhausted' }) }),
        onResponse: (status, body) => {
          if (status !== 200) return;
          const next = (JSON.parse(body) as { refresh_token?: string }).refresh_token;
          if (next) tokens.push(next);
        },
      },
    ],
  });

  const targets: Target[] = [
    { name: 'Veil sealed (client_credentials)', server, url: issuer, path: '/token', headers: ccHeaders, body: ccBody },
    { name: 'Veil introspection (sealed token)', server, url: issuer, path: '/token/introspection', headers: rsHeaders, body: inBody },
    refreshTarget('Veil refresh (OIDC grant: + RS256 ID token)', pool),
    refreshTarget('Veil refresh (API grant: sealed token only)', apiPool),
  ];
  const results: Measurement[] = [];
  for (const target of targets.filter((t) => selected(t.name))) {
    console.log(`measuring ${target.name} ...`);
    results.push(await measure(target, settings));
    progress(results.at(-1)!);
  }
  await server.stop();
  return {
    sealed: results[0]!,
    introspection: results[1]!,
    refresh: results[2]!,
    apiRefresh: results[3]!,
    sizes: { clientCredentials: Buffer.byteLength(sealed), refresh: Buffer.byteLength(refreshAccessToken), refreshToken: refreshTokenBytes },
    claims: { jweHeader: Object.keys(jweHeader), payload: Object.keys(payload) },
  };
}

// ---------------------------------------------------------------------------------------------
// Optional: the raw sealing crypto, when bench/sealer.ts provides it.

async function sealerResults(): Promise<{ text: string; markdown: string; opsPerSec: (name: string) => number | undefined } | undefined> {
  const file = path.join(REPO_ROOT, 'bench/sealer.ts');
  if (!fs.existsSync(file)) return undefined;
  const mod = (await import(pathToFileURL(file).href)) as { runSealerBench?: () => unknown };
  if (typeof mod.runSealerBench !== 'function') return undefined;
  console.log('running bench/sealer.ts runSealerBench() ...');
  const result = await mod.runSealerBench();
  const cell = (v: unknown) => (typeof v === 'number' ? (Number.isInteger(v) || Math.abs(v) >= 100 ? fmtInt(v) : v.toFixed(2)) : typeof v === 'string' ? v : JSON.stringify(v));
  let head: string[];
  let rows: string[][];
  if (Array.isArray(result) && result.every((r) => r && typeof r === 'object')) {
    head = [...new Set(result.flatMap((r) => Object.keys(r as object)))];
    rows = result.map((r) => head.map((k) => cell((r as Record<string, unknown>)[k])));
  } else if (result && typeof result === 'object') {
    head = ['measure', 'value'];
    rows = Object.entries(result).map(([k, v]) => [k, cell(v)]);
  } else {
    head = ['result'];
    rows = [[cell(result)]];
  }
  const opsPerSec = (name: string) => {
    const row = Array.isArray(result) ? (result as Array<{ name?: unknown; opsPerSec?: unknown }>).find((r) => r.name === name) : undefined;
    return typeof row?.opsPerSec === 'number' ? row.opsPerSec : undefined;
  };
  return { text: textTable(head, rows), markdown: table(head, rows), opsPerSec };
}

// ---------------------------------------------------------------------------------------------
// Run and report

let exitCode = 0;
try {
  const started = new Date();
  console.log(`token bench: ${settings.connections} connections, ${settings.warmupSeconds} s warm-up + ${settings.seconds} s per target; ${pinningNote()}`);
  if (only) {
    // Only the selected targets, measured and printed as they go; no report.
    if (['opaque', 'jwt', 'nested'].some((f) => selected(`oidc-provider ${f}`))) await benchReference();
    await benchVeil();
    await cleanup();
    process.exit(0);
  }
  const reference = await benchReference();
  const veil = await benchVeil();
  const sealer = await sealerResults().catch((err: unknown) => {
    console.error('bench/sealer.ts failed:', err);
    return undefined;
  });

  const base = reference.measurements.jwt;
  const ratio = (m: Measurement) => (base.rps > 0 ? `${(m.rps / base.rps).toFixed(2)}×` : 'n/a');
  const goal = (ok: boolean, what: string) => `${ok ? 'met' : 'MISSED'} (${what})`;
  const rows: Array<{ m: Measurement; bytes: string; goal: string }> = [
    { m: reference.measurements.opaque, bytes: String(reference.sizes.opaque), goal: '' },
    { m: reference.measurements.jwt, bytes: String(reference.sizes.jwt), goal: 'baseline' },
    { m: reference.measurements.nested, bytes: String(reference.sizes.nested), goal: '' },
    {
      m: veil.sealed,
      bytes: String(veil.sizes.clientCredentials),
      goal: `${goal(veil.sealed.rps >= Math.max(GOALS.sealedRps, base.rps), `≥ ${fmtInt(GOALS.sealedRps)}/s and ≥ signed JWT`)}; ${goal(veil.sealed.rps / base.rps >= RATIO_GOALS.sealedVsJwt, `≥ ${RATIO_GOALS.sealedVsJwt}× JWT`)}`,
    },
    { m: veil.introspection, bytes: '', goal: goal(veil.introspection.rps >= GOALS.introspectionRps, `≥ ${fmtInt(GOALS.introspectionRps)}/s`) },
    { m: veil.refresh, bytes: String(veil.sizes.refresh), goal: goal(veil.refresh.rps >= GOALS.refreshRps, `≥ ${fmtInt(GOALS.refreshRps)}/s`) },
    {
      m: veil.apiRefresh,
      bytes: String(veil.sizes.refresh),
      goal: `${goal(veil.apiRefresh.rps >= GOALS.refreshRps, `≥ ${fmtInt(GOALS.refreshRps)}/s`)}; ${goal(veil.apiRefresh.rps / base.rps >= RATIO_GOALS.apiRefreshVsJwt, `≥ ${RATIO_GOALS.apiRefreshVsJwt}× JWT`)}`,
    },
  ];
  const head = ['target', 'req/s (2xx)', 'p50', 'p99', 'vs signed JWT', 'access token bytes', 'server CPU', 'others on server core', 'bench CPU', 'goal'];
  const cells = rows.map(({ m, bytes, goal: g }) => [
    m.failure ? `${m.name} (FAILED)` : m.name,
    fmtInt(m.rps),
    fmtMs(m.p50),
    fmtMs(m.p99),
    ratio(m),
    bytes,
    fmtPct(m.serverCpu),
    fmtPct(m.otherOnServerCore),
    fmtPct(m.clientCpu),
    g,
  ]);
  // The floor for sealed issuance: plain oidc-provider's opaque issuance plus the sealing alone,
  // one after the other on one core (both measured in this run).
  const sealOps = sealer?.opsPerSec(FLOOR_SEALING);
  const floorRps = sealOps ? 1 / (1 / reference.measurements.opaque.rps + 1 / sealOps) : undefined;
  const floorLine = floorRps
    ? `Floor for sealed issuance (oidc-provider opaque ${fmtInt(reference.measurements.opaque.rps)}/s, then sealing alone ${fmtInt(sealOps!)}/s, on one core): ${fmtInt(floorRps)}/s; Veil sealed reaches ${(veil.sealed.rps / floorRps).toFixed(2)}× that floor.`
    : 'Floor for sealed issuance: not computed (bench/sealer.ts gave no P-256 sealing figure).';
  const failures = rows.filter((r) => r.m.failure).map((r) => `${r.m.name}: ${r.m.failure}`);
  const sizeOk = veil.sizes.clientCredentials <= GOALS.sealedBytes;

  const command = `${process.env.BENCH_SECONDS ? `BENCH_SECONDS=${process.env.BENCH_SECONDS} ` : ''}npm run bench:tokens`;
  const cpus = os.cpus();
  const md = [
    '## Token issuance',
    '',
    `Measured by \`${command}\` (also part of \`npm run bench\`) on ${started.toISOString().slice(0, 10)}, ${cpus.length} cores (${cpus[0]?.model ?? 'cpu'}), Node ${process.version}, loopback, no TLS.`,
    `autocannon, ${settings.connections} connections, ${settings.warmupSeconds} s warm-up then ${settings.seconds} s measured per target, targets one after another in one run; ${pinningNote()}.`,
    'With the server on one core, req/s is tokens per second per core. Every request is a POST with HTTP Basic client authentication; any non-2xx response fails the run.',
    '',
    '- oidc-provider: plain oidc-provider 9.13 (in-memory adapter), `client_credentials` with a resource indicator per format: opaque; JWT signed ES256; JWT signed ES256 then encrypted ECDH-ES+A256KW / A256GCM.',
    '- Veil sealed: `client_credentials`, `scope=read`, for a resource server with a P-256 key (PostgreSQL + Redis stores).',
    "- Veil introspection: one sealed token, introspected with the resource server's credentials.",
    '- Veil refresh: `refresh_token` grant with rotation (each connection chains the token it got back), `openid offline_access read`; the response also carries an ID token.',
    '',
    table(head, cells),
    '',
    `Ratios are req/s against plain oidc-provider's signed JWT. "server CPU" is the server process's CPU time over the measured window (100% = one core busy); "others on server core" is what other processes used of that core meanwhile (PostgreSQL, Redis, anything else on the machine); "bench CPU" the load generator's.`,
    '',
    `Token sizes: Veil sealed (client_credentials) ${veil.sizes.clientCredentials} bytes (${sizeOk ? 'met' : 'MISSED'}: ≤ ${GOALS.sealedBytes}), Veil sealed from refresh (user token) ${veil.sizes.refresh} bytes, Veil refresh token ${veil.sizes.refreshToken} bytes; oidc-provider opaque ${reference.sizes.opaque}, signed JWT ${reference.sizes.jwt}, nested JWT ${reference.sizes.nested} bytes.`,
    `Sealed token JWE header: ${veil.claims.jweHeader.join(', ')}; claims: ${veil.claims.payload.join(', ')}.`,
    '',
    floorLine,
    ...(sealer ? ['', '### Sealing crypto alone (bench/sealer.ts)', '', sealer.markdown] : []),
    ...(failures.length ? ['', '**FAILED** (figures above are not valid):', '', ...failures.map((f) => `- ${f}`)] : []),
    '',
  ].join('\n');

  console.log('');
  console.log(textTable(head, cells));
  console.log('');
  console.log(
    `token bytes: Veil sealed ${veil.sizes.clientCredentials} (${sizeOk ? 'met' : 'MISSED'} ≤ ${GOALS.sealedBytes}), Veil sealed via refresh ${veil.sizes.refresh}, refresh token ${veil.sizes.refreshToken}; reference opaque ${reference.sizes.opaque}, jwt ${reference.sizes.jwt}, nested ${reference.sizes.nested}`,
  );
  console.log(`sealed token header: ${veil.claims.jweHeader.join(', ')}; claims: ${veil.claims.payload.join(', ')}`);
  if (sealer) console.log(`\nbench/sealer.ts:\n${sealer.text}`);
  console.log(floorLine);

  if (failures.length) {
    console.error(`\nFAILED: non-2xx responses or connection errors; docs/BENCHMARKS.md left unchanged:\n${failures.map((f) => `  ${f}`).join('\n')}`);
    exitCode = 1;
  } else if (profileDir) {
    console.log(`\nCPU profiles in ${profileDir}; docs/BENCHMARKS.md left unchanged (profiling skews the figures)`);
  } else {
    await writeSection(path.join(REPO_ROOT, 'docs/BENCHMARKS.md'), 'tokens', md);
    console.log('\nwrote the token issuance section of docs/BENCHMARKS.md');
  }
} catch (err) {
  console.error('token bench failed:', err);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);
