/**
 * Veil Gate decisions per second per core, side by side with the bare HTTP floor: nginx-dialect
 * checks (`GET /check` with X-Original-*, as auth_request sends them) against `veil gate` run as
 * an operator runs it (bin/veil.js, the built CLI), with tokens a real Veil issued.
 *
 *   npm run build && node --import tsx bench/gate.ts     (needs the local PostgreSQL and Redis)
 *   BENCH_SECONDS=5 ...                (measured seconds per warm target; BENCH_WARMUP_SECONDS,
 *                                       BENCH_CONNECTIONS likewise; defaults 10, 2, 10)
 *   BENCH_GATE_TOKENS=20000 ...        (distinct tokens for the cold run; default 10000)
 *   BENCH_CPU_PROF=/tmp/prof ...       (writes the gate's .cpuprofile there; docs left alone)
 *   BENCH_ONLY=warm ...                (only the cases whose name contains one of these,
 *                                       comma-separated, e.g. to profile one; docs left alone)
 *
 * Cases: the HTTP floor (a bare node:http server answering 200, the most any decision service on
 * node:http could do); a warm cache (one token again and again: the SDK's verified-token cache
 * spares decryption and signature, the route's claims become headers); a warm exchange route
 * (the same, plus the exchanged token from the gate's cache: no call to Veil); distinct tokens
 * (each decrypted and verified in full, with the SDK's cache on, as in production).
 *
 * The gate and the floor each run in a child pinned to core 0 (taskset), autocannon in this
 * process on core 1, so "per CPU-second" divides by the CPU time the server process used (read
 * from /proc): the per-core figure the goals are judged on. Veil runs in this process and only
 * issues the tokens beforehand (and serves the JWKS once). Prints a table and writes its section
 * of docs/BENCHMARKS.md.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { gateDir, writeDecryptionKey, writeSecret } from '../test/helpers/gate.js';
import { tokenRequest, type HttpFlowClient } from '../test/helpers/http-flow.js';
import { registerResourceServer } from '../test/helpers/resource-servers.js';
import { REPO_ROOT } from '../test/helpers/process.js';
import { createTestStores } from '../test/helpers/stores.js';
import { startTestVeil } from '../test/helpers/veil.js';
import { loadSettings, measure, type Measurement } from './lib/load.js';
import { pinning, pinningNote, pinSelf, ServerProcess } from './lib/processes.js';
import { table, textTable, writeSection } from './lib/report.js';

const GOALS = { warm: 20_000, distinct: 2000 };
const API = 'https://api.bench';
const INTERNAL = 'https://internal.bench';
const HOST = 'api.bench';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const DISTINCT = Number(process.env.BENCH_GATE_TOKENS ?? 10_000);
const ISSUE_IN_FLIGHT = 32;
const only = process.env.BENCH_ONLY;
const selected = (name: string) => !only || only.split(',').some((part) => name.includes(part.trim()));
const profileDir = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : undefined;

const settings = loadSettings();
pinSelf();

const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');
const fmtUs = (perSecond: number) => `${(1e6 / perSecond).toFixed(1)} µs`;

type Created = { client: { client_id: string }; client_secret?: string };

const checkHeaders = (uri: string, token: string) => ({
  'x-original-method': 'GET',
  'x-original-uri': uri,
  'x-original-host': HOST,
  authorization: `Bearer ${token}`,
});

/** Tokens from Veil's token endpoint, `count` of them, ISSUE_IN_FLIGHT at a time. */
async function issue(client: HttpFlowClient, count: number): Promise<string[]> {
  const tokens: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next += 1;
      const res = await tokenRequest(client, { grant_type: 'client_credentials', resource: API, scope: 'orders:read' });
      if (res.status !== 200) throw new Error(`token request: ${res.status} ${JSON.stringify(res.body)}`);
      tokens.push(res.body.access_token!);
    }
  };
  await Promise.all(Array.from({ length: ISSUE_IN_FLIGHT }, worker));
  return tokens;
}

interface ColdRun {
  rps: number;
  /** Decisions per CPU-second of the gate process. */
  cpu: number | undefined;
  p99: number;
  failure?: string;
}

/** Every token exactly once (autocannon `amount`), so each decision is a full verification. */
async function coldRun(gate: ServerProcess, url: string, tokens: string[]): Promise<ColdRun> {
  let i = 0;
  const cpu0 = gate.cpuSeconds();
  const r = await autocannon({
    url: `${url}/check`,
    connections: settings.connections,
    pipelining: 1,
    amount: tokens.length,
    timeout: 30,
    requests: [{ method: 'GET', path: '/check', setupRequest: (req) => ({ ...req, headers: checkHeaders('/orders', tokens[i++ % tokens.length]!) }) }],
  });
  const cpu1 = gate.cpuSeconds();
  const seconds = cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined;
  const run: ColdRun = { rps: r['2xx'] / r.duration, cpu: seconds ? r['2xx'] / seconds : undefined, p99: r.latency.p99 };
  if (r.non2xx || r.errors) run.failure = `${r.non2xx} non-2xx, ${r.errors} errors`;
  return run;
}

