/**
 * DPoP (RFC 9449) at Veil's token endpoint, through the token edge: a proof binds the sealed
 * access token (`cnf.jkt` in the signed claims, `token_type: DPoP`) for client credentials, the
 * authorization code and refresh; a public client's refresh token is bound to the key too; a
 * client registered with `dpop_bound_access_tokens` gets nothing without a proof; introspection
 * and revocation (Veil's own endpoints) handle bound tokens; token exchange refuses them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { dpopKey, dpopProof, type DPoPKey } from '../helpers/dpop.js';
import { httpAuthorize, type HttpFlowClient } from '../helpers/http-flow.js';
import { introspect, openSealed, registerResourceServer, revoke, type TestResourceServer } from '../helpers/resource-servers.js';
import { rememberFields, rememberSecret, rememberTokens } from '../helpers/secrets.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const API = 'https://api.dpop.test';
const INTERNAL = 'https://internal.dpop.test';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const user = { email: 'dpop@example.com', password: 'proof of possession 123' };

interface TokenAnswer {
  status: number;
  body: Record<string, string>;
}

describe('DPoP-bound tokens (real PostgreSQL and Redis)', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let api: TestResourceServer;
  let worker: HttpFlowClient;
  let strictWorker: HttpFlowClient;
  let web: HttpFlowClient;
  let spa: HttpFlowClient;
  let key: DPoPKey;
  let otherKey: DPoPKey;
  let tokenUrl: string;

  /** POST /token with the client's credentials and, when given, a DPoP proof. */
  async function token(client: HttpFlowClient, params: Record<string, string>, proof?: string): Promise<TokenAnswer> {
    rememberSecret(client.clientSecret, 'client secret');
    rememberFields(params, ['code', 'code_verifier', 'refresh_token']);
    const res = await fetch(tokenUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        ...(client.clientSecret ? { authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}` } : {}),
        ...(proof ? { dpop: proof } : {}),
      },
      body: new URLSearchParams({ ...(client.clientSecret ? {} : { client_id: client.clientId }), ...params }).toString(),
    });
    const body = (await res.json()) as Record<string, string>;
    rememberTokens(body);
    return { status: res.status, body };
  }

  const proofFor = (k: DPoPKey) => dpopProof(k, { htm: 'POST', htu: tokenUrl });

  async function codeFor(client: HttpFlowClient) {
    const { code, verifier } = await httpAuthorize(client, user, 'openid offline_access read', { resource: API });
    return { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: client.redirectUri };
  }

  async function boundTo(accessToken: string, jkt: string | undefined) {
    const { payload } = await openSealed(accessToken, api.privateKey, veil.issuer, API);
    assert.deepEqual(payload.cnf, jkt === undefined ? undefined : { jkt });
    const seen = await introspect(veil.issuer, { id: api.clientId, secret: api.clientSecret }, accessToken);
    assert.equal(seen.body.active, true, JSON.stringify(seen.body));
    assert.equal(seen.body.token_type, jkt === undefined ? 'Bearer' : 'DPoP');
    assert.deepEqual(seen.body.cnf, jkt === undefined ? undefined : { jkt });
  }

  /** Every key Veil holds in Redis for this test: a refused request must add none. */
  const redisKeys = async () => (await stores.redis.keys(`${stores.keyPrefix}*`)).sort();

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    tokenUrl = `${veil.issuer}/token`;
    api = await registerResourceServer(veil, { identifier: API, scopes: ['read'] });
    await registerResourceServer(veil, { identifier: INTERNAL, scopes: ['read'] });
    await veil.admin('POST', '/admin/users', user);
    [key, otherKey] = await Promise.all([dpopKey('ES256'), dpopKey('EdDSA')]);

    const confidential = async (name: string, extra: Record<string, unknown> = {}) => {
      const res = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
        client_name: name,
        grant_types: ['client_credentials'],
        scope: 'read',
        resources: [API],
        ...extra,
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return { issuer: veil.issuer, clientId: res.body.client.client_id, clientSecret: res.body.client_secret, redirectUri: 'https://app.dpop.test/cb' };
    };
    worker = await confidential('dpop worker');
    strictWorker = await confidential('dpop strict worker', { dpop_bound_access_tokens: true });
    web = await confidential('dpop web', {
      redirect_uris: ['https://app.dpop.test/cb'],
      grant_types: ['authorization_code', 'refresh_token'],
      scope: 'openid offline_access read',
    });
    const pub = await veil.admin<{ client: { client_id: string } }>('POST', '/admin/clients', {
      client_name: 'dpop spa',
      public: true,
      redirect_uris: ['https://spa.dpop.test/cb'],
      grant_types: ['authorization_code', 'refresh_token'],
      scope: 'openid offline_access read',
      resources: [API],
    });
    assert.equal(pub.status, 201, JSON.stringify(pub.body));
    spa = { issuer: veil.issuer, clientId: pub.body.client.client_id, redirectUri: 'https://spa.dpop.test/cb' };
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  test('discovery advertises DPoP and its algorithms', async () => {
    const meta = (await (await fetch(`${veil.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    assert.ok(Array.isArray(meta.dpop_signing_alg_values_supported));
    assert.ok((meta.dpop_signing_alg_values_supported as string[]).includes('ES256'));
  });

  test('client credentials: a proof binds the sealed token (cnf.jkt signed inside, token_type DPoP); without one it is a Bearer token', async () => {
    const bound = await token(worker, { grant_type: 'client_credentials', resource: API, scope: 'read' }, await proofFor(key));
    assert.equal(bound.status, 200, JSON.stringify(bound.body));
    assert.equal(bound.body.token_type, 'DPoP');
    assert.equal(bound.body.access_token!.split('.').length, 5);
    await boundTo(bound.body.access_token!, key.jkt);

    const plain = await token(worker, { grant_type: 'client_credentials', resource: API, scope: 'read' });
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    assert.equal(plain.body.token_type, 'Bearer');
    await boundTo(plain.body.access_token!, undefined);

    // A bound token is revoked like any other at Veil's own revocation endpoint.
    assert.equal((await revoke(veil.issuer, { id: worker.clientId, secret: worker.clientSecret! }, bound.body.access_token!)).status, 200);
    assert.deepEqual((await introspect(veil.issuer, { id: api.clientId, secret: api.clientSecret }, bound.body.access_token!)).body, { active: false });
  });

  test('bad proofs at the token endpoint: invalid_dpop_proof, nothing issued', async () => {
    const before = await redisKeys();
    const cases: Array<[string, Promise<string>]> = [
      ['wrong htm', dpopProof(key, { htm: 'GET', htu: tokenUrl })],
      ['wrong htu', dpopProof(key, { htm: 'POST', htu: `${veil.issuer}/elsewhere` })],
      ['stale iat', dpopProof(key, { htm: 'POST', htu: tokenUrl, iat: Math.floor(Date.now() / 1000) - 3600 })],
      ['wrong typ', dpopProof(key, { htm: 'POST', htu: tokenUrl, typ: 'JWT' })],
      ['no jti', dpopProof(key, { htm: 'POST', htu: tokenUrl, omit: ['jti'] })],
      ["another key's jwk in the header", dpopProof(key, { htm: 'POST', htu: tokenUrl, jwk: otherKey.publicJwk })],
    ];
    for (const [label, proof] of cases) {
      const res = await token(worker, { grant_type: 'client_credentials', resource: API, scope: 'read' }, await proof);
      assert.equal(res.status, 400, `${label}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error, 'invalid_dpop_proof', label);
      assert.equal(res.body.access_token, undefined);
    }
    assert.deepEqual(await redisKeys(), before);
  });

  test('a client required to use DPoP gets no token without a proof (nothing issued), a bound one with it; another client is unaffected', async () => {
    const before = await redisKeys();
    const refused = await token(strictWorker, { grant_type: 'client_credentials', resource: API, scope: 'read' });
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body.error, 'invalid_grant');
    assert.equal(refused.body.access_token, undefined);
    assert.deepEqual(await redisKeys(), before);

    const bound = await token(strictWorker, { grant_type: 'client_credentials', resource: API, scope: 'read' }, await proofFor(key));
    assert.equal(bound.status, 200, JSON.stringify(bound.body));
    assert.equal(bound.body.token_type, 'DPoP');
    await boundTo(bound.body.access_token!, key.jkt);

    assert.equal((await token(worker, { grant_type: 'client_credentials', resource: API, scope: 'read' })).status, 200);
  });

  test('the requirement is set and cleared through the admin API, and the client listing shows it', async () => {
    const on = await veil.admin<{ client: Record<string, unknown> }>('PATCH', `/admin/clients/${encodeURIComponent(worker.clientId)}`, { dpop_bound_access_tokens: true });
    assert.equal(on.status, 200, JSON.stringify(on.body));
    assert.equal(on.body.client.dpop_bound_access_tokens, true);
    assert.equal((await token(worker, { grant_type: 'client_credentials', resource: API, scope: 'read' })).body.error, 'invalid_grant');
    // Another change keeps the requirement.
    const renamed = await veil.admin<{ client: Record<string, unknown> }>('PATCH', `/admin/clients/${encodeURIComponent(worker.clientId)}`, { client_name: 'dpop worker 2' });
    assert.equal(renamed.body.client.dpop_bound_access_tokens, true);
    assert.equal((await token(worker, { grant_type: 'client_credentials', resource: API, scope: 'read' })).body.error, 'invalid_grant');
    const off = await veil.admin<{ client: Record<string, unknown> }>('PATCH', `/admin/clients/${encodeURIComponent(worker.clientId)}`, { dpop_bound_access_tokens: false });
    assert.equal(off.status, 200, JSON.stringify(off.body));
    assert.notEqual(off.body.client.dpop_bound_access_tokens, true);
    assert.equal((await token(worker, { grant_type: 'client_credentials', resource: API, scope: 'read' })).status, 200);
    const bad = await veil.admin('PATCH', `/admin/clients/${encodeURIComponent(worker.clientId)}`, { dpop_bound_access_tokens: 'yes' });
    assert.equal(bad.status, 400);
  });

  test('authorization code then refresh (confidential client): each access token bound to the proof sent with its request', async () => {
    const issued = await token(web, await codeFor(web), await proofFor(key));
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    assert.equal(issued.body.token_type, 'DPoP');
    await boundTo(issued.body.access_token!, key.jkt);

    // A confidential client's refresh token is bound by its client authentication, not the key (RFC 9449 §5.0).
    const refreshed = await token(web, { grant_type: 'refresh_token', refresh_token: issued.body.refresh_token! }, await proofFor(otherKey));
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    assert.equal(refreshed.body.token_type, 'DPoP');
    await boundTo(refreshed.body.access_token!, otherKey.jkt);
    const plain = await token(web, { grant_type: 'refresh_token', refresh_token: refreshed.body.refresh_token! });
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    assert.equal(plain.body.token_type, 'Bearer');
    await boundTo(plain.body.access_token!, undefined);
  });

  test("a public client's refresh token is bound to its key: refused without a proof or with another key's (and left usable), rotated with it", async () => {
    const issued = await token(spa, await codeFor(spa), await proofFor(key));
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    await boundTo(issued.body.access_token!, key.jkt);
    const refreshToken = issued.body.refresh_token!;
    const seen = await introspect(veil.issuer, { id: api.clientId, secret: api.clientSecret }, refreshToken);
    assert.equal(seen.body.active, false, 'a resource server does not introspect refresh tokens');

    const before = await redisKeys();
    for (const proof of [undefined, await proofFor(otherKey)]) {
      const res = await token(spa, { grant_type: 'refresh_token', refresh_token: refreshToken }, proof);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error, 'invalid_grant');
      assert.equal(res.body.access_token, undefined);
    }
    // The refusals consumed nothing (the other key's proof is remembered as used: one replay-detection key).
    const added = (await redisKeys()).filter((k) => !before.includes(k));
    assert.ok(added.length <= 1, `unexpected writes: ${added.length}`);

    const rotated = await token(spa, { grant_type: 'refresh_token', refresh_token: refreshToken }, await proofFor(key));
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    assert.equal(rotated.body.token_type, 'DPoP');
    await boundTo(rotated.body.access_token!, key.jkt);
    assert.notEqual(rotated.body.refresh_token, refreshToken);
    // The successor carries the binding too.
    const stolen = await token(spa, { grant_type: 'refresh_token', refresh_token: rotated.body.refresh_token! }, await proofFor(otherKey));
    assert.equal(stolen.body.error, 'invalid_grant');
    const again = await token(spa, { grant_type: 'refresh_token', refresh_token: rotated.body.refresh_token! }, await proofFor(key));
    assert.equal(again.status, 200, JSON.stringify(again.body));
    await boundTo(again.body.access_token!, key.jkt);
  });

  test('token exchange refuses a DPoP-bound subject token (it would come back a bearer token); nothing issued', async () => {
    const gateway = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'dpop gateway',
      grant_types: [TOKEN_EXCHANGE],
      resources: [INTERNAL],
      resource_scopes: { [INTERNAL]: ['read'] },
      exchange_from: [API],
    });
    assert.equal(gateway.status, 201, JSON.stringify(gateway.body));
    const exchanger = { issuer: veil.issuer, clientId: gateway.body.client.client_id, clientSecret: gateway.body.client_secret, redirectUri: 'x' };
    const exchangeOf = async (subject: string, proof?: string) =>
      token(exchanger, { grant_type: TOKEN_EXCHANGE, subject_token: subject, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', resource: INTERNAL }, proof);

    const bound = await token(worker, { grant_type: 'client_credentials', resource: API, scope: 'read' }, await proofFor(key));
    assert.equal(bound.status, 200, JSON.stringify(bound.body));
    const before = await redisKeys();
    const refused = await exchangeOf(bound.body.access_token!);
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body.error, 'invalid_request');
    assert.match(refused.body.error_description ?? '', /sender-constrained/);
    assert.deepEqual(await redisKeys(), before);
    // An unbound subject is exchanged as before.
    const plain = await token(worker, { grant_type: 'client_credentials', resource: API, scope: 'read' });
    assert.equal((await exchangeOf(plain.body.access_token!)).status, 200);

    // The exchanged token would be unbound: a proof with the exchange, or a client required to use DPoP, is refused.
    const withProof = await exchangeOf(plain.body.access_token!, await proofFor(key));
    assert.deepEqual([withProof.status, withProof.body.error, withProof.body.access_token], [400, 'invalid_request', undefined]);
    const path = `/admin/clients/${encodeURIComponent(exchanger.clientId)}`;
    assert.equal((await veil.admin('PATCH', path, { dpop_bound_access_tokens: true })).status, 200);
    const required = await exchangeOf(plain.body.access_token!);
    assert.deepEqual([required.status, required.body.error, required.body.access_token], [400, 'invalid_request', undefined]);
    assert.match(required.body.error_description ?? '', /DPoP is not supported with token exchange/);
  });

  test('userinfo with a DPoP-bound (opaque) access token: only with a proof for /me', async () => {
    const { code, verifier } = await httpAuthorize(web, user, 'openid offline_access');
    const issued = await token(web, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: web.redirectUri }, await proofFor(key));
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    assert.equal(issued.body.token_type, 'DPoP');
    const opaque = issued.body.access_token!;
    assert.equal(opaque.split('.').length, 1, 'no API asked: an opaque userinfo token');
    const me = `${veil.issuer}/me`;
    const asBearer = await fetch(me, { headers: { authorization: `Bearer ${opaque}` } });
    assert.equal(asBearer.status, 401);
    const proof = await dpopProof(key, { htm: 'GET', htu: me, accessToken: opaque });
    const ok = await fetch(me, { headers: { authorization: `DPoP ${opaque}`, dpop: proof } });
    assert.equal(ok.status, 200, await ok.clone().text());
    assert.ok(((await ok.json()) as { sub?: string }).sub);
    const stolen = await fetch(me, { headers: { authorization: `DPoP ${opaque}`, dpop: await dpopProof(otherKey, { htm: 'GET', htu: me, accessToken: opaque }) } });
    assert.equal(stolen.status, 401);
  });

  test('a proof used once at the token endpoint is refused the second time', async () => {
    const proof = await proofFor(key);
    const first = await token(spa, await codeFor(spa), proof);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const replayed = await token(spa, { grant_type: 'refresh_token', refresh_token: first.body.refresh_token! }, proof);
    assert.equal(replayed.status, 400, JSON.stringify(replayed.body));
    assert.equal(replayed.body.access_token, undefined);
  });
});
