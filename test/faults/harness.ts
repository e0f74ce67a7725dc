/**
 * The fault suite's harness: a Veil started from dist/ as a real process (one process, or
 * WEB_CONCURRENCY workers), the traffic of test/helpers/traffic.ts against it, a fault injected in
 * the middle, and the report and assertions every fault shares:
 *
 *   - during the fault, requests are answered 503 `temporarily_unavailable` (the HTML error page
 *     on browser routes); never a 500, never slower than the client timeout;
 *   - the service recovers within RECOVERY_LIMIT_MS of the store returning: a probe (a token, a
 *     login page, the admin API) succeeds, and every request started after that limit succeeds;
 *   - no account, client or consent is lost (rows counted before and after);
 *   - no refresh-token chain forks, none is lost without its client being told (traffic.ts
 *     defines both), and Redis holds exactly one live refresh token per open chain;
 *   - every revoked token still introspects inactive after recovery.
 *
 * FAULTS_PROFILE=short (CI) shortens the traffic windows; the faults and checks are the same.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { freePort } from '../helpers/net.js';
import { ManagedProcess } from '../helpers/process.js';
import { generateEncryptionKey } from '../helpers/resource-servers.js';
import { provisionTraffic, Traffic, type Outcome, type TrafficFixture } from '../helpers/traffic.js';
import { generatedAdminToken } from '../helpers/veil.js';

export const RECOVERY_LIMIT_MS = 5_000;
/** A client gives up after this long: longer than any answer Veil should need, shorter than the outages below. */
export const CLIENT_TIMEOUT_MS = 5_000;
const SHORT = process.env.FAULTS_PROFILE === 'short';
/** Traffic before the fault, and after recovery. */
export const WARMUP_MS = SHORT ? 2_000 : 4_000;
export const AFTER_MS = SHORT ? 6_000 : 10_000;

export interface VeilProcess {
  issuer: string;
  adminPort: number;
  keysDir: string;
  proc: ManagedProcess;
  admin<T>(method: string, path: string, body?: unknown): Promise<T>;
  /** Veil's JSON log lines so far. */
  logs(): Array<Record<string, unknown> & { msg: string }>;
  stop(): Promise<void>;
}

