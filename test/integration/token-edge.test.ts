/**
 * The token edge seals every access token for a resource server, whatever grant issued it: a
 * grant type registered with oidc-provider's `registerGrantType` (with or without registering
 * its model on the request) gets sealed tokens with no code added for it, and no response of the
 * token endpoint for a resource ever carries a bare `jti`. When sealing cannot happen, the answer
 * is an OAuth error, never the bare id.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { GrantRegistration } from '../../src/oidc/public-provider.js';
import { httpAuthorizationCodeFlow, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { introspect, openSealed, registerResourceServer, type TestResourceServer } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const API = 'https://api.edge.test';
const UNREGISTERED = 'https://unregistered.edge.test';
const WITH_ENTITY = 'urn:veil:test:with-entity';
const WITHOUT_ENTITY = 'urn:veil:test:without-entity';
const UNSEALABLE = 'urn:veil:test:unsealable';
const user = { email: 'edge@example.com', password: 'edges are sharp 123' };

/** A throw-away grant: a client-credentials-like token for `audience`, issued the way any custom grant would. */
function customGrant(type: string, audience: string, registerEntity: boolean): GrantRegistration {
  return {
    type,
    handler: async (ctx: KoaContextWithOIDC) => {
      const { ClientCredentials, ResourceServer } = ctx.oidc.provider as unknown as {
        ClientCredentials: new (input: Record<string, unknown>) => { save(): Promise<string>; expiration: number; scope?: string };
        ResourceServer: new (identifier: string, info: Record<string, unknown>) => unknown;
      };
      const token = new ClientCredentials({
        client: ctx.oidc.client,
        resourceServer: new ResourceServer(audience, { scope: 'read', audience, accessTokenFormat: 'opaque' }),
        scope: 'read',
      });
      if (registerEntity) ctx.oidc.entity('ClientCredentials', token);
      const value = await token.save();
      ctx.body = { access_token: value, token_type: 'Bearer', expires_in: token.expiration, scope: token.scope };
    },
  };
}

const isSealed = (value: unknown) => typeof value === 'string' && value.split('.').length === 5;

