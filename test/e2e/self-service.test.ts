/**
 * Self-service withdrawal through the real page: a user signs in to an app in Chromium, opens
 * "Connected apps", clicks "Remove access", and the app's refresh token fails at once. The page
 * runs with JavaScript disabled, as it needs none.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchBrowser } from '../helpers/browser.js';
import { loginAndConsent, oidc, relyingParty, type RelyingParty } from '../helpers/flows.js';
import { startCallbackServer } from '../helpers/net.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const user = { email: 'grace@example.com', password: 'withdraw it all 456', name: 'Grace Hopper' };

describe('self-service connected apps (PostgreSQL + Redis, Chromium, openid-client)', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let browser: Browser;
  let rpServer: Awaited<ReturnType<typeof startCallbackServer>>;
  let rp: RelyingParty;

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    rpServer = await startCallbackServer();
    browser = await launchBrowser();
    assert.equal((await veil.admin('POST', '/admin/users', user)).status, 201);
    const client = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'Notes App',
      redirect_uris: [`${rpServer.url}/cb`],
      grant_types: ['authorization_code', 'refresh_token'],
      scope: 'openid email profile offline_access',
    });
    assert.equal(client.status, 201);
    rp = await relyingParty(veil.issuer, client.body.client.client_id, client.body.client_secret, `${rpServer.url}/cb`);
  });

  after(async () => {
    await browser?.close();
    await rpServer?.close();
    await veil?.stop();
    await stores?.cleanup();
  });

  test('"Remove access" on the connected-apps page makes the refresh token fail', async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const { tokens } = await loginAndConsent(context, rp, user, { scope: 'openid email profile offline_access', prompt: 'consent' });
    assert.ok(tokens.refresh_token);

    const page = await context.newPage();
    const cspViolations: string[] = [];
    page.on('console', (msg) => {
      if (/Content Security Policy|Refused/i.test(msg.text())) cspViolations.push(msg.text());
    });
    await page.goto(`${veil.issuer}/account`);
    assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Connected apps');
    await assert.doesNotReject(page.getByText(user.email).waitFor());
    const app = page.getByRole('region', { name: 'Notes App' });
    await assert.doesNotReject(app.getByText('See your email address').waitFor());

    await app.getByRole('button', { name: 'Remove access' }).click();
    await page.waitForURL((u) => u.pathname === '/account' && u.searchParams.has('removed'));
    assert.equal((await page.getByRole('status').textContent())?.trim(), 'Notes App no longer has access to your account.');
    assert.equal(await page.getByRole('button', { name: 'Remove access' }).count(), 0);
    await assert.doesNotReject(page.getByText('No apps have access to your account.').waitFor());
    assert.deepEqual(cspViolations, []);

    await assert.rejects(oidc.refreshTokenGrant(rp.config, tokens.refresh_token), (err: oidc.ResponseBodyError) => {
      assert.equal(err.error, 'invalid_grant');
      return true;
    });
    await context.close();
  });

  test('signed out, the page says so and shows nothing else', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const res = await page.goto(`${veil.issuer}/account`);
    assert.equal(res?.status(), 401);
    assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'You are not signed in');
    assert.equal(await page.getByRole('button').count(), 0);
    await context.close();
  });
});
