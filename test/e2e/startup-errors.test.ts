/**
 * Start-up refuses bad configuration and unreadable key material with a message that names the
 * problem, exits non-zero, and overwrites nothing.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../helpers/net.js';
import { REPO_ROOT } from '../helpers/process.js';

function startOnce(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'dist/main.js')], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('start-up errors', () => {
  let dir: string;
  let base: Record<string, string>;

  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-startup-'));
    base = {
      VEIL_DATA_DIR: path.join(dir, 'data'),
      KEYS_DIR: path.join(dir, 'keys'),
      PORT: String(await freePort()),
      ADMIN_PORT: String(await freePort()),
      VEIL_SEED: 'off',
      DATABASE_URL: '',
      REDIS_URL: '',
      NODE_ENV: 'development',
    };
  });
  after(async () => fs.rm(dir, { recursive: true, force: true }));

  test('a wrong value names the variable', async () => {
    const { code, output } = await startOnce({ ...base, PORT: 'eighty' });
    assert.equal(code, 1);
    assert.match(output, /invalid configuration/);
    assert.match(output, /PORT/);
    assert.doesNotMatch(output, /at .*\.js:\d+/, 'no stack trace');
  });

  test('production refuses embedded stores, an http issuer and dev seeding', async () => {
    const { code, output } = await startOnce({ ...base, NODE_ENV: 'production', VEIL_SEED: 'on' });
    assert.equal(code, 1);
    for (const name of ['DATABASE_URL', 'REDIS_URL', 'ISSUER', 'VEIL_SEED']) assert.match(output, new RegExp(name));
  });

  test('a corrupt signing key file stops start-up and is left untouched', async () => {
    const keysDir = path.join(dir, 'corrupt-keys');
    await fs.mkdir(keysDir);
    const file = path.join(keysDir, 'signing-keys.json');
    await fs.writeFile(file, '{"keys": [ this is not json');
    const { code, output } = await startOnce({ ...base, KEYS_DIR: keysDir });
    assert.equal(code, 1);
    assert.match(output, /signing-keys\.json is not valid JSON/);
    assert.equal(await fs.readFile(file, 'utf8'), '{"keys": [ this is not json');
  });

  test('an unreachable Redis stops start-up with a clear error', async () => {
    const { code, output } = await startOnce({ ...base, REDIS_URL: 'redis://127.0.0.1:1' });
    assert.equal(code, 1);
    assert.match(output, /Redis is unavailable/);
    assert.match(output, /ECONNREFUSED/);
  });

  test('an unreachable PostgreSQL stops start-up with a clear error', async () => {
    const { code, output } = await startOnce({ ...base, DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/veil' });
    assert.equal(code, 1);
    assert.match(output, /PostgreSQL is unavailable/);
    assert.match(output, /"start-up failed"/);
  });
});
