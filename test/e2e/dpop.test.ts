/**
 * Issue 11, acceptance 3: DPoP end to end. A public client registered with
 * `veil clients create --require-dpop` signs a user in through a real browser; openid-client 6
 * (its DPoP handle) redeems the code and refreshes with proofs; the demo API (the SDK's Koa
 * middleware) accepts the bound token with a valid proof and refuses it as a plain Bearer
 * token, with a replayed proof, with another key's proof, and with the wrong method or URL.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import type { Browser } from 'playwright-core';
import { startDemoApi, type DemoApi } from '../../src/demo-api/app.js';
import { launchBrowser } from '../helpers/browser.js';
import { dpopKey, dpopProof, type DPoPKey } from '../helpers/dpop.js';
import { authorizationRequest, oidc, relyingParty, signIn, waitForCallback, type RelyingParty } from '../helpers/flows.js';
import { startCallbackServer } from '../helpers/net.js';
import { runCli } from '../helpers/process.js';
import { introspect } from '../helpers/resource-servers.js';
import { rememberSecret } from '../helpers/secrets.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const ADMIN_TOKEN = 'dpop-e2e-admin-token-0123456789abcdefghijklmnop';
const IDENTIFIER = 'http://demo-api.dpop.example/api';
const user = { email: 'holder@example.com', password: 'keys are for keeping 123' };

describe('DPoP end to end (CLI, Chromium, openid-client, demo API)', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let browser: Browser;
  let rpServer: Awaited<ReturnType<typeof startCallbackServer>>;
  let demo: DemoApi;
  let introspector: { id: string; secret: string };
  let rp: RelyingParty;

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores, { ADMIN_TOKEN });
    rpServer = await startCallbackServer();
    browser = await launchBrowser();
    demo = await startDemoApi({ port: 0, host: '127.0.0.1', issuer: veil.issuer, identifier: IDENTIFIER, keyFile: path.join(veil.tmpDir, 'demo-api-key.json'), log: () => {} });
    const created = await veil.admin<{ introspection_client_id: string; introspection_client_secret: string }>('POST', '/admin/resources', {
      identifier: IDENTIFIER,
      name: 'Demo API',
      scopes: ['read'],
      jwks_uri: demo.jwksUri,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    introspector = { id: created.body.introspection_client_id, secret: created.body.introspection_client_secret };
    assert.equal((await veil.admin('POST', '/admin/users', user)).status, 201);

    // The operator's way: the CLI, with --require-dpop.
    const res = await runCli(
      [
        'clients',
        'create',
        '--name',
        'DPoP SPA',
        '--public',
        '--redirect-uri',
        `${rpServer.url}/cb`,
        '--grant-type',
        'authorization_code',
        '--grant-type',
        'refresh_token',
        '--scope',
        'openid offline_access read',
        '--resource',
        IDENTIFIER,
        '--require-dpop',
        '--json',
      ],
      { env: { VEIL_ADMIN_URL: veil.adminUrl, VEIL_ADMIN_TOKEN: ADMIN_TOKEN } },
    );
    assert.equal(res.code, 0, res.stderr);
    const client = (JSON.parse(res.stdout) as { client: { client_id: string; dpop_bound_access_tokens?: boolean } }).client;
    assert.equal(client.dpop_bound_access_tokens, true);
    rp = await relyingParty(veil.issuer, client.client_id, undefined, `${rpServer.url}/cb`);
  });

  after(async () => {
    await browser?.close();
    await rpServer?.close();
    await demo?.close();
    await veil?.stop();
    await stores?.cleanup();
  });

  const cli = async (args: string[]) => {
    const res = await runCli([...args, '--json'], { env: { VEIL_ADMIN_URL: veil.adminUrl, VEIL_ADMIN_TOKEN: ADMIN_TOKEN } });
    assert.equal(res.code, 0, res.stderr);
    return JSON.parse(res.stdout) as { client: { client_id: string; dpop_bound_access_tokens?: boolean; client_name?: string } };
  };

  test('veil clients update --no-require-dpop / --require-dpop switch the requirement; other updates keep it', async () => {
    const created = await cli(['clients', 'create', '--name', 'switching', '--grant-type', 'client_credentials', '--resource', IDENTIFIER, '--scope', 'read']);
    const id = created.client.client_id;
    assert.equal(created.client.dpop_bound_access_tokens, undefined);
    assert.equal((await cli(['clients', 'update', id, '--require-dpop'])).client.dpop_bound_access_tokens, true);
    const renamed = await cli(['clients', 'update', id, '--name', 'renamed']);
    assert.deepEqual([renamed.client.client_name, renamed.client.dpop_bound_access_tokens], ['renamed', true]);
    assert.equal((await cli(['clients', 'update', id, '--no-require-dpop'])).client.dpop_bound_access_tokens, undefined);
  });

  /** openid-client's key pair as the jose-made proofs below need it (same key: same thumbprint). */
  async function asDPoPKey(pair: Awaited<ReturnType<typeof oidc.randomDPoPKeyPair>>): Promise<DPoPKey> {
    const publicJwk = await exportJWK(pair.publicKey);
    return { alg: 'ES256', privateKey: pair.privateKey, publicJwk, jkt: await calculateJwkThumbprint(publicJwk) };
  }

  test('code flow and refresh with openid-client DPoP; the demo API accepts the bound token only with a good proof', async () => {
    const pair = await oidc.randomDPoPKeyPair('ES256');
    const handle = oidc.getDPoPHandle(rp.config, pair);
    const key = await asDPoPKey(pair);

    const attempt = await authorizationRequest(rp, { scope: 'openid offline_access read', resource: IDENTIFIER, prompt: 'consent' });
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(attempt.url.toString());
    await signIn(page, user.email, user.password);
    await page.getByRole('button', { name: 'Allow' }).click();
    const callback = await waitForCallback(page, rp.redirectUri);
    await context.close();
    const checks = { pkceCodeVerifier: attempt.codeVerifier, expectedState: attempt.state, expectedNonce: attempt.nonce };

    // Required to use DPoP: no proof, no token (and the code survives the refusal).
    await assert.rejects(oidc.authorizationCodeGrant(rp.config, callback, checks), (err: oidc.ResponseBodyError) => err.error === 'invalid_grant');
    const tokens = await oidc.authorizationCodeGrant(rp.config, callback, checks, undefined, { DPoP: handle });
    rememberSecret(tokens.access_token, 'access token');
    assert.equal(tokens.token_type, 'dpop');
    assert.ok(tokens.refresh_token);

    // Veil says the same: bound to the key.
    const seen = await introspect(veil.issuer, introspector, tokens.access_token);
    assert.equal(seen.body.active, true, JSON.stringify(seen.body));
    assert.equal(seen.body.token_type, 'DPoP');
    assert.deepEqual(seen.body.cnf, { jkt: key.jkt });

    const hello = new URL(`${demo.url}/api/hello`);
    const ok = await oidc.fetchProtectedResource(rp.config, tokens.access_token, hello, 'GET', undefined, undefined, { DPoP: handle });
    assert.equal(ok.status, 200, await ok.clone().text());
    assert.equal(((await ok.json()) as { scope: string }).scope, 'read');

    const call = (headers: Record<string, string>, method = 'GET', url: URL = hello) => fetch(url, { method, headers });
    const refusal = async (res: Response) => ({
      status: res.status,
      challenge: res.headers.get('www-authenticate') ?? '',
      body: (await res.json()) as { error: string; error_description: string },
    });

    // As a plain Bearer token: refused, with a DPoP challenge.
    const bearer = await refusal(await call({ authorization: `Bearer ${tokens.access_token}` }));
    assert.equal(bearer.status, 401);
    assert.match(bearer.challenge, /^DPoP realm=".*", error="invalid_token", error_description="dpop_required"/);

    // A good proof made by hand with the same key works once; replayed, it is refused.
    const proof = await dpopProof(key, { htm: 'GET', htu: hello.href, accessToken: tokens.access_token });
    assert.equal((await call({ authorization: `DPoP ${tokens.access_token}`, dpop: proof })).status, 200);
    const replayed = await refusal(await call({ authorization: `DPoP ${tokens.access_token}`, dpop: proof }));
    assert.deepEqual([replayed.status, replayed.body.error, replayed.body.error_description], [401, 'invalid_dpop_proof', 'dpop_replay']);
    assert.match(replayed.challenge, /^DPoP realm=".*", error="invalid_dpop_proof"/);

    // Another key's proof, the wrong method, the wrong URL.
    const thief = await dpopKey('ES256');
    const cases: Array<[string, Promise<string>, string, URL, string]> = [
      ['another key', dpopProof(thief, { htm: 'GET', htu: hello.href, accessToken: tokens.access_token }), 'GET', hello, 'dpop_key_mismatch'],
      ['wrong htm', dpopProof(key, { htm: 'POST', htu: hello.href, accessToken: tokens.access_token }), 'GET', hello, 'dpop_htm_mismatch'],
      ['wrong htu', dpopProof(key, { htm: 'GET', htu: `${demo.url}/api/other`, accessToken: tokens.access_token }), 'GET', hello, 'dpop_htu_mismatch'],
    ];
    for (const [label, made, method, url, code] of cases) {
      const res = await refusal(await call({ authorization: `DPoP ${tokens.access_token}`, dpop: await made }, method, url));
      assert.deepEqual([res.status, res.body.error, res.body.error_description], [401, 'invalid_dpop_proof', code], label);
    }

    // Refresh: the public client's refresh token is bound to the key; another key's proof gets nothing.
    const otherHandle = oidc.getDPoPHandle(rp.config, await oidc.randomDPoPKeyPair('ES256'));
    await assert.rejects(oidc.refreshTokenGrant(rp.config, tokens.refresh_token, undefined, { DPoP: otherHandle }), (err: oidc.ResponseBodyError) => err.error === 'invalid_grant');
    await assert.rejects(oidc.refreshTokenGrant(rp.config, tokens.refresh_token), (err: oidc.ResponseBodyError) => err.error === 'invalid_grant');
    const refreshed = await oidc.refreshTokenGrant(rp.config, tokens.refresh_token, undefined, { DPoP: handle });
    rememberSecret(refreshed.access_token, 'access token');
    assert.equal(refreshed.token_type, 'dpop');
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
    const again = await oidc.fetchProtectedResource(rp.config, refreshed.access_token, hello, 'GET', undefined, undefined, { DPoP: handle });
    assert.equal(again.status, 200, await again.clone().text());
    assert.equal((await call({ authorization: `Bearer ${refreshed.access_token}` })).status, 401);
    // openid-client reads the refusal's DPoP challenge itself.
    await assert.rejects(
      oidc.fetchProtectedResource(rp.config, refreshed.access_token, hello, 'GET', undefined, undefined, { DPoP: otherHandle }),
      (err: oidc.WWWAuthenticateChallengeError) => {
        assert.equal(err.response.status, 401);
        const challenge = err.cause.find((c) => c.scheme === 'dpop');
        assert.deepEqual([challenge?.parameters.error, challenge?.parameters.error_description], ['invalid_dpop_proof', 'dpop_key_mismatch']);
        return true;
      },
    );
  });
});
