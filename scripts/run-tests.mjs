// Runs the whole suite with Node's test runner (TypeScript through tsx): unit, integration
// (real PostgreSQL + Redis) and end-to-end (real Chromium + openid-client), then the fault suite
// (test/faults: Veil from dist/ under mixed traffic while a store fails), one file at a time, as
// its timings (recovery within 5 s) must not share the machine with the rest. Pass file paths to
// run only those; `--faults` runs only the fault suite.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const prereqs = spawnSync('bash', [path.join(root, 'scripts/test-prereqs.sh')], { stdio: 'inherit' });
if (prereqs.status !== 0) process.exit(prereqs.status ?? 1);

const testFiles = (dir) =>
  fs.existsSync(path.join(root, dir))
    ? fs
        .readdirSync(path.join(root, dir))
        .filter((f) => f.endsWith('.test.ts'))
        .sort()
        .map((f) => path.join(dir, f))
    : [];

const run = (files, concurrency) =>
  files.length === 0
    ? 0
    : (spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-timeout=180000', ...files], {
        stdio: 'inherit',
        cwd: root,
        env: { ...process.env, NODE_ENV: 'test' },
      }).status ?? 1);

const args = process.argv.slice(2);
const faultsOnly = args[0] === '--faults';
const requested = faultsOnly ? args.slice(1) : args;
const faults = testFiles('test/faults');

if (requested.length) process.exit(run(requested, faultsOnly || requested.every((f) => f.includes('test/faults/')) ? 1 : 2));
const main = faultsOnly ? 0 : run(['test/unit', 'test/integration', 'test/e2e'].flatMap(testFiles), 2);
const faultRun = run(faults, 1);
process.exit(main || faultRun);
