/**
 * Acceptance 1 and 2 of the foundation: the authorization code flow with PKCE, end to end,
 * against real PostgreSQL and Redis, with a real relying party and a real browser.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import type { Browser } from 'playwright-core';
import { launchBrowser } from '../helpers/browser.js';
import { authorizationRequest, loginAndConsent, oidc, relyingParty, signIn, waitForCallback, type RelyingParty } from '../helpers/flows.js';
import { startCallbackServer } from '../helpers/net.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const user = { email: 'ada@example.com', password: 'correct horse battery staple', name: 'Ada Lovelace' };

describe('authorization code flow with PKCE (PostgreSQL + Redis, Chromium, openid-client)', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let browser: Browser;
  let rpServer: Awaited<ReturnType<typeof startCallbackServer>>;
  let rp: RelyingParty;
  let clientId: string;
  /** Every credential and personal datum the flows used; none may appear in Veil's logs. */
  const sensitive: string[] = [user.email, user.password, user.name];

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    rpServer = await startCallbackServer();
    browser = await launchBrowser();
    const created = await veil.admin('POST', '/admin/users', user);
    assert.equal(created.status, 201);
    const client = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'Notes App',
      redirect_uris: [`${rpServer.url}/cb`],
      post_logout_redirect_uris: [`${rpServer.url}/logged-out`],
      grant_types: ['authorization_code', 'refresh_token'],
      scope: 'openid email profile offline_access',
    });
    assert.equal(client.status, 201);
    clientId = client.body.client.client_id;
    sensitive.push(client.body.client_secret);
    rp = await relyingParty(veil.issuer, clientId, client.body.client_secret, `${rpServer.url}/cb`);
  });

  after(async () => {
    await browser?.close();
    await rpServer?.close();
    await veil?.stop();
    await stores?.cleanup();
  });

  test('login, consent, verified ID token, userinfo, rotating refresh token, logout', async () => {
    const context = await browser.newContext();
    const { tokens, callback: first } = await loginAndConsent(context, rp, user, { scope: 'openid email profile offline_access', prompt: 'consent' });
    sensitive.push(tokens.access_token, tokens.refresh_token!, tokens.id_token!, first.searchParams.get('code')!);

    // The ID token verifies against the published JWKS, independently of openid-client.
    const jwks = createRemoteJWKSet(new URL(`${veil.issuer}/jwks`));
    const { payload, protectedHeader } = await jwtVerify(tokens.id_token!, jwks, { issuer: veil.issuer, audience: clientId });
    assert.equal(protectedHeader.alg, 'RS256');
    // With an access token issued, scope claims come from userinfo, not the ID token (OIDC Core 5.4).
    assert.equal(payload.email, undefined);
    const sub = payload.sub!;
    const account = await veil.database.prisma.account.findUnique({ where: { email: user.email } });
    assert.equal(sub, account!.id);

    // The JWKS serves public parts only.
    const published = (await (await fetch(`${veil.issuer}/jwks`)).json()) as { keys: Record<string, unknown>[] };
    assert.ok(published.keys.length >= 2);
    for (const key of published.keys) for (const p of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.equal(key[p], undefined);

    const userinfo = await oidc.fetchUserInfo(rp.config, tokens.access_token, sub);
    assert.deepEqual(
      { sub: userinfo.sub, email: userinfo.email, email_verified: userinfo.email_verified, name: userinfo.name },
      { sub, email: user.email, email_verified: false, name: user.name },
    );

    // Refresh tokens rotate: the new one works, the old one is refused.
    assert.ok(tokens.refresh_token);
    const refreshed = await oidc.refreshTokenGrant(rp.config, tokens.refresh_token);
    sensitive.push(refreshed.access_token, refreshed.refresh_token!);
    assert.ok(refreshed.refresh_token);
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
    await assert.rejects(oidc.refreshTokenGrant(rp.config, tokens.refresh_token), (err: oidc.ResponseBodyError) => {
      assert.equal(err.error, 'invalid_grant');
      return true;
    });

    // RP-initiated logout ends the session: a silent re-authentication then needs a login.
    const page = await context.newPage();
    const endSession = oidc.buildEndSessionUrl(rp.config, {
      id_token_hint: tokens.id_token!,
      post_logout_redirect_uri: `${rpServer.url}/logged-out`,
    });
    await page.goto(endSession.toString());
    await page.getByRole('button', { name: 'Yes, sign me out' }).click();
    await waitForCallback(page, `${rpServer.url}/logged-out`);
    const silent = await authorizationRequest(rp, { prompt: 'none' });
    await page.goto(silent.url.toString());
    const callback = await waitForCallback(page, rp.redirectUri);
    assert.equal(callback.searchParams.get('error'), 'login_required');
    await context.close();
  });

  async function newClient(name: string, path: string) {
    const created = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: name,
      redirect_uris: [`${rpServer.url}${path}`],
    });
    assert.equal(created.status, 201);
    return relyingParty(veil.issuer, created.body.client.client_id, created.body.client_secret, `${rpServer.url}${path}`);
  }

  test('a second visit skips consent, kept in PostgreSQL across sessions', async () => {
    const rp = await newClient('Photos', '/cb-photos');
    const first = await browser.newContext();
    await loginAndConsent(first, rp, user);
    await first.close();

    // A fresh browser (no session cookie): login is needed, consent is not.
    const second = await browser.newContext();
    const attempt = await authorizationRequest(rp);
    const page = await second.newPage();
    await page.goto(attempt.url.toString());
    await signIn(page, user.email, user.password);
    const callback = await waitForCallback(page, rp.redirectUri);
    assert.ok(callback.searchParams.get('code'), 'redirected with a code without a consent page');
    const tokens = await oidc.authorizationCodeGrant(rp.config, callback, {
      pkceCodeVerifier: attempt.codeVerifier,
      expectedState: attempt.state,
      expectedNonce: attempt.nonce,
    });
    assert.ok(tokens.id_token);
    await second.close();

    const rows = await veil.database.prisma.grant.findMany({ where: { clientId: rp.config.clientMetadata().client_id } });
    assert.ok(rows.length >= 1, 'consent is stored in PostgreSQL');
  });

  test('denying consent returns access_denied to the client', async () => {
    const rp2 = await newClient('Calendar', '/cb2');
    // The pages work without JavaScript.
    const context = await browser.newContext({ javaScriptEnabled: false });
    const attempt = await authorizationRequest(rp2);
    const page = await context.newPage();
    await page.goto(attempt.url.toString());
    await signIn(page, user.email, user.password);
    await page.getByRole('button', { name: 'Deny' }).click();
    const callback = await waitForCallback(page, rp2.redirectUri);
    assert.equal(callback.searchParams.get('error'), 'access_denied');
    assert.equal(callback.searchParams.get('state'), attempt.state);
    await assert.rejects(
      oidc.authorizationCodeGrant(rp2.config, callback, { pkceCodeVerifier: attempt.codeVerifier, expectedState: attempt.state }),
      (err: oidc.AuthorizationResponseError) => err.error === 'access_denied',
    );
    await context.close();
  });

  test('no token, code, secret, password or personal datum reached the logs', () => {
    const logs = veil.logs.join('');
    assert.ok(logs.includes('login succeeded'), 'the flows were logged at all');
    for (const value of sensitive) assert.ok(value && !logs.includes(value), `a sensitive value appears in the logs: ${value.slice(0, 12)}…`);
  });
});
