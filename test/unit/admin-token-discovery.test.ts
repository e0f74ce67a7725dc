/**
 * Issue 7, finding 2: where the CLI finds the admin token, and which Host values the admin
 * listener serves. Pure functions over explicit inputs (no process.env, a temporary cwd).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { hostMatcher } from '../../src/admin/guard.js';
import { resolveAdminToken } from '../../src/cli/context.js';
import { CliError } from '../../src/cli/errors.js';

describe('CLI admin token discovery', () => {
  let cwd: string;
  const LOCAL = 'http://127.0.0.1:3001';
  const generated = 'generated-token-in-keys-dir-0123456789';
  const resolve = (adminUrl: string, env: NodeJS.ProcessEnv = {}, adminToken?: string) => resolveAdminToken({ adminUrl, adminToken }, env, cwd);

  before(() => {
    cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'veil-cli-token-'));
    fs.mkdirSync(path.join(cwd, 'keys'));
    fs.writeFileSync(path.join(cwd, 'keys', 'admin-token'), `${generated}\n`, { mode: 0o600 });
  });
  after(() => fs.rmSync(cwd, { recursive: true, force: true }));

  test('--admin-token / VEIL_ADMIN_TOKEN first, then ADMIN_TOKEN, then ADMIN_TOKEN_FILE, then KEYS_DIR/admin-token', () => {
    fs.writeFileSync(path.join(cwd, 'mounted-secret'), 'file-token-0123456789abcdef\n');
    assert.equal(resolve(LOCAL, { ADMIN_TOKEN: 'env-token-0123456789' }, 'flag-token-0123456789'), 'flag-token-0123456789');
    assert.equal(resolve(LOCAL, { ADMIN_TOKEN: 'env-token-0123456789', ADMIN_TOKEN_FILE: 'mounted-secret' }), 'env-token-0123456789');
    assert.equal(resolve(LOCAL, { ADMIN_TOKEN_FILE: 'mounted-secret' }), 'file-token-0123456789abcdef');
    assert.equal(resolve(LOCAL), generated);
    for (const url of ['http://localhost:3001', 'http://[::1]:3001', 'https://127.0.0.2:4000/base']) assert.equal(resolve(url), generated, url);
  });

  test('KEYS_DIR from the environment or from .env in the working directory', () => {
    const other = path.join(cwd, 'state', 'keys');
    fs.mkdirSync(other, { recursive: true });
    fs.writeFileSync(path.join(other, 'admin-token'), 'token-of-the-other-keys-dir-012345\n');
    assert.equal(resolve(LOCAL, { KEYS_DIR: other }), 'token-of-the-other-keys-dir-012345');
    fs.writeFileSync(path.join(cwd, '.env'), 'KEYS_DIR=state/keys\n');
    try {
      assert.equal(resolve(LOCAL), 'token-of-the-other-keys-dir-012345');
      // The environment wins over .env, as for the server.
      assert.equal(resolve(LOCAL, { KEYS_DIR: path.join(cwd, 'keys') }), generated);
    } finally {
      fs.rmSync(path.join(cwd, '.env'));
    }
  });

  test('the generated token is never sent to an admin URL on another machine', () => {
    assert.equal(resolve('http://admin.example:3001'), undefined);
    assert.equal(resolve('https://10.0.0.5:3001'), undefined);
    // A token the operator configured is theirs to send.
    assert.equal(resolve('https://admin.example:3001', { ADMIN_TOKEN: 'env-token-0123456789' }), 'env-token-0123456789');
  });

  test('no file: no token; an unreadable or malformed one is a clear error that quotes nothing', () => {
    assert.equal(resolve(LOCAL, { KEYS_DIR: path.join(cwd, 'nowhere') }), undefined);
    const bad = path.join(cwd, 'bad');
    fs.mkdirSync(bad);
    fs.writeFileSync(path.join(bad, 'admin-token'), 'tiny\n');
    assert.throws(
      () => resolve(LOCAL, { KEYS_DIR: bad }),
      (err: unknown) => err instanceof CliError && /admin-token must hold/.test(err.message) && !/tiny/.test(err.message),
    );
    assert.throws(
      () => resolve(LOCAL, { ADMIN_TOKEN_FILE: 'missing-file' }),
      (err: unknown) => err instanceof CliError && /ADMIN_TOKEN_FILE/.test(err.message),
    );
  });
});

describe('admin Host matcher', () => {
  test('the bind address and localhost with the port; bare only on the default port', () => {
    const m = hostMatcher('127.0.0.1', 3001, 'http', []);
    for (const ok of ['127.0.0.1:3001', 'localhost:3001', 'LocalHost:3001']) assert.ok(m(ok), ok);
    for (const no of ['127.0.0.1', 'localhost', '127.0.0.1:3002', 'evil.example', 'evil.example:3001', '', '127.0.0.1:3001.evil.example']) assert.ok(!m(no), no);
    assert.ok(hostMatcher('127.0.0.1', 80, 'http', [])('localhost'));
    assert.ok(hostMatcher('::1', 443, 'https', [])('[::1]'));
    assert.ok(hostMatcher('::1', 3001, 'http', [])('[::1]:3001'));
  });

  test('a wildcard bind serves the loopback literals; ADMIN_ALLOWED_HOSTS adds names', () => {
    const m = hostMatcher('0.0.0.0', 3001, 'https', ['admin.internal', 'veil.example:8443']);
    for (const ok of ['127.0.0.1:3001', '[::1]:3001', 'localhost:3001', 'admin.internal', 'admin.internal:3001', 'veil.example:8443']) assert.ok(m(ok), ok);
    for (const no of ['0.0.0.0:3001', 'veil.example', 'veil.example:3001', 'x.admin.internal']) assert.ok(!m(no), no);
  });
});
