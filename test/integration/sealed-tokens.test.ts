/**
 * Sealed access tokens end to end against real PostgreSQL and Redis: issuance for EC, RSA and
 * jwks_uri resource servers (opened with jose only), introspection and revocation, grant-wide
 * revocation, refresh rotation and its races.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { compactDecrypt, exportJWK, generateKeyPair, type JWK } from 'jose';
import { httpAuthorizationCodeFlow, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { generateEncryptionKey, introspect, openSealed, registerResourceServer, revoke, type TestResourceServer } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

// RFC 9068's, and `status`: the token's Token Status List entry (issue 11).
const RFC9068_CLIENT_CLAIMS = ['aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'scope', 'status', 'sub'];

interface CreatedClient {
  client: { client_id: string };
  client_secret?: string;
}

describe('sealed access tokens', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let ec: TestResourceServer;
  let rsa: TestResourceServer;
  let worker: HttpFlowClient;
  let web: HttpFlowClient;
  let accountId: string;
  const user = { email: 'sealed@example.com', password: 'correct horse battery staple' };

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    ec = await registerResourceServer(veil, { identifier: 'https://orders.example/api', claims: ['email'] });
    rsa = await registerResourceServer(veil, { identifier: 'https://billing.example/api', kind: 'rsa' });
    const w = await veil.admin<CreatedClient>('POST', '/admin/clients', {
      client_name: 'worker',
      grant_types: ['client_credentials'],
      resources: [ec.identifier, rsa.identifier],
      resource_scopes: { [ec.identifier]: ['read'], [rsa.identifier]: ['read'] },
    });
    worker = { issuer: veil.issuer, clientId: w.body.client.client_id, clientSecret: w.body.client_secret!, redirectUri: 'http://127.0.0.1/unused' };
    const redirectUri = 'http://127.0.0.1:9/cb';
    const c = await veil.admin<CreatedClient>('POST', '/admin/clients', {
      client_name: 'web',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      resources: [ec.identifier],
      resource_scopes: { [ec.identifier]: ['read'] },
    });
    web = { issuer: veil.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret!, redirectUri };
    accountId = (await veil.admin<{ user: { id: string } }>('POST', '/admin/users', { ...user, name: 'Sealed User', email_verified: true })).body.user.id;
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  const clientCredentials = async (resource: string, scope = 'read') => {
    const res = await tokenRequest(worker, { grant_type: 'client_credentials', resource, scope });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.access_token!;
  };
  const codeFlow = () => httpAuthorizationCodeFlow(web, user, 'openid offline_access', { resource: ec.identifier, scope: 'openid offline_access read' });
  const rsCredentials = (rs: TestResourceServer) => ({ id: rs.clientId, secret: rs.clientSecret });

  test('client credentials, EC (P-256) resource server: a JWE only its key opens, with exactly the RFC 9068 claims', async (t) => {
    const token = await clientCredentials(ec.identifier);
    t.diagnostic(`client token: ${token.length} bytes`);
    assert.equal(token.split('.').length, 5);
    // 1000 before the status claim (issue 11), which adds about 150 (its idx and list uri, base64url twice).
    assert.ok(token.length <= 1200, `token is ${token.length} bytes`);
    const { jweHeader, jwsHeader, payload } = await openSealed(token, ec.privateKey, veil.issuer, ec.identifier);
    assert.deepEqual(Object.keys(jweHeader).sort(), ['alg', 'cty', 'enc', 'epk', 'kid']);
    assert.equal(jweHeader.alg, 'ECDH-ES+A256KW');
    assert.equal(jweHeader.enc, 'A256GCM');
    assert.equal(jweHeader.cty, 'JWT');
    assert.equal(jweHeader.kid, ec.publicJwk.kid);
    assert.deepEqual({ typ: jwsHeader.typ, alg: jwsHeader.alg }, { typ: 'at+jwt', alg: 'ES256' });
    const jwks = (await (await fetch(`${veil.issuer}/jwks`)).json()) as { keys: JWK[] };
    assert.ok(jwks.keys.some((k) => k.kid === jwsHeader.kid));
    assert.deepEqual(Object.keys(payload).sort(), RFC9068_CLIENT_CLAIMS);
    assert.equal(payload.sub, worker.clientId);
    assert.equal(payload.client_id, worker.clientId);
    assert.equal(payload.scope, 'read');
    // Another key cannot open it.
    const stranger = await generateEncryptionKey('ec');
    await assert.rejects(compactDecrypt(token, stranger.privateKey));
  });

  test('client credentials, RSA resource server: RSA-OAEP-256 / A256GCM', async () => {
    const token = await clientCredentials(rsa.identifier);
    const { jweHeader, payload } = await openSealed(token, rsa.privateKey, veil.issuer, rsa.identifier);
    assert.equal(jweHeader.alg, 'RSA-OAEP-256');
    assert.equal(jweHeader.epk, undefined);
    assert.deepEqual(Object.keys(payload).sort(), RFC9068_CLIENT_CLAIMS);
  });

  test('authorization code: the token carries the authentication event and only the claims the API may have', async (t) => {
    const tokens = await codeFlow();
    const { payload } = await openSealed(tokens.access_token, ec.privateKey, veil.issuer, ec.identifier);
    t.diagnostic(`user token: ${tokens.access_token.length} bytes, claims ${JSON.stringify(payload)}`);
    const allowed = new Set([...RFC9068_CLIENT_CLAIMS, 'auth_time', 'acr', 'amr', 'email']);
    for (const claim of [...RFC9068_CLIENT_CLAIMS, 'auth_time', 'email']) assert.ok(claim in payload, claim);
    for (const claim of Object.keys(payload)) assert.ok(allowed.has(claim), `unexpected claim ${claim}`);
    assert.equal(payload.email, user.email);
    assert.notEqual(payload.sub, web.clientId);
    assert.equal(typeof payload.auth_time, 'number');
    // The stored record keeps no personal data.
    const keys = await stores.redis.keys(`${stores.keyPrefix}AccessToken:*`);
    for (const key of keys) assert.doesNotMatch((await stores.redis.get(key)) ?? '', /sealed@example\.com/);
  });

  test('introspection: active for the JWE and the inner JWS; inactive for garbage and for another audience', async () => {
    const token = await clientCredentials(ec.identifier);
    const { inner, payload } = await openSealed(token, ec.privateKey, veil.issuer, ec.identifier);
    for (const presented of [token, inner]) {
      const res = await introspect(veil.issuer, rsCredentials(ec), presented);
      assert.equal(res.status, 200);
      assert.equal(res.body.active, true);
      for (const claim of ['scope', 'client_id', 'sub', 'aud', 'iss', 'exp', 'iat', 'jti', 'token_type']) assert.ok(claim in res.body, claim);
      assert.equal(res.body.jti, payload.jti);
      assert.equal(res.body.aud, ec.identifier);
      assert.equal(res.body.token_type, 'Bearer');
    }
    // Another resource server learns nothing about a token that is not for it.
    assert.deepEqual((await introspect(veil.issuer, rsCredentials(rsa), token)).body, { active: false });
    // The client that holds it may ask too.
    assert.equal((await introspect(veil.issuer, { id: worker.clientId, secret: worker.clientSecret! }, token)).body.active, true);
    for (const garbage of ['x', 'a.b.c', 'a.b.c.d.e', token.slice(0, -3), `${token.slice(0, 100)}A${token.slice(101)}`, 'e'.repeat(20_000)]) {
      assert.deepEqual((await introspect(veil.issuer, rsCredentials(ec), garbage)).body, { active: false });
    }
    // The bare jti is not a bearer token here.
    assert.deepEqual((await introspect(veil.issuer, rsCredentials(ec), String(payload.jti))).body, { active: false });
  });

  test('a client whose random id happens to start like an introspection client id still authenticates', async () => {
    const lookalike = { clientId: 'rs_lookalike-client', secret: 'a-long-client-secret-0123456789abcdef' };
    await veil.database.prisma.client.create({
      data: {
        clientId: lookalike.clientId,
        metadata: {
          client_id: lookalike.clientId,
          client_secret: lookalike.secret,
          client_name: 'lookalike',
          grant_types: ['client_credentials'],
          response_types: [],
          redirect_uris: [],
          token_endpoint_auth_method: 'client_secret_basic',
          allowed_resources: [ec.identifier],
        },
      },
    });
    const res = await tokenRequest(
      { issuer: veil.issuer, clientId: lookalike.clientId, clientSecret: lookalike.secret, redirectUri: 'x' },
      { grant_type: 'client_credentials', resource: ec.identifier },
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const own = await introspect(veil.issuer, { id: lookalike.clientId, secret: lookalike.secret }, res.body.access_token!);
    assert.equal(own.status, 200, JSON.stringify(own.body));
    assert.equal(own.body.active, true);
  });

  test('introspection refuses bad credentials with invalid_client', async () => {
    const res = await introspect(veil.issuer, { id: ec.clientId, secret: 'wrong' }, 'x');
    assert.equal(res.status, 401);
    assert.equal(res.body.error, 'invalid_client');
  });

  test('revoking a sealed token blacklists its jti: inactive at once, JWE and JWS alike', async () => {
    const token = await clientCredentials(ec.identifier);
    const { inner } = await openSealed(token, ec.privateKey, veil.issuer, ec.identifier);
    assert.equal((await revoke(veil.issuer, { id: worker.clientId, secret: worker.clientSecret! }, token)).status, 200);
    assert.deepEqual((await introspect(veil.issuer, rsCredentials(ec), token)).body, { active: false });
    assert.deepEqual((await introspect(veil.issuer, rsCredentials(ec), inner)).body, { active: false });
  });

  test("a client cannot revoke another client's token (200, as for an unknown token; nothing revoked)", async () => {
    const tokens = await codeFlow();
    const res = await revoke(veil.issuer, { id: worker.clientId, secret: worker.clientSecret! }, tokens.access_token);
    assert.equal(res.status, 200);
    assert.equal((await introspect(veil.issuer, rsCredentials(ec), tokens.access_token)).body.active, true);
  });

  test('an expired token is inactive', async () => {
    // Lifetimes are whole seconds from the issuing second: 2 s is at least 1 s of life, so the first look sees it live.
    const short = await registerResourceServer(veil, { identifier: 'https://short.example/api', ttl: 2 });
    const c = await veil.admin<CreatedClient>('POST', '/admin/clients', { client_name: 'short', grant_types: ['client_credentials'], resources: [short.identifier] });
    const res = await tokenRequest(
      { issuer: veil.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret!, redirectUri: 'x' },
      { grant_type: 'client_credentials', resource: short.identifier },
    );
    assert.equal((await introspect(veil.issuer, rsCredentials(short), res.body.access_token!)).body.active, true);
    await new Promise((r) => setTimeout(r, 3100));
    assert.deepEqual((await introspect(veil.issuer, rsCredentials(short), res.body.access_token!)).body, { active: false });
  });

  test('revoking the refresh token ends the grant: every access token of it is inactive at once', async () => {
    const tokens = await codeFlow();
    const refreshed = await tokenRequest(web, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
    assert.equal(refreshed.status, 200);
    for (const at of [tokens.access_token, refreshed.body.access_token!]) assert.equal((await introspect(veil.issuer, rsCredentials(ec), at)).body.active, true);
    assert.equal((await revoke(veil.issuer, { id: web.clientId, secret: web.clientSecret! }, refreshed.body.refresh_token!)).status, 200);
    for (const at of [tokens.access_token, refreshed.body.access_token!]) assert.deepEqual((await introspect(veil.issuer, rsCredentials(ec), at)).body, { active: false });
    const again = await tokenRequest(web, { grant_type: 'refresh_token', refresh_token: refreshed.body.refresh_token! });
    assert.equal(again.body.error, 'invalid_grant');
  });

  test('refresh-token reuse revokes the whole grant', async () => {
    const tokens = await codeFlow();
    const first = await tokenRequest(web, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
    assert.equal(first.status, 200);
    const reuse = await tokenRequest(web, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
    assert.equal(reuse.body.error, 'invalid_grant');
    assert.deepEqual((await introspect(veil.issuer, rsCredentials(ec), first.body.access_token!)).body, { active: false });
    const next = await tokenRequest(web, { grant_type: 'refresh_token', refresh_token: first.body.refresh_token! });
    assert.equal(next.body.error, 'invalid_grant');
  });

  test("withdrawing consent makes the grant's access tokens inactive and its refresh token useless", async () => {
    const tokens = await codeFlow();
    const res = await veil.admin('DELETE', `/admin/users/${accountId}/consents/${web.clientId}`);
    assert.equal(res.status, 204);
    assert.deepEqual((await introspect(veil.issuer, rsCredentials(ec), tokens.access_token)).body, { active: false });
    assert.equal((await tokenRequest(web, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token })).body.error, 'invalid_grant');
  });

  test('concurrent refreshes of one refresh token: at most one wins (20 rounds)', async () => {
    for (let round = 0; round < 20; round++) {
      const tokens = await codeFlow();
      const results = await Promise.all(Array.from({ length: 4 }, () => tokenRequest(web, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token })));
      assert.ok(results.filter((r) => r.status === 200).length <= 1, `round ${round}: ${results.map((r) => r.status).join(',')}`);
    }
  });

  test('revocation racing a refresh: no live token pair survives the revocation', async () => {
    for (let round = 0; round < 10; round++) {
      const tokens = await codeFlow();
      const [refreshed] = await Promise.all([
        tokenRequest(web, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }),
        revoke(veil.issuer, { id: web.clientId, secret: web.clientSecret! }, tokens.refresh_token),
      ]);
      if (refreshed.status === 200) {
        assert.deepEqual((await introspect(veil.issuer, rsCredentials(ec), refreshed.body.access_token!)).body, { active: false });
        assert.equal((await tokenRequest(web, { grant_type: 'refresh_token', refresh_token: refreshed.body.refresh_token! })).body.error, 'invalid_grant');
      }
    }
  });

  test('deleting the client, or disabling the user, makes their tokens inactive at once', async () => {
    const rs = rsCredentials(ec);
    const doomed = await veil.admin<CreatedClient>('POST', '/admin/clients', { client_name: 'doomed', grant_types: ['client_credentials'], resources: [ec.identifier] });
    const cc = await tokenRequest(
      { issuer: veil.issuer, clientId: doomed.body.client.client_id, clientSecret: doomed.body.client_secret!, redirectUri: 'x' },
      { grant_type: 'client_credentials', resource: ec.identifier },
    );
    assert.equal((await introspect(veil.issuer, rs, cc.body.access_token!)).body.active, true);
    assert.equal((await veil.admin('DELETE', `/admin/clients/${doomed.body.client.client_id}`)).status, 204);
    assert.deepEqual((await introspect(veil.issuer, rs, cc.body.access_token!)).body, { active: false });

    const other = { email: 'disable-me@example.com', password: 'soon to be disabled' };
    const otherId = (await veil.admin<{ user: { id: string } }>('POST', '/admin/users', other)).body.user.id;
    const tokens = await httpAuthorizationCodeFlow(web, other, 'openid offline_access', { resource: ec.identifier, scope: 'openid offline_access read' });
    assert.equal((await introspect(veil.issuer, rs, tokens.access_token)).body.active, true);
    assert.equal((await veil.admin('POST', `/admin/users/${otherId}/disable`, {})).status, 200);
    assert.deepEqual((await introspect(veil.issuer, rs, tokens.access_token)).body, { active: false });
  });

  test('unknown, malformed or not-allowed resources are invalid_target', async () => {
    for (const resource of ['https://unknown.example/api', 'not a uri', 'https://orders.example/api#frag']) {
      const res = await tokenRequest(worker, { grant_type: 'client_credentials', resource });
      assert.equal(res.status, 400, resource);
      assert.equal(res.body.error, 'invalid_target', resource);
    }
    const other = await registerResourceServer(veil, { identifier: 'https://other.example/api' });
    const res = await tokenRequest(worker, { grant_type: 'client_credentials', resource: other.identifier });
    assert.equal(res.body.error, 'invalid_target');
  });

  test('a jwks_uri key that names its own alg gets that alg, as an inline JWK does (ECDH-ES, not the default ECDH-ES+A256KW)', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ECDH-ES', { extractable: true });
    const publicJwk = { ...(await exportJWK(publicKey)), kid: 'ecdh-1', use: 'enc', alg: 'ECDH-ES' };
    const server = http.createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [publicJwk] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const identifier = 'https://ecdh-direct.example/api';
      const created = await veil.admin<{ resource: { alg: string } }>('POST', '/admin/resources', {
        identifier,
        name: 'ECDH-ES',
        scopes: ['read'],
        jwks_uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`,
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.resource.alg, 'ECDH-ES');
      const c = await veil.admin<CreatedClient>('POST', '/admin/clients', { client_name: 'ecdh-direct', grant_types: ['client_credentials'], resources: [identifier] });
      const res = await tokenRequest(
        { issuer: veil.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret!, redirectUri: 'x' },
        { grant_type: 'client_credentials', resource: identifier },
      );
      const { jweHeader } = await openSealed(res.body.access_token!, privateKey, veil.issuer, identifier);
      assert.equal(jweHeader.alg, 'ECDH-ES');
    } finally {
      server.close();
    }
  });

  test('a jwks_uri resource server whose key rotates: Veil seals to the new key once its cache expires', async () => {
    let current = await generateEncryptionKey('ec');
    const server = http.createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [current.publicJwk] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const jwksUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
      const local = await startTestVeil(stores, { RESOURCE_JWKS_CACHE_SECONDS: '1', RESOURCE_JWKS_COOLDOWN_SECONDS: '1' });
      try {
        const created = await local.admin<{ resource: { jwks_uri: string } }>('POST', '/admin/resources', {
          identifier: 'https://rotating.example/api',
          name: 'Rotating',
          scopes: ['read'],
          jwks_uri: jwksUri,
        });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        const c = await local.admin<CreatedClient>('POST', '/admin/clients', {
          client_name: 'rot',
          grant_types: ['client_credentials'],
          resources: ['https://rotating.example/api'],
        });
        const client = { issuer: local.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret!, redirectUri: 'x' };
        const issue = async () => (await tokenRequest(client, { grant_type: 'client_credentials', resource: 'https://rotating.example/api' })).body.access_token!;
        const before = await issue();
        await openSealed(before, current.privateKey, local.issuer, 'https://rotating.example/api');
        const old = current;
        current = await generateEncryptionKey('ec');
        await new Promise((r) => setTimeout(r, 1300));
        const afterRotation = await issue();
        const { jweHeader } = await openSealed(afterRotation, current.privateKey, local.issuer, 'https://rotating.example/api');
        assert.equal(jweHeader.kid, current.publicJwk.kid);
        await assert.rejects(compactDecrypt(afterRotation, old.privateKey));
      } finally {
        await local.stop();
      }
    } finally {
      server.close();
    }
  });
});
