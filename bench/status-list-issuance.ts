/**
 * Token Status Lists in a running Veil (issue 11, acceptance 6), side by side in one run:
 *   1. issuance cost of carrying a status index: sealed client_credentials tokens/s from a Veil
 *      with status lists (STATUS_LIST_ENABLED=true, the default) against the same Veil with
 *      STATUS_LIST_ENABLED=false, same database, Redis, keys and client; rounds alternate
 *      (on, off, on, off, ...) and the ratio of the means is the figure;
 *   2. serving a list of 1,000,000 entries from cold: GET /status-lists/<id> on the running Veil
 *      when no render is cached (Redis read + ZLIB level 9 in the thread pool + ES256), all
 *      VALID, then 1% and 10% INVALID; the compressed size (bytes per million tokens), and the
 *      same GET served from the render cache.
 *
 *   node --import tsx bench/status-list-issuance.ts
 *   BENCH_SECONDS=5 BENCH_ROUNDS=3 ...   (measured seconds per round, rounds per variant; 5 and 3)
 *
 * Both Veils run this source tree with tsx (`src/main.ts`), each its own process pinned to core 0
 * (one measured at a time), autocannon in this process on core 1. Needs the local PostgreSQL and
 * Redis; the database, Redis keys and temp files it makes are removed again, also on failure.
 */
import { randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { calculateJwkThumbprint, compactDecrypt, decodeJwt, exportJWK, generateKeyPair, type JWK } from 'jose';
import pg from 'pg';
import { TokenStatus } from '../src/status-list/format.js';
import { RedisStatusListStore } from '../src/status-list/redis-status-list-store.js';
import { freePort } from '../test/helpers/net.js';
import { REPO_ROOT } from '../test/helpers/process.js';
import { loadSettings, measure, type Measurement } from './lib/load.js';
import { pinningNote, pinSelf, ServerProcess } from './lib/processes.js';
import { textTable } from './lib/report.js';

const PG_ADMIN_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = 'redis://127.0.0.1:6379';
const API = 'https://api.bench';
const LIST_SIZE = 1_000_000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const settings = { ...loadSettings(), ...(process.env.BENCH_SECONDS ? {} : { seconds: 5 }) };
pinSelf();

const cleanups: Array<{ what: string; run: () => Promise<unknown> }> = [];
async function cleanup(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) {
    try {
      await c.run();
    } catch (err) {
      console.error(`clean-up failed (${c.what}):`, err);
    }
  }
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cleanup().finally(() => process.exit(130)));

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

async function responds(url: string): Promise<boolean> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
}

