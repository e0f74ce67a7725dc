/**
 * Cluster throughput: `node dist/main.js` with WEB_CONCURRENCY=1 and =2 over the same
 * PostgreSQL and Redis, loaded with client_credentials token requests for a registered resource
 * server (a sealed access token per request: ES256 JWS inside an ECDH-ES JWE, plus the Redis
 * writes of its index). Runs alternate 1, 2, 1, 2 ... so that drift on a shared machine hits both.
 * Prints a table and writes the "Cluster" section of docs/BENCHMARKS.md.
 *
 *   npm run bench:cluster            (BENCH_SECONDS, BENCH_ROUNDS, BENCH_CONNECTIONS to change)
 *
 * Requests only ever go to 127.0.0.1, the run is bounded in time and stops by itself.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { freePort } from '../test/helpers/net.js';
import { ManagedProcess, REPO_ROOT } from '../test/helpers/process.js';
import { generateEncryptionKey } from '../test/helpers/resource-servers.js';
import { createTestStores } from '../test/helpers/stores.js';
import { writeSection } from './lib/report.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const WARMUP_SECONDS = 3;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const RESOURCE = 'https://bench.example/api';

interface Run {
  workers: number;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  /** CPU used during the run, in cores: this (load generator) process, Veil's processes, the whole machine. */
  loaderCores: number;
  veilCores: number;
  machineCores: number;
}

// CPU accounting from /proc (Linux): Veil's process tree, and the machine as a whole, so that the
// report can say how much of the CPU went to Veil, to the load generator and to everything else.
const TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

