// Runs the whole suite with Node's test runner (TypeScript through tsx): unit, integration
// (real PostgreSQL + Redis) and end-to-end (real Chromium + openid-client). Pass file paths
// to run only those.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const prereqs = spawnSync('bash', [path.join(root, 'scripts/test-prereqs.sh')], { stdio: 'inherit' });
if (prereqs.status !== 0) process.exit(prereqs.status ?? 1);

const suites = ['test/unit', 'test/integration', 'test/e2e'];
const requested = process.argv.slice(2);
const files = requested.length
  ? requested
  : suites.flatMap((dir) =>
      fs.existsSync(path.join(root, dir))
        ? fs.readdirSync(path.join(root, dir)).filter((f) => f.endsWith('.test.ts')).sort().map((f) => path.join(dir, f))
        : [],
    );

const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=180000', ...files],
  { stdio: 'inherit', cwd: root, env: { ...process.env, NODE_ENV: 'test' } },
);
process.exit(result.status ?? 1);