const stores = await createTestStores();
const veil = await startTestVeil(stores, { LOG_LEVEL: 'warn', TOKEN_RATE_LIMIT_PER_CLIENT: '1000000', TOKEN_RATE_LIMIT_PER_ADDRESS: '1000000' });
const children: ServerProcess[] = [];
let dir: string | undefined;
let exitCode = 0;
try {
  const started = new Date();
  const api = await registerResourceServer(veil, { identifier: API, scopes: ['orders:read'], ttl: 3600 });
  await registerResourceServer(veil, { identifier: INTERNAL, scopes: ['orders:read'], ttl: 600 });
  const created = async (body: Record<string, unknown>): Promise<HttpFlowClient> => {
    const res = await veil.admin<Created>('POST', '/admin/clients', body);
    if (res.status !== 201) throw new Error(`client: ${res.status} ${JSON.stringify(res.body)}`);
    return { issuer: veil.issuer, clientId: res.body.client.client_id, clientSecret: res.body.client_secret!, redirectUri: 'http://127.0.0.1/unused' };
  };
  const worker = await created({ client_name: 'bench worker', grant_types: ['client_credentials'], resources: [API], resource_scopes: { [API]: ['orders:read'] } });
  const gateClient = await created({
    client_name: 'bench gate',
    grant_types: [TOKEN_EXCHANGE],
    resources: [INTERNAL],
    resource_scopes: { [INTERNAL]: ['orders:read'] },
    exchange_from: [API],
  });

  dir = await gateDir();
  const configFile = path.join(dir, 'gate.json');
  await fs.writeFile(
    configFile,
    JSON.stringify({
      issuer: veil.issuer,
      listen: { host: '127.0.0.1', port: 0 },
      audiences: [{ identifier: API, decryptionKeys: [await writeDecryptionKey(dir, 'api.jwk.json', api.privateKey, api.publicJwk.kid!)] }],
      client: { id: gateClient.clientId, secretFile: await writeSecret(dir, 'gate.secret', gateClient.clientSecret!) },
      cache: { maxEntries: DISTINCT + 1000, maxAgeSeconds: 600 },
      routes: [
        { name: 'orders', host: HOST, path: '/orders', audience: API, scopes: { all: ['orders:read'] }, headers: { sub: 'X-User', scope: 'X-Scope', client_id: 'X-Client' } },
        {
          name: 'internal',
          host: HOST,
          path: '/internal',
          audience: API,
          scopes: { all: ['orders:read'] },
          headers: { sub: 'X-User' },
          exchange: { resource: INTERNAL, scope: 'orders:read' },
        },
      ],
    }),
  );

  const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const gate = new ServerProcess(
    'veil gate',
    [...profile, path.join(REPO_ROOT, 'bin/veil.js'), 'gate', '--config', configFile, '--log-level', 'info'],
    { NODE_ENV: 'production' },
    REPO_ROOT,
  );
  children.push(gate);
  await gate.waitUntil('veil gate listening', () => /"msg":"veil gate listening"/.test(gate.output));
  const gateUrl = /"url":"(http:\/\/[^"]+)"/.exec(gate.output)![1]!;
  const floor = new ServerProcess(
    'http floor',
    ['-e', "require('node:http').createServer((q, s) => s.end()).listen(0, '127.0.0.1', function () { console.log('READY ' + this.address().port); })"],
    {},
    REPO_ROOT,
  );
  children.push(floor);
  await floor.waitUntil('the floor server', () => /READY \d+/.test(floor.output));
  const floorUrl = `http://127.0.0.1:${/READY (\d+)/.exec(floor.output)![1]}`;

  console.log(
    `gate bench: ${settings.seconds} s per warm target after ${settings.warmupSeconds} s warm-up, ${settings.connections} connections; ${fmtInt(DISTINCT)} distinct tokens; ${pinningNote()}`,
  );
  // The warm cases first, before Veil, PostgreSQL and Redis (unpinned) are busy issuing the
  // distinct tokens. The gate fetches Veil's JWKS and warms its JIT on tokens no run measures.
  const [hot, ...warmUp] = await issue(worker, 501);
  await coldRun(gate, gateUrl, warmUp);

  interface Result {
    name: string;
    /** Decisions per CPU-second of the server process. */
    cpu: number | undefined;
    wall: number;
    p99: number;
    goal?: number;
  }
  const results: Result[] = [];
  const failures: string[] = [];
  const warmCase = async (name: string, server: ServerProcess, url: string, pathName: string, headers: Record<string, string>, goal?: number) => {
    if (!selected(name)) return;
    const m: Measurement = await measure({ name, server, url, path: pathName, headers, requests: [{ method: 'GET', path: pathName, headers }] }, settings);
    if (m.failure) failures.push(`${name}: ${m.failure}`);
    results.push({ name, cpu: m.serverCpu ? m.rps / m.serverCpu : undefined, wall: m.rps, p99: m.p99, ...(goal !== undefined && { goal }) });
  };
  const FLOOR = 'HTTP floor (bare node:http, 200)';
  await warmCase(FLOOR, floor, floorUrl, '/', {});
  await warmCase('warm cache: one token, claims to headers', gate, gateUrl, '/check', checkHeaders('/orders/1', hot!), GOALS.warm);
  await warmCase('warm cache, exchange route: exchanged token from the cache', gate, gateUrl, '/check', checkHeaders('/internal/1', hot!));
  const coldName = `distinct tokens (${fmtInt(DISTINCT)}, each verified in full)`;
  if (selected(coldName)) {
    const distinct = await issue(worker, DISTINCT);
    // Let the issuing settle (PostgreSQL and Redis share the machine) before measuring.
    await new Promise((r) => setTimeout(r, 2000));
    const cold = await coldRun(gate, gateUrl, distinct);
    if (cold.failure) failures.push(`${coldName}: ${cold.failure}`);
    results.push({ name: coldName, cpu: cold.cpu, wall: cold.rps, p99: cold.p99, goal: GOALS.distinct });
  }
  if (failures.length) throw new Error(failures.join('\n'));

  const floorCpu = results.find((r) => r.name === FLOOR)?.cpu;
  const ratio = (n: number | undefined) => (n && floorCpu ? `${(n / floorCpu).toFixed(2)}×` : 'n/a');
  const goal = (n: number | undefined, target?: number) =>
    target === undefined ? '' : n !== undefined && n >= target ? `met (≥ ${fmtInt(target)}/s)` : `MISSED (≥ ${fmtInt(target)}/s)`;
  const head = ['case', 'decisions per CPU-second', 'CPU per decision', 'wall-clock/s', 'p99 ms', 'vs HTTP floor', 'goal'];
  const rows = results.map((r) => [r.name, r.cpu ? fmtInt(r.cpu) : 'n/a', r.cpu ? fmtUs(r.cpu) : 'n/a', fmtInt(r.wall), String(r.p99), ratio(r.cpu), goal(r.cpu, r.goal)]);
  const cpus = os.cpus();
  const md = [
    '## Gate decisions',
    '',
    `Measured by \`node --import tsx bench/gate.ts\` (part of \`npm run bench\`) on ${started.toISOString().slice(0, 10)}, ${cpus.length} cores (${cpus[0]?.model ?? 'cpu'}), Node ${process.version}; ${pinningNote()}. "decisions per CPU-second" divides the 200 answers by the CPU time the server process used (every thread): the per-core figure the goals are judged on; wall-clock figures also pay for whatever else ran on that core.`,
    `\`veil gate\` (bin/veil.js, \`NODE_ENV=production\`, JSON logs at info: no line per decision) answering nginx auth_request checks (\`GET /check\` with X-Original-Method/URI/Host and the bearer token) for tokens a real Veil issued (ES256, ECDH-ES+A256KW / A256GCM to a P-256 key). ${settings.connections} connections; warm targets run ${settings.seconds} s after ${settings.warmupSeconds} s of warm-up; the distinct-token run (last, after Veil issued its tokens) sends each of ${fmtInt(DISTINCT)} tokens once; 500 other tokens warmed the JIT and fetched the JWKS first. The HTTP floor is a bare node:http server answering 200 on the same core: no decision service on node:http can go faster.`,
    '',
    table(head, rows),
    '',
    'A warm decision is a route match, a SHA-256 of the token and an LRU look-up in the SDK cache, the scope check, the claims copied into headers and the prom-client counters; an exchange route adds a SHA-256 and an LRU look-up for the exchanged token. A distinct token costs what the SDK costs cold (`npm run bench:sdk`): jose through WebCrypto for the ECDH derivation, key unwrap, AES-GCM and ES256 check.',
    '',
  ].join('\n');

  console.log('');
  console.log(textTable(head, rows));
  if (profileDir || only) console.log(`\n${profileDir ? `profiling: the gate's .cpuprofile is in ${profileDir}` : 'BENCH_ONLY'}: docs/BENCHMARKS.md left unchanged`);
  else {
    await writeSection(path.join(REPO_ROOT, 'docs/BENCHMARKS.md'), 'gate', md);
    console.log('\nwrote the gate section of docs/BENCHMARKS.md');
  }
  if (!pinning) console.log('(not pinned: figures share the machine with the load generator)');
} catch (err) {
  console.error('gate bench failed:', err);
  exitCode = 1;
} finally {
  for (const child of children) await child.stop();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
  await veil.stop().catch((err: unknown) => console.error('stopping Veil:', err));
  await stores.cleanup();
}
process.exit(exitCode);
