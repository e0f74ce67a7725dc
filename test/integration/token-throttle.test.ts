/**
 * The token-endpoint throttle counts a claimed client id per client and address, which a flood
 * escapes by claiming a fresh made-up id on every request. A per-address ceiling, whatever id is
 * claimed, stops it; other addresses are unaffected.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

type Created = { client: { client_id: string }; client_secret: string };

describe('per-address ceiling at the token endpoint', () => {
  let stores: TestStores;
  let veil: TestVeil;

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores, { TRUST_PROXY: 'true', TOKEN_RATE_LIMIT_PER_CLIENT: '100', TOKEN_RATE_LIMIT_PER_ADDRESS: '5' });
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  const post = (ip: string, authorization: string, path = '/token') =>
    fetch(`${veil.issuer}${path}`, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': ip },
      body: 'grant_type=client_credentials',
    });
  const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

  test('a flood with a fresh fake client id per request is throttled once the address passes its ceiling', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await post('203.0.113.50', basic(`fake-${randomBytes(6).toString('hex')}`, 'x'));
      statuses.push(res.status);
      if (res.status === 429) {
        assert.deepEqual(await res.json(), { error: 'temporarily_unavailable', error_description: 'too many requests' });
        assert.ok(Number(res.headers.get('retry-after')) >= 1);
      } else await res.body?.cancel();
    }
    assert.ok(
      statuses.slice(0, 5).every((s) => s === 401),
      `the first requests reach authentication: ${statuses.join(', ')}`,
    );
    // The ceiling plus a burst of as many again per 10 s, then refused (a little more if the run
    // crosses a second, which refills the per-second part).
    assert.ok(statuses.filter((s) => s === 429).length >= 15, `the flood is throttled: ${statuses.join(', ')}`);
    // Introspection shares the ceiling.
    assert.equal((await post('203.0.113.50', basic('another-fake', 'x'), '/token/introspection')).status, 429);
  });

  test('revocation and pushed authorization requests are counted too', async () => {
    for (const path of ['/token/revocation', '/request']) {
      const ip = `203.0.113.${path === '/request' ? 61 : 60}`;
      const statuses: number[] = [];
      for (let i = 0; i < 30; i++) {
        const res = await post(ip, basic(`fake-${randomBytes(6).toString('hex')}`, 'x'), path);
        statuses.push(res.status);
        await res.body?.cancel();
      }
      assert.ok(statuses.filter((s) => s === 429).length >= 15, `${path} throttles the flood: ${statuses.join(', ')}`);
    }
  });

  test('another address, and a real client from it, are not affected', async () => {
    const c = await veil.admin<Created>('POST', '/admin/clients', { client_name: 'bystander', grant_types: ['client_credentials'] });
    const res = await post('198.51.100.50', basic(c.body.client.client_id, c.body.client_secret));
    assert.equal(res.status, 200);
    assert.ok(((await res.json()) as { access_token?: string }).access_token);
  });
});
