/**
 * A token request that fails must not cost the client its refresh token or code. oidc-provider
 * consumes (rotates) a refresh token, or consumes a code, before it resolves the resource and
 * seals the access token; so every check that can still fail runs before the consume: the
 * single-resource rule, the registry, the resource server's encryption key. A retry of a
 * refused request is then a first use, not reuse, and the grant survives. A consumed token
 * presented again is reuse: the grant is revoked, and that is audited as `token.reused`.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { exchange, httpAuthorize, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { generateEncryptionKey, introspect, openSealed, registerResourceServer, type TestResourceServer } from '../helpers/resource-servers.js';
import { rememberFields, rememberTokens } from '../helpers/secrets.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

type Created = { client: { client_id: string }; client_secret: string };
type TokenBody = Record<string, string>;

const API = 'https://api.example/v1';
const OTHER = 'https://other.example/api';
const REMOTE = 'https://remote-keys.example/api';
const REDIRECT = 'https://app.example/cb';

describe('a refused redemption leaves the refresh token or code usable', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let api: TestResourceServer;
  let other: TestResourceServer;
  let client: HttpFlowClient;
  let userId: string;
  /** Shared by the restarted Veil: the same signing keys and master key, as after a deploy. */
  let keysDir: string;
  const user = { email: 'redeem@example.com', password: 'redemption is a process 42' };

  before(async () => {
    stores = await createTestStores();
    keysDir = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'veil-redeem-')), 'keys');
    veil = await startTestVeil(stores, { KEYS_DIR: keysDir });
    api = await registerResourceServer(veil, { identifier: API, scopes: ['read'] });
    other = await registerResourceServer(veil, { identifier: OTHER, scopes: ['read'] });
    const u = await veil.admin<{ user: { id: string } }>('POST', '/admin/users', user);
    assert.equal(u.status, 201);
    userId = u.body.user.id;
    client = await webClient(veil, [API, OTHER]);
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
    if (keysDir) await fs.rm(path.dirname(keysDir), { recursive: true, force: true });
  });

  async function webClient(on: TestVeil, resources: string[]): Promise<HttpFlowClient> {
    const c = await on.admin<Created>('POST', '/admin/clients', {
      client_name: 'Redeemer',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      scope: 'openid offline_access',
      resources,
      resource_scopes: Object.fromEntries(resources.map((r) => [r, ['read']])),
    });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    return { issuer: on.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret, redirectUri: REDIRECT };
  }

  /** A token request whose parameters may repeat (two `resource` values). */
  async function tokenForm(to: HttpFlowClient, params: [string, string][]): Promise<{ status: number; body: TokenBody }> {
    rememberFields(Object.fromEntries(params), ['code', 'code_verifier', 'refresh_token']);
    const res = await fetch(`${to.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${to.clientId}:${to.clientSecret}`).toString('base64')}`,
      },
      body: new URLSearchParams(params).toString(),
    });
    const body = (await res.json()) as TokenBody;
    rememberTokens(body);
    return { status: res.status, body };
  }

  /** Access and refresh tokens stored (records and indexes): unchanged means nothing was issued. */
  const issued = async () => (await stores.redis.keys(`${stores.keyPrefix}AccessToken:*`)).length + (await stores.redis.keys(`${stores.keyPrefix}RefreshToken:*`)).length;

  /** Whether the user's consent for this client still exists (a revoked grant is deleted). */
  async function hasConsent(on: TestVeil, clientId: string): Promise<boolean> {
    const res = await on.admin<{ consents: { client_id: string }[] }>('GET', `/admin/users/${userId}/consents`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.consents.some((c) => c.client_id === clientId);
  }

  const refreshActive = async (on: TestVeil, to: HttpFlowClient, token: string) =>
    (await introspect(on.issuer, { id: to.clientId, secret: to.clientSecret! }, token)).body.active === true;

  const code = (to: HttpFlowClient, c: { code: string; verifier: string }, resource?: string): [string, string][] => [
    ['grant_type', 'authorization_code'],
    ['code', c.code],
    ['redirect_uri', to.redirectUri],
    ['code_verifier', c.verifier],
    ...(resource ? [['resource', resource] as [string, string]] : []),
  ];

  test('refresh with two resource parameters: invalid_target, and the same refresh token then works', async () => {
    const c = await httpAuthorize(client, user, 'openid offline_access read', { resource: API });
    const tokens = await exchange(client, c.code, c.verifier);
    const before = await issued();

    const refused = await tokenForm(client, [
      ['grant_type', 'refresh_token'],
      ['refresh_token', tokens.refresh_token],
      ['resource', API],
      ['resource', OTHER],
    ]);
    assert.deepEqual([refused.status, refused.body.error], [400, 'invalid_target'], JSON.stringify(refused.body));
    assert.equal(refused.body.access_token, undefined);
    assert.equal(await issued(), before, 'the refused refresh issued nothing');
    assert.ok(await refreshActive(veil, client, tokens.refresh_token), 'the refresh token was not consumed');

    const retry = await tokenForm(client, [
      ['grant_type', 'refresh_token'],
      ['refresh_token', tokens.refresh_token],
      ['resource', API],
    ]);
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    assert.equal((await openSealed(retry.body.access_token!, api.privateKey, veil.issuer, API)).payload.aud, API);
    assert.ok(await hasConsent(veil, client.clientId), 'the grant survived');
  });

  test('two-resource grant: a refresh without resource is invalid_target before consumption; naming one works', async () => {
    const c = await httpAuthorize(client, user, 'openid offline_access read', { resource: [API, OTHER] });
    const tokens = (await tokenForm(client, code(client, c, API))).body;
    assert.ok(tokens.refresh_token, JSON.stringify(tokens));
    const before = await issued();

    // openid-client refreshes without `resource` by default.
    const refused = await tokenForm(client, [
      ['grant_type', 'refresh_token'],
      ['refresh_token', tokens.refresh_token],
    ]);
    assert.deepEqual([refused.status, refused.body.error], [400, 'invalid_target'], JSON.stringify(refused.body));
    assert.match(refused.body.error_description!, /resource/);
    assert.equal(await issued(), before, 'the refused refresh issued nothing');
    assert.ok(await refreshActive(veil, client, tokens.refresh_token), 'the refresh token was not consumed');

    const retry = await tokenForm(client, [
      ['grant_type', 'refresh_token'],
      ['refresh_token', tokens.refresh_token],
      ['resource', OTHER],
    ]);
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    assert.equal((await openSealed(retry.body.access_token!, other.privateKey, veil.issuer, OTHER)).payload.aud, OTHER);
    assert.ok(await hasConsent(veil, client.clientId), 'the grant survived');
  });

  test('two-resource code: an exchange without resource is invalid_target before consumption; naming one works', async () => {
    const c = await httpAuthorize(client, user, 'openid offline_access read', { resource: [API, OTHER] });
    const before = await issued();
    const refused = await tokenForm(client, code(client, c));
    assert.deepEqual([refused.status, refused.body.error], [400, 'invalid_target'], JSON.stringify(refused.body));
    assert.equal(await issued(), before, 'the refused exchange issued nothing');

    const twice = await tokenForm(client, [...code(client, c), ['resource', API], ['resource', OTHER]]);
    assert.deepEqual([twice.status, twice.body.error], [400, 'invalid_target'], JSON.stringify(twice.body));
    assert.equal(await issued(), before, 'the refused exchange issued nothing');

    const retry = await tokenForm(client, code(client, c, OTHER));
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    assert.equal((await openSealed(retry.body.access_token!, other.privateKey, veil.issuer, OTHER)).payload.aud, OTHER);
    assert.ok(await hasConsent(veil, client.clientId), 'the grant survived');
  });

  test('jwks_uri key server down on a fresh Veil: 503 for code and refresh, both usable once it is back', async () => {
    const key = await generateEncryptionKey('ec');
    let failing = false;
    const server = http.createServer((_req, res) => {
      if (failing) {
        res.statusCode = 500;
        res.end('down');
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [key.publicJwk] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    let fresh: TestVeil | undefined;
    try {
      const created = await veil.admin('POST', '/admin/resources', {
        identifier: REMOTE,
        name: 'Remote keys',
        scopes: ['read'],
        jwks_uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`,
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const remoteClient = await webClient(veil, [REMOTE]);
      const first = await httpAuthorize(remoteClient, user, 'openid offline_access read', { resource: REMOTE });
      const tokens = await exchange(remoteClient, first.code, first.verifier);
      const pending = await httpAuthorize(remoteClient, user, 'openid offline_access read', { resource: REMOTE });

      // A restarted Veil (empty key cache) on the same stores, while the key server fails.
      fresh = await startTestVeil(stores, { KEYS_DIR: keysDir, RESOURCE_JWKS_COOLDOWN_SECONDS: '1' });
      const there: HttpFlowClient = { ...remoteClient, issuer: fresh.issuer };
      failing = true;
      const before = await issued();

      const codeRefused = await tokenForm(there, code(there, pending));
      assert.deepEqual([codeRefused.status, codeRefused.body.error], [503, 'temporarily_unavailable'], JSON.stringify(codeRefused.body));
      const refreshRefused = await tokenForm(there, [
        ['grant_type', 'refresh_token'],
        ['refresh_token', tokens.refresh_token],
      ]);
      assert.deepEqual([refreshRefused.status, refreshRefused.body.error], [503, 'temporarily_unavailable'], JSON.stringify(refreshRefused.body));
      assert.equal(await issued(), before, 'nothing was issued while the key was unavailable');
      assert.ok(await refreshActive(fresh, there, tokens.refresh_token), 'the refresh token was not consumed');

      // Back up; past the failed fetch's cooldown, the same code and refresh token work.
      failing = false;
      await new Promise((r) => setTimeout(r, 1200));
      const codeRetry = await tokenForm(there, code(there, pending));
      assert.equal(codeRetry.status, 200, JSON.stringify(codeRetry.body));
      await openSealed(codeRetry.body.access_token!, key.privateKey, fresh.issuer, REMOTE);
      const refreshRetry = await tokenForm(there, [
        ['grant_type', 'refresh_token'],
        ['refresh_token', tokens.refresh_token],
      ]);
      assert.equal(refreshRetry.status, 200, JSON.stringify(refreshRetry.body));
      await openSealed(refreshRetry.body.access_token!, key.privateKey, fresh.issuer, REMOTE);
      assert.ok(await hasConsent(veil, remoteClient.clientId), 'the grant survived');
    } finally {
      await fresh?.stop();
      server.close();
    }
  });

  /** token.reused audit rows for this client, by whether the reuse was concurrent (written after the response). */
  async function reuses(clientId: string, concurrent: boolean, atLeast: number) {
    let events: { client_id?: string; details?: { kind?: string; concurrent?: boolean; grant_id?: string } }[] = [];
    for (let i = 0; i < 50; i++) {
      const res = await veil.admin<{ events: typeof events }>('GET', '/admin/audit?since=2000-01-01T00:00:00Z&type=token.reused&limit=1000');
      assert.equal(res.status, 200, JSON.stringify(res.body));
      events = res.body.events.filter((e) => e.client_id === clientId && e.details?.concurrent === concurrent);
      if (events.length >= atLeast) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    return events;
  }

  test('a consumed refresh token presented again revokes the grant and is audited as token.reused (concurrent: false)', async () => {
    const reuser = await webClient(veil, [API]);
    const c = await httpAuthorize(reuser, user, 'openid offline_access read', { resource: API });
    const tokens = await exchange(reuser, c.code, c.verifier);
    const rotated = await tokenRequest(reuser, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    assert.ok(await hasConsent(veil, reuser.clientId));

    const reuse = await tokenRequest(reuser, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
    assert.deepEqual([reuse.status, reuse.body.error], [400, 'invalid_grant']);
    assert.equal(await hasConsent(veil, reuser.clientId), false, 'the grant was revoked');
    const events = await reuses(reuser.clientId, false, 1);
    assert.equal(events.length, 1, 'one sequential reuse audited');
    assert.equal(events[0]!.details?.kind, 'RefreshToken');
    assert.equal(typeof events[0]!.details?.grant_id, 'string');
    assert.ok(
      veil.logs.some((l) => l.includes('"token.reused"') && l.includes(reuser.clientId)),
      'the reuse is logged',
    );
  });

  test('a consumed authorization code presented again revokes the grant and is audited as token.reused (concurrent: false)', async () => {
    const reuser = await webClient(veil, [API]);
    const c = await httpAuthorize(reuser, user, 'openid offline_access read', { resource: API });
    await exchange(reuser, c.code, c.verifier);
    const again = await tokenRequest(reuser, { grant_type: 'authorization_code', code: c.code, redirect_uri: REDIRECT, code_verifier: c.verifier });
    assert.deepEqual([again.status, again.body.error], [400, 'invalid_grant']);
    assert.equal(await hasConsent(veil, reuser.clientId), false, 'the grant was revoked');
    const events = await reuses(reuser.clientId, false, 1);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.details?.kind, 'AuthorizationCode');
  });
});
