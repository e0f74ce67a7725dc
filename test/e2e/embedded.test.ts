/**
 * Acceptance 4 of the foundation: a fresh data directory and `npm start` (no PostgreSQL, no
 * Redis); the demo login printed at start works end to end in the browser, including the
 * printed curl exchange; a restart keeps users and clients.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import type { Browser } from 'playwright-core';
import { launchBrowser } from '../helpers/browser.js';
import { signIn } from '../helpers/flows.js';
import { freePort } from '../helpers/net.js';
import { ManagedProcess } from '../helpers/process.js';
import { generatedAdminToken } from '../helpers/veil.js';

const run = promisify(execFile);

describe('embedded mode (npm start on a fresh data directory)', () => {
  let dir: string;
  let browser: Browser;
  let env: Record<string, string>;
  let issuer: string;
  let adminUrl: string;
  let server: ManagedProcess | undefined;

  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-embedded-'));
    const port = await freePort();
    const adminPort = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    adminUrl = `http://127.0.0.1:${adminPort}`;
    env = {
      PORT: String(port),
      ADMIN_PORT: String(adminPort),
      ISSUER: issuer,
      VEIL_DATA_DIR: path.join(dir, 'data'),
      KEYS_DIR: path.join(dir, 'keys'),
      NODE_ENV: 'development',
      DATABASE_URL: '',
      REDIS_URL: '',
      VEIL_SEED: 'on',
    };
    browser = await launchBrowser();
  });

  after(async () => {
    await server?.stop();
    await browser?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  // `npm start` without its prestart rebuild: the suite built once before it started, and a
  // rebuild here would rewrite dist/ and src/generated/ under the tests running beside this one.
  const startServer = () => new ManagedProcess('npm', ['start', '--silent', '--ignore-scripts'], env);

  async function demoLogin(authorizeUrl: string, password: string) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(authorizeUrl);
    await signIn(page, 'demo@example.com', password);
    const allow = page.getByRole('button', { name: 'Allow' });
    if (await allow.isVisible().catch(() => false)) await allow.click();
    await page.waitForURL((u) => u.pathname === '/demo/callback', { timeout: 15_000 });
    const curl = (await page.locator('pre code').textContent())!;
    await context.close();
    // Run the exchange exactly as the page prints it.
    const { stdout } = await run('bash', ['-c', curl]);
    return JSON.parse(stdout) as { id_token: string; access_token: string };
  }

  test('prints a working demo login, and a restart keeps users and clients', async () => {
    server = startServer();
    const [, authorizeUrl] = await server.waitFor(/Open\s+(http\S+)/, 120_000);
    const [, password] = await server.waitFor(/with password (\S+)/);
    assert.match(server.output, /embedded PGlite/);
    assert.match(server.output, /in-process memory/);

    const tokens = await demoLogin(authorizeUrl!, password!);
    const { payload } = await jwtVerify(tokens.id_token, createRemoteJWKSet(new URL(`${issuer}/jwks`)), { issuer, audience: 'veil-demo' });
    assert.ok(payload.sub);

    await server.stop();
    assert.match(server.output, /"msg":"shutting down"/, 'SIGTERM shuts down gracefully');

    // Second start on the same data directory: nothing re-seeded, everything kept.
    server = startServer();
    const [, secondUrl] = await server.waitFor(/Open\s+(http\S+)/, 120_000);
    assert.doesNotMatch(server.output, /with password/);
    const headers = { authorization: `Bearer ${await generatedAdminToken(path.join(dir, 'keys'))}` };
    const users = (await (await fetch(`${adminUrl}/admin/users`, { headers })).json()) as { users: { id: string; email: string }[] };
    assert.deepEqual(
      users.users.map((u) => u.email),
      ['demo@example.com'],
    );
    assert.equal(users.users[0]!.id, payload.sub);
    const clients = (await (await fetch(`${adminUrl}/admin/clients`, { headers })).json()) as { clients: { client_id: string }[] };
    assert.deepEqual(
      clients.clients.map((c) => c.client_id),
      ['veil-demo'],
    );

    // The same password still signs in, and the signing keys survived: the old ID token verifies.
    const again = await demoLogin(secondUrl!, password!);
    assert.ok(again.id_token);
    await jwtVerify(tokens.id_token, createRemoteJWKSet(new URL(`${issuer}/jwks`)), { issuer, audience: 'veil-demo' });
  });
});
