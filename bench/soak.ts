/**
 * Soak: the fault suite's mixed traffic (test/helpers/traffic.ts: logins through the pages, code
 * flows, refresh chains with rotation, client_credentials, introspection, revocation) against one
 * Veil process (`node dist/main.js`, PostgreSQL and Redis) for SOAK_SECONDS (default 600).
 * Reports throughput, error rate, p50/p99 latency, and the server's heap used and RSS, read from
 * the admin API's /metrics (prom-client's process metrics) every SOAK_SAMPLE_SECONDS.
 *
 * Heap used between collections says little (V8 collects the old space when it likes), so every
 * SOAK_GC_SECONDS the server, started with --expose-gc and a one-line probe, is sent SIGUSR2: it
 * runs a full collection and prints its heap used and RSS. Fails (exit 1) if any request errs, a
 * refresh chain forks or loses a token, or the heap keeps growing: the post-collection heap after
 * the first SOAK_WARMUP_SECONDS, fitted with a least-squares line, must rise less than
 * SOAK_HEAP_SLOPE_MB_PER_MIN (default 0.5). Writes the "Soak" section of docs/BENCHMARKS.md.
 *
 *   npm run bench:soak            (SOAK_SECONDS=60 for a short run)
 *
 * SOAK_REDIS=cluster runs the same against a three-master Redis Cluster started for the run
 * (test/helpers/redis-topologies.ts) instead of the local Redis, and SOAK_REDIS=single against the
 * local Redis, to compare the two (docs/SCALING.md); with SOAK_REDIS set, a run only prints.
 *
 * Requests only ever go to 127.0.0.1; the run is bounded in time and stops by itself.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/helpers/net.js';
import { ManagedProcess, REPO_ROOT } from '../test/helpers/process.js';
import { startRedisCluster } from '../test/helpers/redis-topologies.js';
import { generateEncryptionKey } from '../test/helpers/resource-servers.js';
import { createTestStores } from '../test/helpers/stores.js';
import { provisionTraffic, Traffic, type Outcome } from '../test/helpers/traffic.js';
import { table, textTable, writeSection } from './lib/report.js';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 600);
const SAMPLE_SECONDS = Number(process.env.SOAK_SAMPLE_SECONDS ?? 5);
const WARMUP_SECONDS = Number(process.env.SOAK_WARMUP_SECONDS ?? Math.min(120, Math.round(SECONDS / 5)));
const SLOPE_LIMIT = Number(process.env.SOAK_HEAP_SLOPE_MB_PER_MIN ?? 0.5);
const GC_SECONDS = Number(process.env.SOAK_GC_SECONDS ?? 30);
/** Preloaded into the server: SIGUSR2 runs a full collection and prints what survived. */
const HEAP_PROBE = `data:text/javascript,process.on('SIGUSR2', () => { globalThis.gc(); const m = process.memoryUsage(); process.stderr.write(JSON.stringify({ heapProbe: true, heapUsed: m.heapUsed, rss: m.rss }) + '\\n'); });`;
const MB = 1024 * 1024;

interface MemorySample {
  t: number;
  heapUsed: number;
  rss: number;
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return sxx ? points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0) / sxx : 0;
}

const CLUSTER = process.env.SOAK_REDIS === 'cluster';
/** Only the default run writes docs/BENCHMARKS.md. */
const REPORT = !process.env.SOAK_REDIS;
const stores = await createTestStores();
const redisCluster = CLUSTER ? await startRedisCluster() : undefined;
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-bench-soak-'));
const port = await freePort();
const adminPort = await freePort();
const issuer = `http://127.0.0.1:${port}`;
const keysDir = path.join(dir, 'keys');
const veil = new ManagedProcess(process.execPath, ['--expose-gc', '--import', HEAP_PROBE, 'dist/main.js'], {
  NODE_ENV: 'test',
  HOST: '127.0.0.1',
  PORT: String(port),
  ISSUER: issuer,
  ADMIN_PORT: String(adminPort),
  KEYS_DIR: keysDir,
  DATABASE_URL: stores.databaseUrl,
  ...(redisCluster ? { REDIS_CLUSTER_NODES: redisCluster.nodesEnv } : { REDIS_URL: stores.redisUrl }),
  REDIS_KEY_PREFIX: stores.keyPrefix,
  VEIL_SEED: 'off',
  LOG_LEVEL: 'info', // the ready line is info
  TOKEN_RATE_LIMIT_PER_CLIENT: '1000000',
  TOKEN_RATE_LIMIT_PER_ADDRESS: '1000000',
});

