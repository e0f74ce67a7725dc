/**
 * Two Veil processes over one PostgreSQL and one Redis: a token issued by one is introspected
 * and revoked through the other, and a resource server or client registered through one is
 * usable through the other at once (cross-process cache invalidation).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../helpers/net.js';
import { ManagedProcess } from '../helpers/process.js';
import { introspect, openSealed, registerResourceServer, revoke } from '../helpers/resource-servers.js';
import { httpAuthorizationCodeFlow, tokenRequest } from '../helpers/http-flow.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

describe('two Veil processes sharing PostgreSQL and Redis', () => {
  let stores: TestStores;
  let a: TestVeil;
  let b: ManagedProcess;
  let bIssuer: string;

  before(async () => {
    stores = await createTestStores();
    a = await startTestVeil(stores);
    const port = await freePort();
    // Same issuer name space is not required, but the same keys are: B signs with A's keys dir.
    bIssuer = `http://127.0.0.1:${port}`;
    b = new ManagedProcess(process.execPath, ['dist/main.js'], {
      NODE_ENV: 'test',
      PORT: String(port),
      HOST: '127.0.0.1',
      ISSUER: a.issuer,
      ADMIN_PORT: String(await freePort()),
      KEYS_DIR: a.config.keysDir,
      DATABASE_URL: stores.databaseUrl,
      REDIS_URL: stores.redisUrl,
      REDIS_KEY_PREFIX: stores.keyPrefix,
      VEIL_SEED: 'off',
    });
    await b.waitFor(/Veil is ready/, 60_000);
  });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await stores?.cleanup();
  });

  test('issued by one, introspected and revoked through the other', async () => {
    const rs = await registerResourceServer(a, { identifier: 'https://shared.example/api' });
    const created = await a.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'shared',
      grant_types: ['client_credentials'],
      resources: [rs.identifier],
    });
    const creds = { id: created.body.client.client_id, secret: created.body.client_secret };
    // Registered through A a moment ago: B must see both at once.
    const viaB = await tokenRequest(
      { issuer: bIssuer, clientId: creds.id, clientSecret: creds.secret, redirectUri: 'x' },
      {
        grant_type: 'client_credentials',
        resource: rs.identifier,
      },
    );
    assert.equal(viaB.status, 200, JSON.stringify(viaB.body));
    await openSealed(viaB.body.access_token!, rs.privateKey, a.issuer, rs.identifier);
    assert.equal((await introspect(a.issuer, { id: rs.clientId, secret: rs.clientSecret }, viaB.body.access_token!)).body.active, true);

    const viaA = await tokenRequest(
      { issuer: a.issuer, clientId: creds.id, clientSecret: creds.secret, redirectUri: 'x' },
      {
        grant_type: 'client_credentials',
        resource: rs.identifier,
      },
    );
    assert.equal((await introspect(bIssuer, { id: rs.clientId, secret: rs.clientSecret }, viaA.body.access_token!)).body.active, true);
    assert.equal((await revoke(bIssuer, creds, viaA.body.access_token!)).status, 200);
    assert.deepEqual((await introspect(a.issuer, { id: rs.clientId, secret: rs.clientSecret }, viaA.body.access_token!)).body, { active: false });
    assert.deepEqual((await introspect(bIssuer, { id: rs.clientId, secret: rs.clientSecret }, viaA.body.access_token!)).body, { active: false });
  });

  test('a user disabled through one process has their tokens refused by the other at once', async () => {
    const rs = await registerResourceServer(a, { identifier: 'https://accounts.example/api' });
    const created = await a.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'web',
      redirect_uris: ['http://127.0.0.1:9/cb'],
      grant_types: ['authorization_code', 'refresh_token'],
      resources: [rs.identifier],
      resource_scopes: { [rs.identifier]: ['read'] },
    });
    const user = { email: 'two-procs@example.com', password: 'shared between processes' };
    const userId = (await a.admin<{ user: { id: string } }>('POST', '/admin/users', user)).body.user.id;
    const web = { issuer: a.issuer, clientId: created.body.client.client_id, clientSecret: created.body.client_secret, redirectUri: 'http://127.0.0.1:9/cb' };
    const tokens = await httpAuthorizationCodeFlow(web, user, 'openid', { resource: rs.identifier, scope: 'openid read' });
    const rsCreds = { id: rs.clientId, secret: rs.clientSecret };
    // B looks the account up (and caches it) while it is active...
    assert.equal((await introspect(bIssuer, rsCreds, tokens.access_token)).body.active, true);
    assert.equal((await a.admin('POST', `/admin/users/${userId}/disable`, {})).status, 200);
    // ...and drops it when A announces the change.
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual((await introspect(bIssuer, rsCreds, tokens.access_token)).body, { active: false });
  });

  test('a client deleted through one process stops working in the other at once', async () => {
    const rs = await registerResourceServer(a, { identifier: 'https://gone.example/api' });
    const created = await a.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'doomed',
      grant_types: ['client_credentials'],
      resources: [rs.identifier],
    });
    const client = { issuer: bIssuer, clientId: created.body.client.client_id, clientSecret: created.body.client_secret, redirectUri: 'x' };
    assert.equal((await tokenRequest(client, { grant_type: 'client_credentials', resource: rs.identifier })).status, 200);
    assert.equal((await a.admin('DELETE', `/admin/clients/${client.clientId}`)).status, 204);
    await new Promise((r) => setTimeout(r, 200)); // pub/sub delivery
    assert.equal((await tokenRequest(client, { grant_type: 'client_credentials', resource: rs.identifier })).body.error, 'invalid_client');
  });
});