async function createStores(): Promise<{ databaseUrl: string; keyPrefix: string }> {
  const id = `${process.pid}_${randomBytes(4).toString('hex')}`;
  const databaseName = `veil_bench_sl_${id}`;
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
      const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
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

interface RunningVeil {
  server: ServerProcess;
  issuer: string;
  adminUrl: string;
}

async function startVeil(name: string, env: Record<string, string>, shared: { databaseUrl: string; keyPrefix: string; tmp: string }): Promise<RunningVeil> {
  const port = await freePort();
  const adminPort = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const server = new ServerProcess(
    name,
    ['--import', 'tsx', path.join(REPO_ROOT, 'src/main.ts')],
    {
      NODE_ENV: 'development',
      DATABASE_URL: shared.databaseUrl,
      REDIS_URL,
      REDIS_KEY_PREFIX: shared.keyPrefix,
      KEYS_DIR: path.join(shared.tmp, 'keys'),
      VEIL_DATA_DIR: path.join(shared.tmp, 'data'),
      VEIL_SEED: 'off',
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      PORT: String(port),
      ADMIN_PORT: String(adminPort),
      ISSUER: issuer,
      TOKEN_RATE_LIMIT_PER_CLIENT: '1000000',
      TOKEN_RATE_LIMIT_PER_ADDRESS: '1000000',
      ...env,
    },
    REPO_ROOT,
  );
  cleanups.push({ what: name, run: () => server.stop() });
  await server.waitUntil('the admin listener', () => responds(`${adminUrl}/healthz`), 120_000);
  return { server, issuer, adminUrl };
}

async function main(): Promise<void> {
  const stores = await createStores();
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'veil-bench-status-'));
  cleanups.push({ what: `temp dir ${tmp}`, run: () => fsp.rm(tmp, { recursive: true, force: true }) });
  const shared = { ...stores, tmp };
  // The first start creates the master key, key ring and admin token in KEYS_DIR; the second reads them.
  const on = await startVeil('Veil, status lists on', { STATUS_LIST_SIZE: String(LIST_SIZE), STATUS_LIST_TTL_SECONDS: '1', STATUS_LIST_EXP_SECONDS: '60' }, shared);
  const off = await startVeil('Veil, STATUS_LIST_ENABLED=false', { STATUS_LIST_ENABLED: 'false' }, shared);

  const adminToken = fs.readFileSync(path.join(tmp, 'keys', 'admin-token'), 'utf8').trim();
  const call = async <T>(p: string, body: unknown): Promise<T> => {
    const res = await fetch(`${on.adminUrl}${p}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
      body: JSON.stringify(body),
    });
    if (res.status !== 201 && res.status !== 200) throw new Error(`admin POST ${p}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  const { publicKey, privateKey } = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256', extractable: true });
  const jwk: JWK = { ...(await exportJWK(publicKey)), use: 'enc' };
  jwk.kid = await calculateJwkThumbprint(jwk);
  await call('/admin/resources', { identifier: API, name: 'Bench API', scopes: ['read'], jwk });
  const worker = await call<{ client: { client_id: string }; client_secret: string }>('/admin/clients', {
    client_name: 'bench',
    grant_types: ['client_credentials'],
    resources: [API],
    resource_scopes: { [API]: ['read'] },
  });
  const headers = { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(worker.client.client_id, worker.client_secret) };
  const body = new URLSearchParams({ grant_type: 'client_credentials', resource: API, scope: 'read' }).toString();
  const claimsFrom = async (issuer: string) => {
    const res = await fetch(`${issuer}/token`, { method: 'POST', headers, body });
    if (res.status !== 200) throw new Error(`${issuer}/token: ${res.status} ${await res.text()}`);
    const token = ((await res.json()) as { access_token: string }).access_token;
    return { token, claims: decodeJwt(new TextDecoder().decode((await compactDecrypt(token, privateKey)).plaintext)) };
  };
  const withStatus = await claimsFrom(on.issuer);
  const without = await claimsFrom(off.issuer);
  const ref = (withStatus.claims.status as { status_list?: { idx: number; uri: string } } | undefined)?.status_list;
  if (!ref) throw new Error('the status-list Veil issued a token without a status claim');
  if (without.claims.status !== undefined) throw new Error('STATUS_LIST_ENABLED=false still issued a status claim');
  console.log(
    `# status list issuance bench: Node ${process.version}, ${os.cpus().length} cores; ${pinningNote()}; ${settings.seconds} s x ${ROUNDS} rounds per variant, ${settings.connections} connections`,
  );
  console.log(`token sizes: ${withStatus.token.length} characters with status, ${without.token.length} without`);

  // 2. Cold serving of the 1,000,000-entry list the first token landed in.
  const listId = ref.uri.slice(ref.uri.lastIndexOf('/') + 1);
  const redis = new Redis(REDIS_URL);
  cleanups.push({ what: 'bench Redis connection', run: async () => redis.disconnect() });
  const store = new RedisStatusListStore(redis, { keyPrefix: stores.keyPrefix, size: LIST_SIZE, bits: 2 });
  const serveRows: string[][] = [];
  const get = async () => {
    const t0 = performance.now();
    const res = await fetch(ref.uri);
    const jwt = await res.text();
    const ms = performance.now() - t0;
    if (res.status !== 200) throw new Error(`GET ${ref.uri}: ${res.status}`);
    return { ms, jwt };
  };
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const revoked = new Set<number>();
  for (const share of [0, 0.01, 0.1]) {
    const want = Math.floor(LIST_SIZE * share);
    const added: number[] = [];
    while (revoked.size < want) {
      const idx = randomInt(LIST_SIZE);
      if (!revoked.has(idx)) {
        revoked.add(idx);
        added.push(idx);
      }
    }
    for (let i = 0; i < added.length; i += 20_000)
      await store.setStatuses(
        added.slice(i, i + 20_000).map((idx) => ({ list: listId, idx, exp })),
        TokenStatus.INVALID,
      );
    await new Promise((r) => setTimeout(r, 1200)); // past the render Veil keeps (ttl 1 s)
    const cold = await get();
    const warm: number[] = [];
    for (let i = 0; i < 20; i++) warm.push((await get()).ms);
    const lst = Buffer.from((decodeJwt(cold.jwt).status_list as { lst: string }).lst, 'base64url').length;
    serveRows.push([`${share * 100}% INVALID`, `${fmt(cold.ms, 1)} ms`, `${fmt(mean(warm), 2)} ms`, fmt(lst), fmt(cold.jwt.length)]);
  }

  // 1. Issuance, alternating.
  const rps: Record<'on' | 'off', Measurement[]> = { on: [], off: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const [variant, veil] of [
      ['on', on],
      ['off', off],
    ] as const) {
      const m = await measure({ name: `sealed client_credentials, status lists ${variant}`, server: veil.server, url: veil.issuer, path: '/token', headers, body }, settings);
      if (m.failure) throw new Error(`${m.name}: ${m.failure}`);
      rps[variant].push(m);
      console.log(`  round ${r + 1}, status lists ${variant}: ${fmt(m.rps)} tokens/s, p50 ${m.p50} ms, p99 ${m.p99} ms`);
    }
  }
  const onMean = mean(rps.on.map((m) => m.rps));
  const offMean = mean(rps.off.map((m) => m.rps));
  const perToken = (ms: Measurement[]) => mean(ms.map((m) => (m.serverCpu ?? NaN) / m.rps)) * 1e6;

  console.log('');
  console.log(
    textTable(
      ['sealed issuance (client_credentials)', 'tokens/s (mean of rounds)', 'server CPU per token'],
      [
        ['with a status index (default)', fmt(onMean), `${fmt(perToken(rps.on))} µs`],
        ['STATUS_LIST_ENABLED=false', fmt(offMean), `${fmt(perToken(rps.off))} µs`],
        ['ratio (with / without)', fmt(onMean / offMean, 2), fmt(perToken(rps.on) / perToken(rps.off), 2)],
      ],
    ),
  );
  console.log('');
  console.log(
    textTable(['list of 1,000,000 entries (2 bits)', 'GET from cold (render)', 'GET from render cache (mean of 20)', 'lst bytes compressed', 'token characters'], serveRows),
  );
}

let exitCode = 0;
try {
  await main();
} catch (err) {
  console.error('status list issuance bench failed:', err);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);
