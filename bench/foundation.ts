/**
 * Foundation figures: start-up time (embedded and PostgreSQL + Redis) and login latency
 * (argon2id at the configured cost) over real HTTP. Prints a table and writes
 * docs/BENCHMARKS.md. Run with `npm run bench` (needs the local PostgreSQL and Redis).
 *
 * Requests only ever go to 127.0.0.1, are bounded in count, and the run stops by itself.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { postLogin, startLoginInteraction } from '../test/helpers/http-flow.js';
import { freePort } from '../test/helpers/net.js';
import { REPO_ROOT } from '../test/helpers/process.js';
import { createTestStores, type TestStores } from '../test/helpers/stores.js';
import { startTestVeil, type TestVeil } from '../test/helpers/veil.js';

const STARTS = 3;
const LOGINS = 30;

function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { median: at(0.5), p95: at(0.95), n: sorted.length };
}

const fmt = (ms: number) => `${ms.toFixed(0)} ms`;

/** Time from spawning `node dist/main.js` to its "Veil is ready" log line. */
async function timeStart(env: Record<string, string>): Promise<{ wallMs: number; reportedMs: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'dist/main.js')], {
    cwd: REPO_ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const ready = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line:\n${out}`)), 60_000);
    child.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.includes('"Veil is ready"'));
      if (line) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.on('exit', (code) => reject(new Error(`exited ${code}:\n${out}`)));
  });
  const wallMs = performance.now() - started;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return { wallMs, reportedMs: (JSON.parse(ready) as { startupMs: number }).startupMs };
}

async function startupFigures(stores: TestStores) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-bench-'));
  const base = async () => ({ PORT: String(await freePort()), ADMIN_PORT: String(await freePort()), VEIL_SEED: 'off' });
  const embedded = { VEIL_DATA_DIR: path.join(dir, 'data'), KEYS_DIR: path.join(dir, 'keys'), DATABASE_URL: '', REDIS_URL: '' };
  const first = await timeStart({ ...(await base()), ...embedded });
  const embeddedRuns = [];
  for (let i = 0; i < STARTS; i++) embeddedRuns.push(await timeStart({ ...(await base()), ...embedded }));
  const served = {
    KEYS_DIR: path.join(dir, 'keys'),
    DATABASE_URL: stores.databaseUrl,
    REDIS_URL: stores.redisUrl,
    REDIS_KEY_PREFIX: stores.keyPrefix,
  };
  const pgRuns = [];
  for (let i = 0; i < STARTS; i++) pgRuns.push(await timeStart({ ...(await base()), ...served }));
  await fs.rm(dir, { recursive: true, force: true });
  return {
    embeddedFirst: first,
    embedded: stats(embeddedRuns.map((r) => r.wallMs)),
    embeddedReported: stats(embeddedRuns.map((r) => r.reportedMs)),
    postgres: stats(pgRuns.map((r) => r.wallMs)),
    postgresReported: stats(pgRuns.map((r) => r.reportedMs)),
  };
}

async function loginFigures(veil: TestVeil) {
  const password = 'bench password 0123';
  await veil.admin('POST', '/admin/users', { email: 'bench@example.com', password });
  const client = await veil.admin<{ client: { client_id: string } }>('POST', '/admin/clients', {
    client_name: 'bench',
    redirect_uris: ['https://app.example/cb'],
    public: true,
  });
  const once = async (email: string, pw: string) =>
    (await postLogin(veil.issuer, await startLoginInteraction(veil.issuer, client.body.client.client_id, 'https://app.example/cb'), email, pw)).elapsed;

  const ok: number[] = [];
  const wrong: number[] = [];
  const unknown: number[] = [];
  for (let i = 0; i < LOGINS; i++) {
    ok.push(await once('bench@example.com', password));
    wrong.push(await once('bench@example.com', `nope-${i}`));
    unknown.push(await once(`ghost-${i}@example.com`, `nope-${i}`));
  }
  return { ok: stats(ok), wrong: stats(wrong), unknown: stats(unknown) };
}

const stores = await createTestStores();
try {
  console.log('measuring start-up ...');
  const startup = await startupFigures(stores);
  console.log('measuring login latency ...');
  // Login throttling would lock the bench out after 20 failures; it measures argon2 latency.
  const veil = await startTestVeil(stores, { LOG_LEVEL: 'warn', LOGIN_MAX_FAILURES_PER_ACCOUNT: '1000', LOGIN_MAX_FAILURES_PER_IP: '1000', LOGIN_ACCOUNT_DELAY_AFTER: '1000' });
  const login = await loginFigures(veil);
  await veil.stop();

  const rows = [
    ['start-up, embedded, first start (migrations, key generation)', fmt(startup.embeddedFirst.wallMs), `${startup.embeddedFirst.reportedMs} ms`],
    ['start-up, embedded, later starts (median)', fmt(startup.embedded.median), `${startup.embeddedReported.median} ms`],
    ['start-up, PostgreSQL + Redis (median)', fmt(startup.postgres.median), `${startup.postgresReported.median} ms`],
  ];
  const loginRows = [
    ['correct password', login.ok],
    ['wrong password', login.wrong],
    ['unknown email', login.unknown],
  ] as const;
  const ratio = login.unknown.median / login.wrong.median;
  const md = [
    '# Benchmarks',
    '',
    `Measured by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'cpu'}), loopback, no TLS.`,
    'The machine is shared and noisy: compare ratios measured in one run rather than absolute figures across runs.',
    '',
    '## Start-up',
    '',
    'Wall time from spawning `node dist/main.js` to the "Veil is ready" log line; "reported" is the time Veil logs itself (stores, migrations, keys, listeners, without module loading).',
    '',
    '| case | wall | reported |',
    '| --- | --- | --- |',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
    '## Login latency',
    '',
    `POST of the login form over HTTP against PostgreSQL + Redis, argon2id at the default cost (m=19 MiB, t=2, p=1); ${LOGINS} sequential attempts each, interleaved.`,
    '',
    '| attempt | median | p95 |',
    '| --- | --- | --- |',
    ...loginRows.map(([name, s]) => `| ${name} | ${fmt(s.median)} | ${fmt(s.p95)} |`),
    '',
    `Unknown email / wrong password median ratio: ${ratio.toFixed(2)} (1.00 means indistinguishable by time).`,
    '',
  ].join('\n');
  // Keep the sections other bench scripts own (`<!-- bench:NAME:begin -->` ... `:end -->`).
  const file = path.join(REPO_ROOT, 'docs/BENCHMARKS.md');
  const kept = (await fs.readFile(file, 'utf8').catch(() => '')).match(/<!-- bench:[\w-]+:begin -->[\s\S]*?<!-- bench:[\w-]+:end -->/g) ?? [];
  await fs.writeFile(file, [md.trimEnd(), ...kept].join('\n\n') + '\n');
  console.log(md);
} finally {
  await stores.cleanup();
}