/** `node dist/main.js` with these stores; resolves when it (every worker) is ready. */
export async function startVeilProcess(env: Record<string, string>, workers = 1): Promise<VeilProcess> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-faults-'));
  const port = await freePort();
  const adminPort = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const keysDir = path.join(dir, 'keys');
  const proc = new ManagedProcess(process.execPath, ['dist/main.js'], {
    NODE_ENV: 'test',
    WEB_CONCURRENCY: String(workers),
    PORT: String(port),
    HOST: '127.0.0.1',
    ISSUER: issuer,
    ADMIN_PORT: String(adminPort),
    KEYS_DIR: keysDir,
    VEIL_SEED: 'off',
    LOG_LEVEL: 'info',
    SHUTDOWN_TIMEOUT_SECONDS: '5',
    // The traffic is many requests from one client and one address: measure faults, not throttles.
    TOKEN_RATE_LIMIT_PER_CLIENT: '1000000',
    TOKEN_RATE_LIMIT_PER_ADDRESS: '1000000',
    ...env,
  });
  await proc.waitFor(workers > 1 ? /"cluster is ready"/ : /"Veil is ready"/, 90_000);
  return {
    issuer,
    adminPort,
    keysDir,
    proc,
    async admin<T>(method: string, p: string, body?: unknown) {
      const res = await fetch(`http://127.0.0.1:${adminPort}${p}`, {
        method,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${await generatedAdminToken(keysDir)}` },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
      });
      const text = await res.text();
      if (res.status >= 300) throw new Error(`admin ${method} ${p}: ${res.status} ${text}`);
      return (text ? JSON.parse(text) : undefined) as T;
    },
    logs: () =>
      proc.output
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown> & { msg: string }),
    async stop() {
      await proc.stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** The traffic's client, resource server and users, registered on `veil`, and its chains opened. */
export async function prepareTraffic(veil: VeilProcess, users = 60): Promise<Traffic> {
  const { publicJwk } = await generateEncryptionKey();
  const fixture: TrafficFixture = await provisionTraffic((m, p, b) => veil.admin(m, p, b), { issuer: veil.issuer, users, resourceJwk: publicJwk });
  const traffic = new Traffic(fixture, { timeoutMs: CLIENT_TIMEOUT_MS, chains: 8 });
  await traffic.prepare();
  return traffic;
}

export interface RowCounts {
  accounts: number;
  clients: number;
  grants: number;
  consents: number;
  resourceServers: number;
}

export async function rowCounts(databaseUrl: string): Promise<RowCounts> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const count = async (table: string) => Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);
    return {
      accounts: await count('accounts'),
      clients: await count('clients'),
      grants: await count('grants'),
      consents: await count('grant_api_consents'),
      resourceServers: await count('resource_servers'),
    };
  } finally {
    await client.end();
  }
}

/** Live (stored, not consumed) refresh tokens under a key prefix (src/store/redis-store.ts's key layout). */
export async function liveRefreshTokens(redis: Redis, prefix: string): Promise<number> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*RefreshToken:*`, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  // Records are `<p>RefreshToken:<id hash>` or, in a grant's slot, `<p>RefreshToken:{g:<grant>}:<id hash>`;
  // skip consumed markers, grant references (`…:grant`) and uid indexes.
  const records = keys.filter((k) => k.startsWith(`${prefix}RefreshToken:`) && !/:(consumed|grant)$/.test(k) && !k.includes(':uid:'));
  const consumed = new Set(keys.filter((k) => k.endsWith(':consumed')).map((k) => k.slice(0, -':consumed'.length)));
  return records.filter((k) => !consumed.has(k)).length;
}

export interface Fault {
  name: string;
  /** Takes the store (or worker) away. */
  down(): Promise<void>;
  /** How long it stays away. */
  outageMs: number;
  /** Brings it back; resolves when it is back (accepting connections, or promoted). */
  up(): Promise<void>;
  /** A SIGKILLed worker drops the requests it held: only then are dropped connections expected. */
  dropsConnections?: boolean;
}

export interface FaultReport {
  name: string;
  outageMs: number;
  /** From the store being back to a successful probe (0 if the probe never failed). */
  recoveryMs: number;
  /** Requests that started during the outage window (fault until recovery), by outcome. */
  during: Map<Outcome, number>;
  total: Map<Outcome, number>;
  /** The last request that failed for want of the store started this long after the store returned. */
  lastFailureAfterBackMs: number;
  /** `toldAfterRevocation`: of the chains told, those whose uncertain attempt was a revocation (answered 503, and it did happen). */
  chains: { open: number; told: number; toldAfterRevocation: number; revoked: number; lost: number };
  revokedChecked: number;
  before: RowCounts;
  after: RowCounts;
  liveRefreshTokens: number;
  slow?: unknown[];
}

/** Probes that need PostgreSQL, Redis and a worker: a client_credentials token, a login page, the admin API. */
async function probe(veil: VeilProcess, traffic: Traffic): Promise<boolean> {
  const { client, resource } = traffic.fixture;
  const timeout = AbortSignal.timeout(2_000);
  try {
    const token = await fetch(`${veil.issuer}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope: 'read' }).toString(),
      signal: timeout,
    });
    if (token.status !== 200) return false;
    const auth = await fetch(
      `${veil.issuer}/auth?${new URLSearchParams({ client_id: client.id, response_type: 'code', scope: 'openid', redirect_uri: client.redirectUri, code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' }).toString()}`,
      {
        redirect: 'manual',
        signal: timeout,
      },
    );
    if (auth.status !== 303) return false;
    const page = await fetch(new URL(auth.headers.get('location')!, veil.issuer), {
      headers: {
        cookie: auth.headers
          .getSetCookie()
          .map((c) => c.split(';')[0])
          .join('; '),
      },
      signal: timeout,
    });
    if (page.status !== 200) return false;
    await veil.admin('GET', `/admin/users?email=${encodeURIComponent('nobody@example.com')}`).catch((err: Error) => {
      if (!/: 404 /.test(err.message)) throw err;
    });
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `traffic` against `veil`, injects `fault` after the warm-up, measures the recovery, stops
 * the traffic, verifies, and returns the report (assertions are `assertFaultReport`'s).
 */
export async function runFault(veil: VeilProcess, traffic: Traffic, fault: Fault, stores: { databaseUrl: string; redis: Redis; keyPrefix: string }): Promise<FaultReport> {
  const before = await rowCounts(stores.databaseUrl);
  traffic.start();
  await sleep(WARMUP_MS);
  const faultAt = performance.now();
  await fault.down();
  await sleep(fault.outageMs);
  await fault.up();
  const backAt = performance.now();
  let recoveredAt = backAt;
  for (;;) {
    if (await probe(veil, traffic)) break;
    recoveredAt = performance.now();
    if (recoveredAt - backAt > 30_000) break;
    await sleep(100);
  }
  await sleep(AFTER_MS);
  await traffic.stop();
  await traffic.verifyAfterRecovery();
  const after = await rowCounts(stores.databaseUrl);

  if (process.env.FAULTS_DEBUG) {
    const seen = new Set<string>();
    for (const l of veil.logs().filter((l) => Number(l.level) >= 40)) {
      const k = String(l.msg) + JSON.stringify((l.err as { name?: string; code?: string })?.code ?? '');
      if (!seen.has(k)) {
        seen.add(k);
        console.log('  log', JSON.stringify(l).slice(0, 2500));
      }
    }
  }
  const failed = traffic.samples.filter((s) => s.outcome !== 'ok' && s.outcome !== 'refused');
  const lastFailure = failed.reduce((m, s) => Math.max(m, s.started), -Infinity);
  const ended = (kind: string) => traffic.chains.filter((c) => c.ended === kind).length;
  return {
    name: fault.name,
    outageMs: Math.round(backAt - faultAt),
    recoveryMs: Math.round(recoveredAt - backAt),
    during: traffic.between(faultAt, recoveredAt),
    total: traffic.between(-Infinity, Infinity),
    lastFailureAfterBackMs: Math.round(lastFailure - backAt),
    chains: {
      open: traffic.openChains,
      told: ended('told'),
      toldAfterRevocation: traffic.chains.filter((c) => c.toldAfter === 'revocation').length,
      revoked: ended('revoked'),
      lost: ended('lost'),
    },
    revokedChecked: traffic.revoked.size,
    before,
    after,
    liveRefreshTokens: await liveRefreshTokens(stores.redis, stores.keyPrefix),
    slow: traffic.samples
      .filter((s) => s.ended - s.started > 500 || s.outcome !== 'ok')
      .map((s) => ({ ...s, started: Math.round(s.started - faultAt), ms: Math.round(s.ended - s.started) })),
  };
}

export function assertFaultReport(report: FaultReport, traffic: Traffic, fault: Pick<Fault, 'dropsConnections'>): void {
  const count = (o: Outcome) => report.total.get(o) ?? 0;
  const errors = traffic.samples.filter((s) => s.outcome === 'server_error' || s.outcome === 'timeout').slice(0, 5);
  assert.equal(count('server_error'), 0, `no 500 (or malformed 503): ${JSON.stringify(errors)}`);
  assert.equal(count('timeout'), 0, `no request hangs past ${CLIENT_TIMEOUT_MS} ms: ${JSON.stringify(errors)}`);
  if (!fault.dropsConnections) assert.equal(count('dropped'), 0, 'no connection dropped by Veil');
  assert.ok((report.during.get('ok') ?? 0) + (report.during.get('unavailable') ?? 0) + (report.during.get('dropped') ?? 0) > 0, 'traffic ran during the fault');
  assert.ok(report.recoveryMs <= RECOVERY_LIMIT_MS, `probe recovered ${report.recoveryMs} ms after the store returned`);
  assert.ok(report.lastFailureAfterBackMs <= RECOVERY_LIMIT_MS, `a request started ${report.lastFailureAfterBackMs} ms after the store returned still failed`);
  assert.deepEqual(traffic.violations, [], 'no fork, no lost refresh token, no revoked token active, no unexpected answer');
  // Rows: accounts, clients and resource servers never go; a grant goes only with its chain's
  // revocation (the client revoked its refresh token, or presented a rotated one again).
  assert.equal(report.after.accounts, report.before.accounts, 'accounts');
  assert.equal(report.after.clients, report.before.clients, 'clients');
  assert.equal(report.after.resourceServers, report.before.resourceServers, 'resource servers');
  // Every open chain refreshed after recovery (so its grant row stands); a flow cut short after
  // its consent may leave a grant with no chain, which is no loss.
  assert.ok(report.after.grants >= report.chains.open, `a grant per open chain: ${report.after.grants} grants, ${report.chains.open} chains`);
  assert.equal(report.liveRefreshTokens, report.chains.open, 'exactly one live refresh token per open chain (no fork left in the store)');
  assert.ok(
    traffic.chains.some((c) => c.tokens.length > 3),
    'chains were refreshing',
  );
}

const fmt = (m: Map<Outcome, number>) =>
  [...m]
    .filter(([, n]) => n)
    .map(([o, n]) => `${o} ${n}`)
    .join(', ') || '-';

export function printReport(report: FaultReport): void {
  if (process.env.FAULTS_DEBUG) for (const s of report.slow ?? []) console.log('  slow', JSON.stringify(s));
  const lines = [
    `fault: ${report.name}`,
    `  outage ${report.outageMs} ms; recovered ${report.recoveryMs} ms after the store returned; last failed request started ${Math.max(0, report.lastFailureAfterBackMs)} ms after`,
    `  requests during the fault: ${fmt(report.during)}`,
    `  requests in all:           ${fmt(report.total)}`,
    `  chains: open ${report.chains.open}, ended told ${report.chains.told} (${report.chains.toldAfterRevocation} after a revocation answered 503), revoked ${report.chains.revoked}, lost ${report.chains.lost}; live refresh tokens in Redis ${report.liveRefreshTokens}; revoked tokens re-checked ${report.revokedChecked}`,
    `  rows before → after: accounts ${report.before.accounts} → ${report.after.accounts}, clients ${report.before.clients} → ${report.after.clients}, grants ${report.before.grants} → ${report.after.grants}, API consents ${report.before.consents} → ${report.after.consents}`,
  ];
  console.log(lines.join('\n'));
}