function processTicks(): Map<number, { ppid: number; ticks: number }> {
  const out = new Map<number, { ppid: number; ticks: number }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(name), { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/** CPU seconds used so far by `root` and its descendants (Veil's primary and workers). */
function treeSeconds(root: number): number {
  const all = processTicks();
  const tree = new Set([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, p] of all) if (!tree.has(pid) && tree.has(p.ppid)) grew = tree.add(pid).size > 0;
  }
  return [...tree].reduce((sum, pid) => sum + (all.get(pid)?.ticks ?? 0), 0) / TICKS;
}

/** Busy CPU seconds of the whole machine so far. */
function machineSeconds(): number {
  const [, ...v] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = v;
  return (user! + nice! + system! + irq! + softirq! + (steal ?? 0)) / TICKS;
}

const stores = await createTestStores();
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-bench-cluster-'));
const env = {
  NODE_ENV: 'test',
  HOST: '127.0.0.1',
  KEYS_DIR: path.join(dir, 'keys'),
  DATABASE_URL: stores.databaseUrl,
  REDIS_URL: stores.redisUrl,
  REDIS_KEY_PREFIX: stores.keyPrefix,
  VEIL_SEED: 'off',
  LOG_LEVEL: 'info', // nothing is logged per token request; the ready lines are info
  // The bench measures issuance, not the throttles (100 r/s per client, 500 per address by default).
  TOKEN_RATE_LIMIT_PER_CLIENT: '1000000',
  TOKEN_RATE_LIMIT_PER_ADDRESS: '1000000',
};

let credentials: { id: string; secret: string } | undefined;

async function register(adminPort: number) {
  const post = async <T>(p: string, body: unknown) => {
    // No ADMIN_TOKEN configured: the primary generated one into KEYS_DIR.
    const authorization = `Bearer ${readFileSync(path.join(env.KEYS_DIR, 'admin-token'), 'utf8').trim()}`;
    const res = await fetch(`http://127.0.0.1:${adminPort}${p}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body: JSON.stringify(body) });
    if (res.status !== 201) throw new Error(`${p}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  const { publicJwk } = await generateEncryptionKey();
  await post('/admin/resources', { identifier: RESOURCE, name: 'bench API', scopes: ['read'], jwk: publicJwk });
  const created = await post<{ client: { client_id: string }; client_secret: string }>('/admin/clients', {
    client_name: 'bench',
    grant_types: ['client_credentials'],
    scope: 'read',
    resources: [RESOURCE],
  });
  return { id: created.client.client_id, secret: created.client_secret };
}

async function load(port: number, seconds: number, veilPid: number) {
  const { id, secret } = credentials!;
  const cpu = process.cpuUsage();
  const veil0 = treeSeconds(veilPid);
  const machine0 = machineSeconds();
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/token`,
    method: 'POST',
    connections: CONNECTIONS,
    duration: seconds,
    headers: {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: RESOURCE, scope: 'read' }).toString(),
  });
  const used = process.cpuUsage(cpu);
  return {
    result,
    loaderCores: (used.user + used.system) / 1e6 / seconds,
    veilCores: (treeSeconds(veilPid) - veil0) / seconds,
    machineCores: (machineSeconds() - machine0) / seconds,
  };
}

/**
 * The machine is shared: before each run, wait (up to QUIET_WAIT_SECONDS) until the other load on
 * it stays below QUIET_CORES over a 2 s window. The run goes ahead anyway after that; the CPU
 * columns of the report show what else was running.
 */
const QUIET_CORES = 0.3;
/** A run during which everything else on the machine used more than this is set aside. */
const DISTURBED_CORES = 0.5;
const QUIET_WAIT_SECONDS = Number(process.env.BENCH_QUIET_WAIT_SECONDS ?? 120);
async function waitForQuiet(): Promise<void> {
  const started = Date.now();
  for (let waited = false; ; waited = true) {
    const before = machineSeconds();
    await new Promise((r) => setTimeout(r, 2000));
    const busy = (machineSeconds() - before) / 2;
    const seconds = Math.round((Date.now() - started) / 1000);
    if (busy < QUIET_CORES) {
      if (waited) console.log(`  quiet after ${seconds} s`);
      return;
    }
    if (seconds > QUIET_WAIT_SECONDS) {
      console.log(`  machine still busy after ${seconds} s (${busy.toFixed(2)} cores in use by others); measuring anyway`);
      return;
    }
    if (!waited) console.log(`  waiting for a quieter machine (${busy.toFixed(2)} cores in use by others) ...`);
  }
}

async function measure(workers: number): Promise<Run> {
  await waitForQuiet();
  const port = await freePort();
  const adminPort = await freePort();
  const veil = new ManagedProcess(process.execPath, ['dist/main.js'], {
    ...env,
    WEB_CONCURRENCY: String(workers),
    PORT: String(port),
    ISSUER: `http://127.0.0.1:${port}`,
    ADMIN_PORT: String(adminPort),
  });
  try {
    await veil.waitFor(workers > 1 ? /"cluster is ready"/ : /"Veil is ready"/, 90_000);
    credentials ??= await register(adminPort);
    await load(port, WARMUP_SECONDS, veil.child.pid!);
    const { result, loaderCores, veilCores, machineCores } = await load(port, SECONDS, veil.child.pid!);
    return {
      workers,
      rps: result.requests.average,
      p50: result.latency.p50,
      p99: result.latency.p99,
      non2xx: result.non2xx,
      errors: result.errors,
      loaderCores,
      veilCores,
      machineCores,
    };
  } finally {
    const code = await veil.stop();
    if (code !== 0) console.error(`veil exited with ${code}:\n${veil.output.slice(-2000)}`);
  }
}

try {
  const runs: Run[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (const workers of [1, 2]) {
      console.log(`round ${round}: ${workers} worker(s), ${SECONDS} s ...`);
      const run = await measure(workers);
      console.log(
        `  ${run.rps.toFixed(0)} req/s, p50 ${run.p50} ms, p99 ${run.p99} ms, non-2xx ${run.non2xx}, errors ${run.errors}; CPU cores: Veil ${run.veilCores.toFixed(2)}, load generator ${run.loaderCores.toFixed(2)}, machine ${run.machineCores.toFixed(2)}`,
      );
      runs.push(run);
    }
  }
  const failed = runs.filter((r) => r.non2xx || r.errors);
  if (failed.length) throw new Error(`requests failed during the bench: ${JSON.stringify(failed)}`);

  const median = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  // Other load on the shared machine (other test suites, builds) distorts a run; such runs are
  // shown but left out of the medians, unless every run of that worker count was disturbed.
  const other = (r: Run) => r.machineCores - r.veilCores - r.loaderCores;
  const disturbed = (r: Run) => other(r) > DISTURBED_CORES;
  const used = (workers: number) => {
    const all = runs.filter((r) => r.workers === workers);
    const clean = all.filter((r) => !disturbed(r));
    return clean.length ? clean : all;
  };
  const summary = [1, 2].map((workers) => {
    const mine = used(workers);
    return {
      workers,
      rps: median(mine.map((r) => r.rps)),
      each: runs
        .filter((r) => r.workers === workers)
        .map((r) => (mine.includes(r) ? r.rps.toFixed(0) : `(${r.rps.toFixed(0)})`))
        .join(', '),
      p50: median(mine.map((r) => r.p50)),
      p99: median(mine.map((r) => r.p99)),
      loaderCores: median(mine.map((r) => r.loaderCores)),
      veilCores: median(mine.map((r) => r.veilCores)),
      otherCores: median(mine.map(other)),
    };
  });
  const gain = summary[1]!.rps / summary[0]!.rps;
  const gainRange = [1, 2].map((w) => used(w).map((r) => r.rps));
  const lowGain = Math.min(...gainRange[1]!) / Math.max(...gainRange[0]!);
  const highGain = Math.max(...gainRange[1]!) / Math.min(...gainRange[0]!);
  const setAside = runs.filter((r) => !used(r.workers).includes(r)).length;
  const cpus = os.cpus();
  const md = [
    '## Cluster',
    '',
    `Measured by \`npm run bench:cluster\` on ${new Date().toISOString().slice(0, 10)}, ${cpus.length} cores (${cpus[0]?.model ?? 'cpu'}), loopback, no TLS.`,
    `\`POST /token\` with \`grant_type=client_credentials\` and a registered resource (a sealed access token per request), client_secret_basic, against PostgreSQL and Redis on the same machine. autocannon, ${CONNECTIONS} connections, ${SECONDS} s per run after a ${WARMUP_SECONDS} s warm-up, ${ROUNDS} runs per worker count, alternating 1, 2, 1, 2, each run on a freshly started Veil once other load on the machine stayed below ${QUIET_CORES} cores for 2 s (or after ${QUIET_WAIT_SECONDS} s of waiting).`,
    '',
    '| WEB_CONCURRENCY | req/s (median) | runs | p50 latency | p99 latency | CPU: Veil | CPU: load generator | CPU: everything else |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...summary.map(
      (s) =>
        `| ${s.workers} | ${s.rps.toFixed(0)} | ${s.each} | ${s.p50.toFixed(1)} ms | ${s.p99.toFixed(1)} ms | ${s.veilCores.toFixed(2)} | ${s.loaderCores.toFixed(2)} | ${s.otherCores.toFixed(2)} |`,
    ),
    '',
    `Gain with two workers: **${gain.toFixed(2)}x** the throughput of one (medians of the runs kept; ${lowGain.toFixed(2)}x to ${highGain.toFixed(2)}x between the worst and the best of them). The other columns are medians of the same runs.`,
    '',
    `Runs in parentheses had more than ${DISTURBED_CORES} cores of other load on the machine during the measurement and are left out of the medians (${setAside} of ${runs.length} runs; a worker count whose runs were all disturbed would keep them all).`,
    '',
    `CPU columns are cores in use during the measured run (from /proc): Veil's processes (primary and workers), the load generator (autocannon in the bench process), and everything else on the machine, which includes Redis, PostgreSQL and any unrelated load. All of them share the same ${cpus.length} cores, so two workers compete with the load generator and the stores for CPU: the gain here is smaller than on a host whose cores are Veil's alone, and it is not a forecast for larger machines.`,
  ].join('\n');
  await writeSection(path.join(REPO_ROOT, 'docs/BENCHMARKS.md'), 'cluster', md);
  console.log(`\n${md}`);
} finally {
  await stores.cleanup();
  await fs.rm(dir, { recursive: true, force: true });
}
