/**
 * Acceptance 5 of the foundation: the `veil` CLI (the real executable, as a child process)
 * creates a user and a client against a running server, and that client completes a flow.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchBrowser } from '../helpers/browser.js';
import { loginAndConsent, oidc, relyingParty } from '../helpers/flows.js';
import { startCallbackServer } from '../helpers/net.js';
import { tokenRequest } from '../helpers/http-flow.js';
import { runCli } from '../helpers/process.js';
import { generateEncryptionKey, openSealed } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const ADMIN_TOKEN = 'cli-test-admin-token-0123456789abcdef';

describe('veil CLI against a running server', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let browser: Browser;
  let rpServer: Awaited<ReturnType<typeof startCallbackServer>>;
  let env: Record<string, string>;

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores, { ADMIN_TOKEN });
    rpServer = await startCallbackServer();
    browser = await launchBrowser();
    env = { VEIL_ADMIN_URL: veil.adminUrl, VEIL_ADMIN_TOKEN: ADMIN_TOKEN };
  });

  after(async () => {
    await browser?.close();
    await rpServer?.close();
    await veil?.stop();
    await stores?.cleanup();
  });

  test('creates a user and a client; the client completes a flow', async () => {
    const password = 'a long and memorable passphrase';
    const user = await runCli(['users', 'create', '--email', 'grace@example.com', '--name', 'Grace Hopper', '--password-stdin', '--json'], {
      env,
      stdin: `${password}\n`,
    });
    assert.equal(user.code, 0, user.stderr);
    const created = JSON.parse(user.stdout) as { id: string; email: string };
    assert.equal(created.email, 'grace@example.com');
    assert.doesNotMatch(user.stdout + user.stderr, new RegExp(password));

    const client = await runCli(['clients', 'create', '--name', 'Compiler', '--redirect-uri', `${rpServer.url}/cb`, '--scope', 'openid email profile offline_access', '--json'], {
      env,
    });
    assert.equal(client.code, 0, client.stderr);
    const { client_id: clientId, client_secret: clientSecret } = JSON.parse(client.stdout) as { client_id: string; client_secret: string };
    assert.ok(clientId && clientSecret);

    const rp = await relyingParty(veil.issuer, clientId, clientSecret, `${rpServer.url}/cb`);
    const context = await browser.newContext();
    const { tokens } = await loginAndConsent(context, rp, { email: 'grace@example.com', password });
    await context.close();
    const claims = tokens.claims()!;
    assert.equal(claims.sub, created.id);
    const userinfo = await oidc.fetchUserInfo(rp.config, tokens.access_token, created.id);
    assert.equal(userinfo.name, 'Grace Hopper');

    // Deleting the client takes its consents with it, and its refresh token stops working.
    assert.equal(await veil.database.prisma.grant.count({ where: { clientId } }), 1);
    const deleted = await runCli(['clients', 'delete', clientId], { env });
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(await veil.database.prisma.grant.count({ where: { clientId } }), 0);
    await assert.rejects(oidc.refreshTokenGrant(rp.config, tokens.refresh_token!));
  });

  test('lists, disables and deletes, with --json output', async () => {
    const users = await runCli(['users', 'list', '--json'], { env });
    assert.equal(users.code, 0, users.stderr);
    assert.ok((JSON.parse(users.stdout) as { users: { email: string }[] }).users.some((u) => u.email === 'grace@example.com'));

    const disabled = await runCli(['users', 'disable', '--email', 'grace@example.com', '--json'], { env });
    assert.equal(disabled.code, 0, disabled.stderr);
    assert.equal((JSON.parse(disabled.stdout) as { disabled: boolean }).disabled, true);
    const enabled = await runCli(['users', 'enable', '--email', 'grace@example.com', '--json'], { env });
    assert.equal(enabled.code, 0, enabled.stderr);
    assert.equal((JSON.parse(enabled.stdout) as { disabled: boolean }).disabled, false);

    const made = await runCli(['clients', 'create', '--name', 'Batch job', '--grant-type', 'client_credentials', '--json'], { env });
    const { client_id: clientId } = JSON.parse(made.stdout) as { client_id: string };
    const listed = await runCli(['clients', 'list', '--json'], { env });
    const clients = (JSON.parse(listed.stdout) as { clients: { client_id: string; client_secret?: string }[] }).clients;
    assert.ok(clients.some((c) => c.client_id === clientId));
    assert.ok(
      clients.every((c) => c.client_secret === undefined),
      'secrets are never listed',
    );

    const deleted = await runCli(['clients', 'delete', clientId, '--json'], { env });
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.deepEqual(JSON.parse(deleted.stdout), { deleted: clientId });
    const again = await runCli(['clients', 'delete', clientId, '--json'], { env });
    assert.equal(again.code, 1);
    assert.equal((JSON.parse(again.stderr) as { error: string }).error, 'not_found');
  });

  test('creates (with its encryption key), lists and deletes resource servers; a client may be allowed one', async () => {
    const { publicJwk, privateKey } = await generateEncryptionKey('ec');
    const jwkFile = path.join(veil.tmpDir, 'ledger-key.json');
    await fs.writeFile(jwkFile, JSON.stringify(publicJwk));
    const noKey = await runCli(['resources', 'create', '--identifier', 'https://api.example.com/ledger', '--name', 'Ledger', '--scope', 'read', '--json'], { env });
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /--jwk-file FILE or --jwks-uri URL/);

    const made = await runCli(
      [
        'resources',
        'create',
        '--identifier',
        'https://api.example.com/ledger',
        '--name',
        'Ledger',
        '--scope',
        'read  write',
        '--access-token-ttl',
        '120',
        '--jwk-file',
        jwkFile,
        '--claims',
        'email',
        '--json',
      ],
      { env },
    );
    assert.equal(made.code, 0, made.stderr);
    const created = JSON.parse(made.stdout) as { resource: Record<string, unknown>; introspection_client_id: string; introspection_client_secret: string };
    assert.deepEqual(created.resource, {
      identifier: 'https://api.example.com/ledger',
      name: 'Ledger',
      scopes: ['read', 'write'],
      access_token_ttl: 120,
      jwk: publicJwk,
      alg: 'ECDH-ES+A256KW',
      enc: 'A256GCM',
      claims: ['email'],
      he_claims: [],
      introspection_client_id: created.introspection_client_id,
      // New resource servers get pairwise subjects unless created with --subject public.
      subject: 'pairwise',
    });
    assert.match(created.introspection_client_secret, /^[A-Za-z0-9_-]{43}$/);

    const duplicate = await runCli(['resources', 'create', '--identifier', 'https://api.example.com/ledger', '--name', 'x', '--scope', 'a', '--jwk-file', jwkFile, '--json'], {
      env,
    });
    assert.equal(duplicate.code, 1);
    assert.equal((JSON.parse(duplicate.stderr) as { error: string }).error, 'conflict');
    const listed = await runCli(['resources', 'list', '--json'], { env });
    assert.deepEqual(
      (JSON.parse(listed.stdout) as { resources: { identifier: string }[] }).resources.map((r) => r.identifier),
      ['https://api.example.com/ledger'],
    );

    // A client allowed that audience gets a token only the ledger's key opens.
    const client = await runCli(['clients', 'create', '--name', 'ledger-sync', '--grant-type', 'client_credentials', '--resource', 'https://api.example.com/ledger', '--json'], {
      env,
    });
    assert.equal(client.code, 0, client.stderr);
    const { client_id, client_secret } = JSON.parse(client.stdout) as { client_id: string; client_secret: string };
    const token = await tokenRequest(
      { issuer: veil.issuer, clientId: client_id, clientSecret: client_secret, redirectUri: 'x' },
      { grant_type: 'client_credentials', resource: 'https://api.example.com/ledger' },
    );
    assert.equal(token.status, 200, JSON.stringify(token.body));
    await openSealed(token.body.access_token!, privateKey, veil.issuer, 'https://api.example.com/ledger');

    const deleted = await runCli(['resources', 'delete', 'https://api.example.com/ledger', '--json'], { env });
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(await veil.database.prisma.resourceServer.count(), 0);
  });

  test('a mistyped option does not echo the value typed after it', async () => {
    for (const json of [[], ['--json']]) {
      const res = await runCli(['users', 'create', '--email', 'x@example.com', '--pasword=hunter2-is-a-secret', ...json], { env });
      assert.notEqual(res.code, 0);
      assert.match(res.stderr, /--pasword/);
      assert.doesNotMatch(res.stderr + res.stdout, /hunter2/);
    }
  });

  test("an id that begins with '-' is explained, and works after '--'", async () => {
    const refused = await runCli(['clients', 'delete', '-AbCdEfGhIjKlMnOpQrStUv'], { env });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /goes after '--'/);
    const unknown = await runCli(['clients', 'delete', '--', '-AbCdEfGhIjKlMnOpQrStUv'], { env });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no such client/, 'the id reached the admin API');
  });

  test('a wrong admin token is refused', async () => {
    const res = await runCli(['users', 'list'], { env: { ...env, VEIL_ADMIN_TOKEN: 'wrong-token' } });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /admin bearer token/);
  });

  test('an unreachable server gives a clear message', async () => {
    const res = await runCli(['users', 'list'], { env: { VEIL_ADMIN_URL: 'http://127.0.0.1:1' } });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /cannot reach the Veil admin API/);
  });

  test('migrate works without a running server', async () => {
    const fresh = await createTestStores();
    try {
      const first = await runCli(['migrate', '--json'], { env: { DATABASE_URL: fresh.databaseUrl } });
      assert.equal(first.code, 0, first.stderr);
      const applied = JSON.parse(first.stdout) as { applied: string[]; already_applied: string[] };
      assert.ok(applied.applied.length >= 1);
      const second = await runCli(['migrate', '--json'], { env: { DATABASE_URL: fresh.databaseUrl } });
      assert.deepEqual((JSON.parse(second.stdout) as { applied: string[] }).applied, []);
    } finally {
      await fresh.cleanup();
    }
  });

  test('audit --since 1h --json lists what was done, newest first, without personal data', async () => {
    const res = await runCli(['audit', '--since', '1h', '--json'], { env });
    assert.equal(res.code, 0, res.stderr);
    const { events } = JSON.parse(res.stdout) as { events: { type: string; at: string; actor: string; account_id: string | null }[] };
    const types = events.map((e) => e.type);
    for (const type of ['user.created', 'user.disabled', 'user.enabled', 'client.created', 'client.deleted', 'login.succeeded', 'consent.granted']) {
      assert.ok(types.includes(type), `${type} in ${types.join(', ')}`);
    }
    const times = events.map((e) => Date.parse(e.at));
    assert.deepEqual(
      times,
      [...times].sort((a, b) => b - a),
    );
    assert.doesNotMatch(res.stdout, /grace@example\.com|Grace Hopper/);

    const filtered = await runCli(['audit', '--since', new Date(Date.now() - 3_600_000).toISOString(), '--type', 'user.created', '--limit', '1', '--json'], { env });
    assert.equal(filtered.code, 0, filtered.stderr);
    assert.deepEqual(
      (JSON.parse(filtered.stdout) as { events: { type: string }[] }).events.map((e) => e.type),
      ['user.created'],
    );

    const bad = await runCli(['audit', '--since', 'last tuesday', '--json'], { env });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /ISO 8601/);
  });
});

describe('veil CLI with no configuration, on the server machine (issue 7, finding 2)', () => {
  let stores: TestStores;
  let veil: TestVeil;
  // Nothing but where the server is and its KEYS_DIR: no token anywhere.
  const noToken = { VEIL_ADMIN_TOKEN: '', ADMIN_TOKEN: '', ADMIN_TOKEN_FILE: '' };

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores); // no ADMIN_TOKEN: Veil generates KEYS_DIR/admin-token
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  test('users create / list work with the token Veil generated into the shared KEYS_DIR', async () => {
    const env = { ...noToken, VEIL_ADMIN_URL: veil.adminUrl, KEYS_DIR: veil.config.keysDir };
    const created = await runCli(['users', 'create', '--email', 'ada@example.com', '--password-stdin', '--json'], { env, stdin: 'an analytical engine passphrase\n' });
    assert.equal(created.code, 0, created.stderr);
    const listed = await runCli(['users', 'list', '--json'], { env });
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(
      (JSON.parse(listed.stdout) as { users: { email: string }[] }).users.map((u) => u.email),
      ['ada@example.com'],
    );
    assert.doesNotMatch(listed.stdout + listed.stderr + created.stdout + created.stderr, new RegExp(veil.adminToken));
  });

  test('without the token file (another KEYS_DIR) the server refuses, and the CLI says where the token comes from', async () => {
    const before = await veil.database.prisma.account.count();
    const res = await runCli(['users', 'create', '--email', 'eve@example.com', '--password-stdin'], {
      env: { ...noToken, VEIL_ADMIN_URL: veil.adminUrl, KEYS_DIR: path.join(veil.tmpDir, 'elsewhere') },
      stdin: 'a password that will not be used\n',
    });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /admin bearer token/);
    assert.match(res.stderr, /KEYS_DIR\/admin-token/);
    assert.equal(await veil.database.prisma.account.count(), before);
  });
});
