/**
 * A long-lived grant's Redis list stays bounded: each refresh lists its new tokens, but entries
 * that are dead (expired, consumed) are dropped and old access tokens capped, so revoking a grant that
 * has been refreshed for months stays one short script. Revocation must still stop every live
 * token of the grant.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { httpAuthorizationCodeFlow, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { introspect, registerResourceServer, revoke, type TestResourceServer } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';
import { GRANT_LIST_MAX } from '../../src/store/short-lived-store.js';

type CreatedClient = { client: { client_id: string }; client_secret: string };

describe('a grant refreshed 200 times', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let rs: TestResourceServer;
  let web: HttpFlowClient;
  const user = { email: 'refresher@example.com', password: 'refreshing all day long' };

  before(async () => {
    stores = await createTestStores();
    // Hundreds of refreshes in a second or two: not what the token throttle is here to test.
    veil = await startTestVeil(stores, { TOKEN_RATE_LIMIT_PER_CLIENT: '100000', TOKEN_RATE_LIMIT_PER_ADDRESS: '100000' });
    rs = await registerResourceServer(veil, { identifier: 'https://list.example/api' });
    const redirectUri = 'http://127.0.0.1:9/cb';
    const c = await veil.admin<CreatedClient>('POST', '/admin/clients', {
      client_name: 'refresher',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      resources: [rs.identifier],
    });
    web = { issuer: veil.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret, redirectUri };
    await veil.admin('POST', '/admin/users', user);
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  async function grantLists(): Promise<string[]> {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await stores.redis.scan(cursor, 'MATCH', `${stores.keyPrefix}grant:*`, 'COUNT', 1000);
      found.push(...keys);
      cursor = next;
    } while (cursor !== '0');
    return found;
  }

  test('the list stays bounded, and revoking the grant still stops every token that was live', async () => {
    const first = await httpAuthorizationCodeFlow(web, user, 'openid offline_access', { resource: rs.identifier });
    const accessTokens = [first.access_token];
    let current = first;
    for (let i = 0; i < 200; i++) {
      const res = await tokenRequest(web, { grant_type: 'refresh_token', refresh_token: current.refresh_token, resource: rs.identifier });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      current = res.body as typeof current;
      accessTokens.push(current.access_token);
    }
    const [list, ...others] = await grantLists();
    assert.ok(list, 'the grant has a list');
    assert.equal(others.length, 0);
    const length = await stores.redis.llen(list);
    // One live refresh token, at most GRANT_LIST_MAX live access tokens, and what came since the
    // last rebuild: never the 400 entries 200 refreshes write.
    assert.ok(length < 2 * GRANT_LIST_MAX, `the grant list holds ${length} entries (bound ${GRANT_LIST_MAX})`);

    const rsCredentials = { id: rs.clientId, secret: rs.clientSecret };
    const active = async (at: string) => (await introspect(veil.issuer, rsCredentials, at)).body.active;
    // The newest live tokens stay usable; the oldest access tokens (far more than GRANT_LIST_MAX
    // refreshes ago, all within one access-token lifetime) were revoked as the list was bounded.
    const recent = accessTokens.slice(-(GRANT_LIST_MAX - 1));
    for (const at of [recent[0]!, current.access_token]) assert.equal(await active(at), true);
    assert.equal(await active(first.access_token), false);

    assert.equal((await revoke(veil.issuer, { id: web.clientId, secret: web.clientSecret! }, current.refresh_token)).status, 200);
    for (const at of [recent[0]!, recent[30]!, current.access_token]) assert.equal(await active(at), false);
    assert.equal((await tokenRequest(web, { grant_type: 'refresh_token', refresh_token: current.refresh_token })).body.error, 'invalid_grant');
    assert.deepEqual(await grantLists(), [], 'revocation removed the list');
  });
});
