/**
 * The latency Veil Gate adds behind a real nginx: the same nginx configuration
 * (docs/gateway/nginx.conf) with and without its `auth_request`, in front of the same upstream, in
 * the same run, measured round by round in turn, with a token a real Veil issued.
 *
 *   npm run build && node --import tsx bench/gateway-latency.ts   (needs the local PostgreSQL and Redis, and /usr/sbin/nginx)
 *   BENCH_SECONDS=5 ...           (measured seconds per target and round; default 5)
 *   BENCH_ROUNDS=3 ...            (rounds; each measures every target once; default 3)
 *   BENCH_CONNECTIONS=10 ...      (connections of the loaded case; the other has 1; default 10)
 *   BENCH_WARMUP_SECONDS=2 ...    (per target before the first round; default 2)
 *
 * Targets: nginx alone (auth_request removed: the template's own proxying, headers cleared);
 * nginx + gate on a claim-header route (warm: the SDK's verified-token cache has the token);
 * nginx + gate on an exchange route (warm: the exchanged token comes from the gate's cache, no
 * call to Veil). The gate runs as operators run it (`node bin/veil.js gate --config`, the built
 * CLI), introspection off. nginx (one worker), the gate and the upstream run pinned to core 0,
 * this process (the load generator) to core 1; Veil runs in this process and only issues tokens.
 *
 * The load generator is node:http with keep-alive connections, each sending its next request when
 * the last is answered, every latency recorded in microseconds (autocannon's histogram rounds to
 * whole milliseconds, coarser than the difference measured). p50/p99 are over every request of
 * every round. Prints a table and writes its section of docs/BENCHMARKS.md.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { gateDir, writeDecryptionKey, writeSecret } from '../test/helpers/gate.js';
import { tokenRequest, type HttpFlowClient } from '../test/helpers/http-flow.js';
import { freePort } from '../test/helpers/net.js';
import { renderNginxTemplate, startNginx, type RunningNginx } from '../test/helpers/nginx.js';
import { REPO_ROOT } from '../test/helpers/process.js';
import { registerResourceServer } from '../test/helpers/resource-servers.js';
import { createTestStores } from '../test/helpers/stores.js';
import { startTestVeil } from '../test/helpers/veil.js';
import { pinning, pinSelf, ServerProcess } from './lib/processes.js';
import { table, textTable, writeSection } from './lib/report.js';

const API = 'https://api.bench';
const INTERNAL = 'https://internal.bench';
const HOST = 'api.bench';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

const positive = (name: string, fallback: number) => {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${value}`);
  return n;
};
const SECONDS = positive('BENCH_SECONDS', 5);
const ROUNDS = Math.round(positive('BENCH_ROUNDS', 3));
const CONNECTIONS = Math.round(positive('BENCH_CONNECTIONS', 10));
const WARMUP_SECONDS = positive('BENCH_WARMUP_SECONDS', 2);

pinSelf();
const PINNING = pinning
  ? `nginx (one worker), the gate and the upstream pinned to core ${pinning.server} (taskset), the load generator (this process) to core ${pinning.client}; PostgreSQL and Redis not pinned`
  : 'NOT pinned (taskset missing or fewer than 2 cores): everything shares the machine';

/** The upstream: answers 200 with the headers it got (what the gate's test upstream does), in its own process. */
const UPSTREAM = `
const http = require('node:http');
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const body = JSON.stringify({ method: req.method, path: req.url, headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
});
server.keepAliveTimeout = 120000;
server.listen(0, '127.0.0.1', () => console.log('upstream listening on ' + server.address().port));
process.on('SIGTERM', () => process.exit(0));
`;

interface Target {
  name: string;
  url: string;
  path: string;
}

interface Samples {
  /** Latencies in microseconds. */
  latencies: number[];
  non200: number;
  errors: number;
  firstFailure?: string;
}