describe('the token edge (real PostgreSQL and Redis)', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let api: TestResourceServer;
  let worker: HttpFlowClient;
  let web: HttpFlowClient;

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(
      stores,
      {},
      {
        grants: [customGrant(WITH_ENTITY, API, true), customGrant(WITHOUT_ENTITY, API, false), customGrant(UNSEALABLE, UNREGISTERED, true)],
      },
    );
    api = await registerResourceServer(veil, { identifier: API, scopes: ['read'] });
    const workerSecret = 'a-long-client-secret-for-the-edge-0123456789';
    await veil.database.prisma.client.create({
      data: {
        clientId: 'edge-worker',
        metadata: {
          client_id: 'edge-worker',
          client_secret: workerSecret,
          client_name: 'edge worker',
          grant_types: ['client_credentials', WITH_ENTITY, WITHOUT_ENTITY, UNSEALABLE],
          response_types: [],
          redirect_uris: [],
          token_endpoint_auth_method: 'client_secret_basic',
          allowed_resources: [API],
          resource_scopes: { [API]: ['read'] },
        },
      },
    });
    worker = { issuer: veil.issuer, clientId: 'edge-worker', clientSecret: workerSecret, redirectUri: 'x' };
    await veil.admin('POST', '/admin/users', user);
    const c = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'edge web',
      redirect_uris: ['https://app.example/cb'],
      grant_types: ['authorization_code', 'refresh_token'],
      scope: 'offline_access',
      resources: [API],
      resource_scopes: { [API]: ['read'] },
    });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    web = { issuer: veil.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret, redirectUri: 'https://app.example/cb' };
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  for (const [type, label] of [
    [WITH_ENTITY, 'that registers its model on the request'],
    [WITHOUT_ENTITY, 'that registers nothing (the edge finds the stored record)'],
  ] as const) {
    test(`a custom grant ${label} issues sealed tokens with no code added for it`, async () => {
      const res = await tokenRequest(worker, { grant_type: type });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const token = res.body.access_token!;
      assert.ok(isSealed(token), `not a sealed token: ${token}`);
      const { payload, jwsHeader } = await openSealed(token, api.privateKey, veil.issuer, API);
      assert.equal(jwsHeader.typ, 'at+jwt');
      assert.equal(payload.client_id, 'edge-worker');
      assert.equal(payload.scope, 'read');
      // The sealed times are the stored record's: introspection agrees to the second.
      const seen = await introspect(veil.issuer, { id: api.clientId, secret: api.clientSecret }, token);
      assert.equal(seen.body.active, true, JSON.stringify(seen.body));
      assert.deepEqual([seen.body.jti, seen.body.iat, seen.body.exp], [payload.jti, payload.iat, payload.exp]);
      // The bare jti is no bearer token.
      assert.deepEqual((await introspect(veil.issuer, { id: api.clientId, secret: api.clientSecret }, String(payload.jti))).body, { active: false });
    });
  }

  test('no token response for a resource carries a bare jti: client credentials, code, refresh, custom grants', async () => {
    const responses: Array<[string, Record<string, unknown>]> = [];
    const cc = await tokenRequest(worker, { grant_type: 'client_credentials', resource: API, scope: 'read' });
    responses.push(['client_credentials', cc.body]);
    const code = await httpAuthorizationCodeFlow(web, user, 'offline_access read', { resource: API });
    responses.push(['authorization_code', code]);
    let refreshToken = String(code.refresh_token);
    for (let i = 0; i < 3; i++) {
      const refreshed = await tokenRequest(web, { grant_type: 'refresh_token', refresh_token: refreshToken });
      assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
      responses.push([`refresh ${i + 1}`, refreshed.body]);
      assert.notEqual(refreshed.body.refresh_token, refreshToken, 'the refresh token rotates');
      refreshToken = String(refreshed.body.refresh_token);
    }
    for (const type of [WITH_ENTITY, WITHOUT_ENTITY]) responses.push([type, (await tokenRequest(worker, { grant_type: type })).body]);

    for (const [grant, body] of responses) {
      assert.ok(isSealed(body.access_token), `${grant}: access_token is not sealed: ${JSON.stringify(body)}`);
      const { payload } = await openSealed(String(body.access_token), api.privateKey, veil.issuer, API);
      assert.notEqual(body.access_token, payload.jti, `${grant}: the bare jti was handed out`);
      for (const value of Object.values(body)) assert.notEqual(value, payload.jti, `${grant}: the response carries the bare jti`);
    }
  });

  test('a rotated refresh token is single use: presenting it again revokes the grant, and its successor with it', async () => {
    const code = await httpAuthorizationCodeFlow(web, user, 'offline_access read', { resource: API });
    const first = await tokenRequest(web, { grant_type: 'refresh_token', refresh_token: String(code.refresh_token) });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const again = await tokenRequest(web, { grant_type: 'refresh_token', refresh_token: String(code.refresh_token) });
    assert.deepEqual([again.status, again.body.error], [400, 'invalid_grant']);
    assert.equal(again.body.access_token, undefined);
    const successor = await tokenRequest(web, { grant_type: 'refresh_token', refresh_token: String(first.body.refresh_token) });
    assert.deepEqual([successor.status, successor.body.error], [400, 'invalid_grant']);
    const seen = await introspect(veil.issuer, { id: api.clientId, secret: api.clientSecret }, String(first.body.access_token));
    assert.equal(seen.body.active, false, 'the access token issued with the rotation died with the grant');
  });

  test('an added grant answers only the clients allowed it, authenticated: others are refused and nothing is issued', async () => {
    // A client of Veil's that was not given the grant type: 400 (oidc-provider's invalid_request).
    const notAllowed = await tokenRequest(web, { grant_type: WITH_ENTITY });
    assert.equal(notAllowed.status, 400, JSON.stringify(notAllowed.body));
    assert.match(String(notAllowed.body.error_description), /grant type is not allowed/);
    assert.equal(notAllowed.body.access_token, undefined);
    // Callers with no or wrong credentials: 401 invalid_client.
    for (const [who, caller] of [
      ['no credentials', { ...worker, clientSecret: undefined }],
      ['a wrong secret', { ...worker, clientSecret: 'not-the-secret-at-all-0123456789' }],
    ] as const) {
      const res = await tokenRequest(caller, { grant_type: WITH_ENTITY });
      assert.deepEqual([res.status, res.body.error], [401, 'invalid_client'], `${who}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.access_token, undefined, `${who} got a token`);
    }
  });

  test('when sealing is impossible the answer is an OAuth error, never the bare id', async () => {
    const res = await tokenRequest(worker, { grant_type: UNSEALABLE });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error, 'invalid_target');
    assert.equal(res.body.access_token, undefined);
  });
});
