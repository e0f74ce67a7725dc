/**
 * Data protection at rest, end to end: after real flows (sign-in, consent, code exchange,
 * refresh, client credentials, introspection, revocation), a dump of everything Veil keeps in
 * Redis (SCAN + GET / LRANGE / HGETALL) and PostgreSQL (every row of every table) holds no
 * refresh token, authorization code, access token, client secret, introspection secret,
 * password or user name in the clear; and every flow still works afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { httpAuthorize, exchange, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { introspect, openSealed, registerResourceServer, revoke, type TestResourceServer } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

describe('nothing usable at rest', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let rs: TestResourceServer;
  let web: HttpFlowClient;
  let worker: HttpFlowClient;
  const user = { email: 'at-rest@example.com', password: 'a password nobody should find' };
  const name = 'Ada Lovelace-Byron';
  const secrets = new Map<string, string>();

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    rs = await registerResourceServer(veil, { identifier: 'https://rest.example/api' });
    const c = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'rest-web',
      redirect_uris: ['http://127.0.0.1:9/cb'],
      grant_types: ['authorization_code', 'refresh_token'],
      resources: [rs.identifier],
      resource_scopes: { [rs.identifier]: ['read'] },
    });
    web = { issuer: veil.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret, redirectUri: 'http://127.0.0.1:9/cb' };
    const w = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'rest-worker',
      grant_types: ['client_credentials'],
      resources: [rs.identifier],
      resource_scopes: { [rs.identifier]: ['read'] },
    });
    worker = { issuer: veil.issuer, clientId: w.body.client.client_id, clientSecret: w.body.client_secret, redirectUri: 'x' };
    await veil.admin('POST', '/admin/users', { ...user, name });
    secrets.set('client secret', web.clientSecret!).set('worker secret', worker.clientSecret!).set('introspection secret', rs.clientSecret);
    secrets.set('password', user.password).set('name', name);
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  async function dumpRedis(): Promise<string> {
    const parts: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await stores.redis.scan(cursor, 'MATCH', `${stores.keyPrefix}*`, 'COUNT', 1000);
      for (const key of keys) {
        const type = await stores.redis.type(key);
        const value =
          type === 'string'
            ? await stores.redis.get(key)
            : type === 'list'
              ? (await stores.redis.lrange(key, 0, -1)).join('\n')
              : type === 'hash'
                ? JSON.stringify(await stores.redis.hgetall(key))
                : `(${type})`;
        parts.push(key, value ?? '');
      }
      cursor = next;
    } while (cursor !== '0');
    return parts.join('\n');
  }

  async function dumpPostgres(): Promise<string> {
    const client = new pg.Client(stores.databaseUrl);
    await client.connect();
    try {
      const tables = await client.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public'");
      const parts: string[] = [];
      for (const { tablename } of tables.rows) parts.push(JSON.stringify((await client.query(`SELECT * FROM "${tablename}"`)).rows));
      return parts.join('\n');
    } finally {
      await client.end();
    }
  }

  test('after the flows, neither store holds a token, code, secret, password or name in the clear', async () => {
    const { code, verifier } = await httpAuthorize(web, user, 'openid offline_access', { resource: rs.identifier, scope: 'openid offline_access read' });
    secrets.set('authorization code', code).set('PKCE verifier', verifier);
    const first = await exchange(web, code, verifier);
    const refreshed = await tokenRequest(web, { grant_type: 'refresh_token', refresh_token: first.refresh_token });
    assert.equal(refreshed.status, 200);
    const cc = await tokenRequest(worker, { grant_type: 'client_credentials', resource: rs.identifier });
    for (const [kind, value] of [
      ['refresh token (rotated)', first.refresh_token],
      ['refresh token', refreshed.body.refresh_token!],
      ['access token', refreshed.body.access_token!],
      ['client credentials token', cc.body.access_token!],
      ['id token', refreshed.body.id_token!],
    ] as const)
      secrets.set(kind, value);
    assert.equal((await introspect(veil.issuer, { id: rs.clientId, secret: rs.clientSecret }, cc.body.access_token!)).body.active, true);
    assert.equal((await revoke(veil.issuer, { id: worker.clientId, secret: worker.clientSecret! }, cc.body.access_token!)).status, 200);

    const dump = `${await dumpRedis()}\n${await dumpPostgres()}`;
    assert.ok(dump.length > 1000, 'the dump is not empty');
    for (const [kind, value] of secrets) {
      assert.ok(!dump.includes(value), `${kind} found in the clear`);
      // Parts of structured tokens too (a JWE's ciphertext, a JWS's signature).
      for (const part of value.split('.').filter((p) => p.length > 20)) assert.ok(!dump.includes(part), `part of the ${kind} found in the clear`);
    }

    // ...and everything still works from what is stored.
    const again = await tokenRequest(web, { grant_type: 'refresh_token', refresh_token: refreshed.body.refresh_token! });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    await openSealed(again.body.access_token!, rs.privateKey, veil.issuer, rs.identifier);
    assert.equal((await introspect(veil.issuer, { id: rs.clientId, secret: rs.clientSecret }, again.body.access_token!)).body.active, true);
    const users = await veil.admin<{ users: { email: string; name: string }[] }>('GET', '/admin/users');
    assert.equal(users.body.users.find((u) => u.email === user.email)?.name, name);
  });
});