/** `connections` keep-alive connections, each sending one request after another for `seconds`. */
async function load(target: Target, headers: Record<string, string>, connections: number, seconds: number, into: Samples): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const url = new URL(target.path, target.url);
  const deadline = performance.now() + seconds * 1000;
  const one = () =>
    new Promise<void>((resolve) => {
      const started = process.hrtime.bigint();
      const req = http.request(url, { agent, headers: { host: HOST, ...headers } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          into.latencies.push(Number(process.hrtime.bigint() - started) / 1000);
          if (res.statusCode !== 200) {
            into.non200 += 1;
            into.firstFailure ??= `${target.name}: ${res.statusCode} ${body.slice(0, 200)}`;
          }
          resolve();
        });
      });
      req.on('error', (err) => {
        into.errors += 1;
        into.firstFailure ??= `${target.name}: ${err.message}`;
        resolve();
      });
      req.end();
    });
  const connection = async () => {
    while (performance.now() < deadline) await one();
  };
  await Promise.all(Array.from({ length: connections }, connection));
  agent.destroy();
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const fmtUs = (us: number) => (us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${Math.round(us)} µs`);
const fmtDiff = (us: number) => `${us >= 0 ? '+' : '−'}${fmtUs(Math.abs(us))}`;
const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');

const stores = await createTestStores();
const veil = await startTestVeil(stores);
const servers: ServerProcess[] = [];
const proxies: RunningNginx[] = [];
let dir: string | undefined;
let exitCode = 0;
try {
  const started = new Date();
  const api = await registerResourceServer(veil, { identifier: API, scopes: ['read', 'write'] });
  await registerResourceServer(veil, { identifier: INTERNAL, scopes: ['read'] });
  type Created = { client: { client_id: string }; client_secret?: string };
  const w = await veil.admin<Created>('POST', '/admin/clients', {
    client_name: 'bench worker',
    grant_types: ['client_credentials'],
    resources: [API],
    resource_scopes: { [API]: ['read', 'write'] },
  });
  const g = await veil.admin<Created>('POST', '/admin/clients', {
    client_name: 'bench gate',
    grant_types: [TOKEN_EXCHANGE],
    resources: [INTERNAL],
    resource_scopes: { [INTERNAL]: ['read'] },
    exchange_from: [API],
  });
  if (w.status !== 201 || g.status !== 201) throw new Error(`client registration failed: ${JSON.stringify([w.body, g.body])}`);
  const worker: HttpFlowClient = { issuer: veil.issuer, clientId: w.body.client.client_id, clientSecret: w.body.client_secret!, redirectUri: 'http://127.0.0.1/unused' };
  const issued = await tokenRequest(worker, { grant_type: 'client_credentials', resource: API, scope: 'read write' });
  if (issued.status !== 200) throw new Error(`token request failed: ${JSON.stringify(issued.body)}`);
  const authorization = `Bearer ${issued.body.access_token!}`;

  dir = await gateDir();
  const gatePort = await freePort();
  await fs.writeFile(
    path.join(dir, 'gate.json'),
    JSON.stringify({
      issuer: veil.issuer,
      listen: { host: '127.0.0.1', port: gatePort },
      audiences: [{ identifier: API, decryptionKeys: [await writeDecryptionKey(dir, 'api.jwk.json', api.privateKey, api.publicJwk.kid!)] }],
      client: { id: g.body.client.client_id, secretFile: await writeSecret(dir, 'gate-client.secret', g.body.client_secret!) },
      introspect: { enabled: false },
      routes: [
        { name: 'exchange', host: HOST, path: '/internal', audience: API, scopes: { all: ['read'] }, headers: { sub: 'X-User' }, exchange: { resource: INTERNAL, scope: 'read' } },
        { name: 'headers', host: HOST, path: '/orders', audience: API, scopes: { all: ['read'] }, headers: { sub: 'X-User', scope: 'X-Scope', client_id: 'X-Client' } },
      ],
    }),
  );

  const upstream = new ServerProcess('upstream', ['-e', UPSTREAM], {}, REPO_ROOT);
  servers.push(upstream);
  await upstream.waitUntil('listening', () => /upstream listening on \d+/.test(upstream.output));
  const upstreamPort = Number(/upstream listening on (\d+)/.exec(upstream.output)![1]);
  const gate = new ServerProcess(
    'veil gate',
    [path.join(REPO_ROOT, 'bin/veil.js'), 'gate', '--config', path.join(dir, 'gate.json')],
    { GATE_LOG_LEVEL: 'warn', NODE_ENV: 'production' },
    REPO_ROOT,
  );
  servers.push(gate);
  await gate.waitUntil('/healthz', () =>
    fetch(`http://127.0.0.1:${gatePort}/healthz`).then(
      (r) => r.ok,
      () => false,
    ),
  );

  const cpu = pinning?.server;
  const template = (port: number) => renderNginxTemplate({ VEIL_LISTEN: `127.0.0.1:${port}`, VEIL_GATE: `127.0.0.1:${gatePort}`, VEIL_UPSTREAM: `127.0.0.1:${upstreamPort}` });
  // nginx alone: the same file without its auth_request (so also without any gate header).
  const alone = await startNginx({
    ...(cpu !== undefined && { cpu }),
    http: async (port) => {
      const conf = await template(port);
      if (!/^\s*auth_request \/_veil_check;$/m.test(conf)) throw new Error('docs/gateway/nginx.conf has no auth_request line to remove');
      return conf.replace(/^\s*auth_request \/_veil_check;$/m, '');
    },
  });
  proxies.push(alone);
  const gated = await startNginx({ ...(cpu !== undefined && { cpu }), http: template });
  proxies.push(gated);

  const targets: Target[] = [
    { name: 'nginx alone', url: alone.url, path: '/orders/1' },
    { name: 'nginx + gate, claim headers', url: gated.url, path: '/orders/1' },
    { name: 'nginx + gate, exchange route', url: gated.url, path: '/internal/1' },
  ];
  const headers = { authorization };
  // Every target answers 200 before anything is measured (the gate's decision, the exchange).
  for (const target of targets) {
    const check: Samples = { latencies: [], non200: 0, errors: 0 };
    await load(target, headers, 1, 0.2, check);
    if (check.firstFailure) throw new Error(`before measuring: ${check.firstFailure}`);
  }

  console.log(`gateway latency bench: ${ROUNDS} rounds × ${SECONDS} s per target, at 1 and ${CONNECTIONS} connections; ${PINNING}`);
  const levels = [1, CONNECTIONS];
  const results = new Map<string, Samples>();
  for (const connections of levels) {
    for (const target of targets) await load(target, headers, connections, WARMUP_SECONDS, { latencies: [], non200: 0, errors: 0 });
    for (let round = 1; round <= ROUNDS; round++) {
      for (const target of targets) {
        const key = `${connections} ${target.name}`;
        const samples = results.get(key) ?? { latencies: [], non200: 0, errors: 0 };
        results.set(key, samples);
        await load(target, headers, connections, SECONDS, samples);
        if (samples.firstFailure) throw new Error(samples.firstFailure);
        process.stdout.write(`  ${connections} conn., round ${round}: ${target.name}\n`);
      }
    }
  }

  const head = ['connections', 'path', 'requests', 'p50', 'p99', 'added p50', 'added p99'];
  const rows: string[][] = [];
  for (const connections of levels) {
    const stats = targets.map((t) => {
      const s = results.get(`${connections} ${t.name}`)!;
      const sorted = Float64Array.from(s.latencies).sort();
      const list = Array.from(sorted);
      return { name: t.name, count: list.length, p50: percentile(list, 50), p99: percentile(list, 99) };
    });
    const base = stats[0]!;
    for (const s of stats) {
      const isBase = s === base;
      rows.push([String(connections), s.name, fmtInt(s.count), fmtUs(s.p50), fmtUs(s.p99), isBase ? '' : fmtDiff(s.p50 - base.p50), isBase ? '' : fmtDiff(s.p99 - base.p99)]);
    }
  }

  const cpus = os.cpus();
  const md = [
    '## Veil Gate behind nginx: added latency',
    '',
    `Measured by \`npm run build && node --import tsx bench/gateway-latency.ts\` on ${started.toISOString().slice(0, 10)}, ${cpus.length} cores (${cpus[0]?.model ?? 'cpu'}), Node ${process.version}, Debian's nginx (/usr/sbin/nginx); ${PINNING}. nginx, the gate and the upstream share one core, as on a small host; the machine's load average when the run ended: ${os.loadavg()[0]!.toFixed(2)} (other work on the server core shows up as latency).`,
    `One configuration, docs/gateway/nginx.conf, twice: as it is (nginx + gate) and without its \`auth_request\` line (nginx alone), in front of the same upstream (node:http answering its request headers as JSON), measured in turn, ${ROUNDS} rounds of ${SECONDS} s per target, at 1 connection (latency with no queueing) and at ${CONNECTIONS}. The gate runs as \`veil gate --config\` (the built CLI), introspection off, with a token a real Veil issued, the same token throughout: the warm case (the SDK's verified-token cache has it; on the exchange route the exchanged token comes from the gate's cache, so no call to Veil). Latency is from sending a request to its last byte, in the bench process (node:http, keep-alive), in microseconds; p50/p99 over every request of every round.`,
    '',
    table(head, rows),
    '',
    "The added latency is nginx's auth subrequest (a second keep-alive HTTP exchange, to the gate) plus the gate's decision; at more connections it also queues, since everything shares one core. Cold tokens (each decrypted and verified in full) cost what the SDK bench measures per verification on top.",
    '',
  ].join('\n');
  console.log('');
  console.log(textTable(head, rows));
  await writeSection(path.join(REPO_ROOT, 'docs/BENCHMARKS.md'), 'gateway-latency', md);
  console.log('\nwrote the gateway latency section of docs/BENCHMARKS.md');
} catch (err) {
  console.error('gateway latency bench failed:', err);
  exitCode = 1;
} finally {
  for (const nginx of proxies) await nginx.close();
  for (const server of servers) await server.stop();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
  await veil.stop();
  await stores.cleanup();
}
process.exit(exitCode);
