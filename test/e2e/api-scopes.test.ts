/**
 * Issue 7, finding 1, end to end: clients created and changed with the real `veil` CLI, a real
 * browser through the consent page, openid-client as the relying party. A client gets exactly
 * the API scopes it is allowed and the user consented to; asking beyond its allow-list is
 * `invalid_scope` for the authorization code, refresh and client credentials grants alike.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchBrowser } from '../helpers/browser.js';
import { authorizationRequest, oidc, relyingParty, signIn, waitForCallback } from '../helpers/flows.js';
import { startCallbackServer } from '../helpers/net.js';
import { runCli } from '../helpers/process.js';
import { openSealed, registerResourceServer, type TestResourceServer } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const ADMIN_TOKEN = 'api-scopes-admin-token-0123456789abcdef';
const API = 'https://notes.example/api';
const user = { email: 'scoped@example.com', password: 'a long and memorable passphrase', name: 'Scoped User' };

type CliClient = { client: { client_id: string; scope?: string; resource_scopes?: Record<string, string[]> }; client_id: string; client_secret: string };

describe('API scope allow-lists end to end (CLI, Chromium, openid-client)', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let browser: Browser;
  let rpServer: Awaited<ReturnType<typeof startCallbackServer>>;
  let api: TestResourceServer;
  let env: Record<string, string>;

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores, { ADMIN_TOKEN });
    rpServer = await startCallbackServer();
    browser = await launchBrowser();
    env = { VEIL_ADMIN_URL: veil.adminUrl, VEIL_ADMIN_TOKEN: ADMIN_TOKEN };
    api = await registerResourceServer(veil, { identifier: API, scopes: ['read', 'write', 'admin'], claims: ['email', 'name'] });
    assert.equal((await veil.admin('POST', '/admin/users', user)).status, 201);
  });

  after(async () => {
    await browser?.close();
    await rpServer?.close();
    await veil?.stop();
    await stores?.cleanup();
  });

  const cli = async (args: string[]) => {
    const res = await runCli([...args, '--json'], { env });
    return { ...res, json: res.stdout ? (JSON.parse(res.stdout) as unknown) : (JSON.parse(res.stderr || 'null') as unknown) };
  };

  test('the consented scopes, exactly, in a sealed token; beyond the allow-list invalid_scope at /auth and at refresh', async () => {
    const created = await cli([
      'clients',
      'create',
      '--name',
      'Scoped Notes',
      '--redirect-uri',
      `${rpServer.url}/cb`,
      '--scope',
      'openid profile email offline_access read write',
      '--resource',
      API,
    ]);
    assert.equal(created.code, 0, created.stderr);
    const { client, client_id: clientId, client_secret: clientSecret } = created.json as CliClient;
    assert.equal(client.scope, 'openid profile email offline_access');
    assert.deepEqual(client.resource_scopes, { [API]: ['read', 'write'] });
    const rp = await relyingParty(veil.issuer, clientId, clientSecret, `${rpServer.url}/cb`);

    // The consent page shows the API by name, the scope asked, and the user claims it will get.
    const context = await browser.newContext();
    const attempt = await authorizationRequest(rp, { scope: 'openid profile email offline_access read', resource: API, prompt: 'consent' });
    const page = await context.newPage();
    await page.goto(attempt.url.toString());
    await signIn(page, user.email, user.password);
    const section = page.locator('section.veil-api');
    await section.waitFor();
    assert.ok((await section.locator('h2').innerText()).startsWith(`RS ${API}`), 'the API under its registered name');
    const text = await section.innerText();
    assert.match(text, /\bread\b/);
    assert.doesNotMatch(text, /\bwrite\b/, 'only what is asked is shown');
    assert.match(text, /Your email address/);
    assert.match(text, /Your name/);
    await page.getByRole('button', { name: 'Allow' }).click();
    const callback = await waitForCallback(page, rp.redirectUri);
    const tokens = await oidc.authorizationCodeGrant(rp.config, callback, {
      pkceCodeVerifier: attempt.codeVerifier,
      expectedState: attempt.state,
      expectedNonce: attempt.nonce,
    });
    const { payload } = await openSealed(tokens.access_token, api.privateKey, veil.issuer, API);
    assert.equal(payload.scope, 'read');
    assert.equal(payload.email, user.email);
    assert.equal(payload.name, user.name);

    // An API scope outside the allow-list: the browser comes straight back with invalid_scope.
    const beyond = await authorizationRequest(rp, { scope: 'openid read admin', resource: API });
    await page.goto(beyond.url.toString()).catch(() => undefined);
    const refused = await waitForCallback(page, rp.redirectUri);
    assert.equal(refused.searchParams.get('error'), 'invalid_scope');
    assert.equal(refused.searchParams.get('code'), null);

    // Refresh asking beyond what is allowed: invalid_scope, and the refresh token survives.
    for (const scope of ['openid admin', 'openid read write']) {
      await assert.rejects(oidc.refreshTokenGrant(rp.config, tokens.refresh_token!, { scope }), (err: oidc.ResponseBodyError) => err.error === 'invalid_scope');
    }
    const refreshed = await oidc.refreshTokenGrant(rp.config, tokens.refresh_token!);
    assert.equal((await openSealed(refreshed.access_token, api.privateKey, veil.issuer, API)).payload.scope, 'read');
    await context.close();
  });

  test('client credentials: the allow-list, changed with clients update; a refused update changes nothing', async () => {
    const created = await cli(['clients', 'create', '--name', 'Notes Worker', '--grant-type', 'client_credentials', '--resource', API, '--resource-scope', `${API}=read,write`]);
    assert.equal(created.code, 0, created.stderr);
    const { client_id: clientId, client_secret: clientSecret } = created.json as CliClient;
    const config = await oidc.discovery(new URL(veil.issuer), clientId, undefined, oidc.ClientSecretBasic(clientSecret), { execute: [oidc.allowInsecureRequests] });
    const grant = (scope: string) => oidc.clientCredentialsGrant(config, { resource: API, scope });

    assert.equal((await grant('read write')).scope, 'read write');
    await assert.rejects(grant('admin'), (err: oidc.ResponseBodyError) => err.error === 'invalid_scope');

    const updated = await cli(['clients', 'update', clientId, '--resource-scope', `${API}=read`]);
    assert.equal(updated.code, 0, updated.stderr);
    assert.deepEqual((updated.json as CliClient).client.resource_scopes, { [API]: ['read'] });
    await assert.rejects(grant('read write'), (err: oidc.ResponseBodyError) => err.error === 'invalid_scope');
    assert.equal((await grant('read')).scope, 'read');

    const before = JSON.stringify(await veil.database.prisma.client.findUnique({ where: { clientId } }));
    const bad = await cli(['clients', 'update', clientId, '--resource', 'https://nowhere.example/api']);
    assert.equal(bad.code, 1);
    assert.equal((bad.json as { error: string }).error, 'invalid_request');
    const nothing = await cli(['clients', 'update', clientId]);
    assert.equal(nothing.code, 1);
    assert.equal(JSON.stringify(await veil.database.prisma.client.findUnique({ where: { clientId } })), before, 'refused updates changed nothing');
  });
});