let exitCode = 0;
try {
  await veil.waitFor(/"Veil is ready"/, 90_000);
  const adminToken = (await fs.readFile(path.join(keysDir, 'admin-token'), 'utf8')).trim();
  const admin = async <T>(method: string, p: string, body?: unknown): Promise<T> => {
    const res = await fetch(`http://127.0.0.1:${adminPort}${p}`, {
      method,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status >= 300) throw new Error(`admin ${method} ${p}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  const memory = async (): Promise<MemorySample> => {
    const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`, { headers: { authorization: `Bearer ${adminToken}` } });
    const text = await res.text();
    const metric = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    return { t: performance.now(), heapUsed: metric('nodejs_heap_size_used_bytes'), rss: metric('process_resident_memory_bytes') };
  };
  /** Heap used and RSS right after a full collection in the server. */
  const collected = async (): Promise<MemorySample> => {
    const seen = veil.output.length;
    process.kill(veil.child.pid!, 'SIGUSR2');
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(20)) {
      const line = /\{"heapProbe":true,"heapUsed":(\d+),"rss":(\d+)\}/.exec(veil.output.slice(seen));
      if (line) return { t: performance.now(), heapUsed: Number(line[1]), rss: Number(line[2]) };
    }
    throw new Error('the heap probe did not answer');
  };

  const { publicJwk } = await generateEncryptionKey();
  const fixture = await provisionTraffic(admin, { issuer, users: 24, resourceJwk: publicJwk });
  const traffic = new Traffic(fixture, { timeoutMs: 10_000, chains: 8, maxChains: 16, keepSamples: false });
  await traffic.prepare();

  console.log(`soak: ${SECONDS} s of mixed traffic against ${issuer} (pid ${veil.child.pid}); /metrics every ${SAMPLE_SECONDS} s, a full collection every ${GC_SECONDS} s`);
  const samples: MemorySample[] = [await memory()];
  const started = performance.now();
  const gcSamples: MemorySample[] = [{ ...(await collected()), t: started }];
  traffic.start();
  while (performance.now() - started < SECONDS * 1000) {
    await sleep(SAMPLE_SECONDS * 1000);
    samples.push(await memory());
    if (performance.now() - gcSamples.at(-1)!.t >= GC_SECONDS * 1000) {
      const gc = await collected();
      gcSamples.push(gc);
      console.log(
        `  ${Math.round((gc.t - started) / 1000)} s: heap after a full collection ${(gc.heapUsed / MB).toFixed(1)} MB, rss ${(gc.rss / MB).toFixed(1)} MB, ${traffic.latency.count} requests ok`,
      );
    }
  }
  await traffic.stop();
  const elapsed = (performance.now() - started) / 1000;

  // ---- figures --------------------------------------------------------------------------------
  const totals = new Map<Outcome, number>();
  for (const byOutcome of traffic.counts.values()) for (const [o, n] of byOutcome) totals.set(o, (totals.get(o) ?? 0) + n);
  const all = [...totals.values()].reduce((a, b) => a + b, 0);
  const ok = totals.get('ok') ?? 0;
  const refused = totals.get('refused') ?? 0;
  const errors = all - ok - refused;
  const byOp = [...traffic.counts].map(([op, m]) => [
    op,
    String([...m.values()].reduce((a, b) => a + b, 0)),
    String(m.get('ok') ?? 0),
    String([...m].filter(([o]) => o !== 'ok').reduce((a, [, n]) => a + n, 0)),
  ]);

  // The post-collection heap after warm-up, fitted; RSS from /metrics.
  const minutes = (s: MemorySample) => (s.t - started) / 60_000;
  const gcAfterWarmup = gcSamples.filter((s) => s.t - started >= WARMUP_SECONDS * 1000);
  const afterWarmup = samples.filter((s) => s.t - started >= WARMUP_SECONDS * 1000);
  const heapSlope = slope(gcAfterWarmup.map((s) => [minutes(s), s.heapUsed / MB]));
  const rssSlope = slope(afterWarmup.map((s) => [minutes(s), s.rss / MB]));
  const first = samples[0]!;
  const last = samples.at(-1)!;
  const gcFirst = gcSamples[0]!;
  const gcWarm = gcAfterWarmup[0] ?? gcFirst;
  const gcLast = gcSamples.at(-1)!;
  const heapGrows = heapSlope > SLOPE_LIMIT;

  const fmtMb = (b: number) => `${(b / MB).toFixed(1)} MB`;
  const head = ['figure', 'value'];
  const rows = [
    ['duration', `${Math.round(elapsed)} s`],
    ['requests', `${all.toLocaleString('en-US')} (${(all / elapsed).toFixed(1)}/s)`],
    ['answered as expected (2xx/3xx)', `${ok.toLocaleString('en-US')} (${(ok / elapsed).toFixed(1)}/s)`],
    ['refused (4xx)', String(refused)],
    ['errors (5xx, dropped, timeouts)', `${errors} (${((100 * errors) / Math.max(1, all)).toFixed(3)}%)`],
    ['latency p50 / p99 (answered)', `${traffic.latency.percentile(50)} ms / ${traffic.latency.percentile(99)} ms`],
    [
      'refresh chains',
      `${traffic.openChains} open at the end; ended: revoked ${traffic.endedChains.revoked + traffic.chains.filter((c) => c.ended === 'revoked').length}, told ${traffic.chains.filter((c) => c.ended === 'told').length}, lost ${traffic.chains.filter((c) => c.ended === 'lost').length}`,
    ],
    ['violations (fork, lost token, revoked token active)', String(traffic.violations.length)],
    ['heap used after a full collection: start / after warm-up / end', `${fmtMb(gcFirst.heapUsed)} / ${fmtMb(gcWarm.heapUsed)} / ${fmtMb(gcLast.heapUsed)}`],
    ['heap used as sampled (no collection): start / end / highest', `${fmtMb(first.heapUsed)} / ${fmtMb(last.heapUsed)} / ${fmtMb(Math.max(...samples.map((s) => s.heapUsed)))}`],
    ['RSS: start / end / highest', `${fmtMb(first.rss)} / ${fmtMb(last.rss)} / ${fmtMb(Math.max(...samples.map((s) => s.rss)))}`],
    [`post-collection heap slope after ${WARMUP_SECONDS} s (limit ${SLOPE_LIMIT} MB/min)`, `${heapSlope.toFixed(3)} MB/min ${heapGrows ? '(GROWS)' : '(flat)'}`],
    ['RSS slope after warm-up', `${rssSlope.toFixed(3)} MB/min`],
  ];
  console.log(`\n${textTable(head, rows)}\n\n${textTable(['op', 'requests', 'ok', 'other'], byOp)}`);
  for (const v of traffic.violations.slice(0, 10)) console.log(`violation: ${v.kind}: ${v.detail}`);

  const markdown = [
    '## Soak',
    '',
    `Measured by \`${process.env.SOAK_SECONDS ? `SOAK_SECONDS=${SECONDS} ` : ''}npm run bench:soak\` on ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores (${os.cpus()[0]?.model.trim()}), Node ${process.version}, loopback, no TLS, nothing pinned.`,
    "One Veil process (`node dist/main.js`) on PostgreSQL and Redis, and the fault suite's mixed traffic (test/helpers/traffic.ts): a browser login through the login and consent pages then a code exchange (one loop), refresh chains with rotation (8 to 16, each refreshing in turn; past 16 a new login retires the oldest chain by revoking its refresh token), `client_credentials` (2 loops), introspection by the resource server (2 loops, a quarter of them of revoked tokens, which must be inactive), revocation of access tokens (1 loop); 20 ms between two requests of a loop. Heap used and RSS are the server's, from the admin `/metrics` (prom-client process metrics), every " +
      `${SAMPLE_SECONDS} s; every ${GC_SECONDS} s the server (started with \`--expose-gc\` and a one-line SIGUSR2 probe) runs a full collection and reports the heap that survived it. The heap check fits a line through those post-collection figures after the first ${WARMUP_SECONDS} s and fails above ${SLOPE_LIMIT} MB/min.`,
    '',
    table(head, rows),
    '',
    table(['op', 'requests', 'ok', 'other'], byOp),
  ].join('\n');
  if (REPORT) {
    await writeSection(path.join(REPO_ROOT, 'docs/BENCHMARKS.md'), 'soak', markdown);
    console.log('\nwrote the Soak section of docs/BENCHMARKS.md');
  }

  if (errors > 0 || traffic.violations.length > 0) {
    console.error(`soak FAILED: ${errors} errors, ${traffic.violations.length} violations`);
    exitCode = 1;
  }
  if (heapGrows) {
    console.error(`soak FAILED: the heap keeps growing (${heapSlope.toFixed(3)} MB/min > ${SLOPE_LIMIT})`);
    exitCode = 1;
  }
} finally {
  const code = await veil.stop();
  if (code !== 0) console.error(`veil exited with ${code}:\n${veil.output.slice(-2000)}`);
  await redisCluster?.stop();
  await stores.cleanup();
  await fs.rm(dir, { recursive: true, force: true });
}
process.exit(exitCode);
