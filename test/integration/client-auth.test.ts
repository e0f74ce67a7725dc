/**
 * Client authentication methods at the token endpoint (client_secret_basic, client_secret_post,
 * private_key_jwt) driven by openid-client, and resource indicators (RFC 8707): a registered
 * resource server's access tokens carry it as the audience.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair } from 'jose';
import { openSealed, registerResourceServer } from '../helpers/resource-servers.js';
import * as oidc from 'openid-client';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

type Created = { client: { client_id: string }; client_secret?: string };

describe('client authentication and resource indicators', () => {
  let stores: TestStores;
  let veil: TestVeil;

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  async function discover(clientId: string, auth: oidc.ClientAuth) {
    return oidc.discovery(new URL(veil.issuer), clientId, undefined, auth, { execute: [oidc.allowInsecureRequests] });
  }

  test('client_secret_basic', async () => {
    const c = await veil.admin<Created>('POST', '/admin/clients', { client_name: 'basic', grant_types: ['client_credentials'] });
    const tokens = await oidc.clientCredentialsGrant(await discover(c.body.client.client_id, oidc.ClientSecretBasic(c.body.client_secret)));
    assert.equal(tokens.token_type.toLowerCase(), 'bearer');
  });

  test('client_secret_post', async () => {
    const c = await veil.admin<Created>('POST', '/admin/clients', {
      client_name: 'post',
      grant_types: ['client_credentials'],
      token_endpoint_auth_method: 'client_secret_post',
    });
    const config = await discover(c.body.client.client_id, oidc.ClientSecretPost(c.body.client_secret));
    assert.ok((await oidc.clientCredentialsGrant(config)).access_token);
    const wrong = await discover(c.body.client.client_id, oidc.ClientSecretPost('not-the-secret'));
    await assert.rejects(oidc.clientCredentialsGrant(wrong), (err: oidc.ResponseBodyError) => err.error === 'invalid_client');
  });

  test('private_key_jwt, with no secret issued', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const c = await veil.admin<Created>('POST', '/admin/clients', {
      client_name: 'pkjwt',
      grant_types: ['client_credentials'],
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [jwk] },
    });
    assert.equal(c.status, 201);
    assert.equal(c.body.client_secret, undefined);
    const config = await discover(c.body.client.client_id, oidc.PrivateKeyJwt({ key: privateKey, kid: 'k1' }));
    assert.ok((await oidc.clientCredentialsGrant(config)).access_token);
    // A key the client did not register is refused.
    const other = await generateKeyPair('ES256');
    const forged = await discover(c.body.client.client_id, oidc.PrivateKeyJwt({ key: other.privateKey, kid: 'k1' }));
    await assert.rejects(oidc.clientCredentialsGrant(forged), (err: oidc.ResponseBodyError) => err.error === 'invalid_client');
  });

  test('a resource indicator selects the audience of a sealed access token (openid-client)', async () => {
    const rs = await registerResourceServer(veil, { identifier: 'https://api.example.com/orders', scopes: ['orders:read', 'orders:write'], ttl: 300 });
    const c = await veil.admin<Created>('POST', '/admin/clients', {
      client_name: 'orders-worker',
      grant_types: ['client_credentials'],
      scope: 'orders:read',
      resources: [rs.identifier],
    });
    const config = await discover(c.body.client.client_id, oidc.ClientSecretBasic(c.body.client_secret));
    const tokens = await oidc.clientCredentialsGrant(config, { resource: rs.identifier, scope: 'orders:read' });
    const { payload, jwsHeader } = await openSealed(tokens.access_token, rs.privateKey, veil.issuer, rs.identifier);
    assert.equal(jwsHeader.alg, 'ES256');
    assert.equal(payload.client_id, c.body.client.client_id);
    assert.equal(payload.scope, 'orders:read');
    assert.equal(payload.exp! - payload.iat!, 300);

    // Scopes the resource server does not define, or the client is not allowed, are refused (not dropped).
    for (const scope of ['orders:read billing:admin', 'orders:write']) {
      await assert.rejects(oidc.clientCredentialsGrant(config, { resource: rs.identifier, scope }), (err: oidc.ResponseBodyError) => err.error === 'invalid_scope');
    }
  });

  test('CORS: a browser app may call the token endpoint only from a registered redirect origin', async () => {
    await veil.admin('POST', '/admin/clients', { client_name: 'spa', public: true, redirect_uris: ['https://spa.example/cb'] });
    const c = (await veil.admin<{ clients: { client_id: string; client_name: string }[] }>('GET', '/admin/clients')).body.clients.find((x) => x.client_name === 'spa')!;
    const attempt = (origin: string) =>
      fetch(`${veil.issuer}/token`, {
        method: 'POST',
        headers: { origin, 'content-type': 'application/x-www-form-urlencoded' },
        body: `grant_type=authorization_code&client_id=${c.client_id}&code=x&redirect_uri=https%3A%2F%2Fspa.example%2Fcb&code_verifier=${'a'.repeat(43)}`,
      });
    const allowed = await attempt('https://spa.example');
    assert.equal(allowed.headers.get('access-control-allow-origin'), 'https://spa.example');
    const foreign = await attempt('https://evil.example');
    assert.equal(foreign.headers.get('access-control-allow-origin'), null);
  });
});
