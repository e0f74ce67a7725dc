/**
 * Grants are cached in each process (oidc/adapter.ts GrantAdapter). A consent withdrawn through
 * one process must be gone in every other at once: a browser session that still names the grant
 * must not skip consent on another host because that host read the grant a moment earlier.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { CookieJar, exchange, httpAuthorizeIn, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { freePort } from '../helpers/net.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAdapterFactory } from '../../src/oidc/adapter.js';
import { GrantRevocation } from '../../src/oidc/grant-revocation.js';
import { GrantRepository } from '../../src/store/grants.js';
import { LocalInvalidationBus } from '../../src/store/invalidation.js';
import { MemoryStore } from '../../src/store/memory-store.js';

const user = { email: 'cached@example.com', password: 'caches must forget 123' };
const REDIRECT = 'https://app.example/cb';

describe('the grant cache across processes (real PostgreSQL and Redis)', () => {
  let stores: TestStores;
  let a: TestVeil;
  let b: TestVeil;
  let client: HttpFlowClient;

  before(async () => {
    stores = await createTestStores();
    // Two hosts of one deployment: one issuer and cookie keys, shared stores.
    const port = await freePort();
    const shared = { ISSUER: `http://127.0.0.1:${port}`, COOKIE_KEYS: randomBytes(32).toString('base64url'), VEIL_MASTER_KEY: randomBytes(32).toString('base64url') };
    a = await startTestVeil(stores, { ...shared, PORT: String(port) });
    b = await startTestVeil(stores, { ...shared, PORT: String(await freePort()) });
    await a.admin('POST', '/admin/users', user);
    const c = await a.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'cached',
      redirect_uris: [REDIRECT],
      scope: 'openid offline_access',
    });
    client = { issuer: a.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret, redirectUri: REDIRECT };
  });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await stores?.cleanup();
  });

  /** An authorization request with prompt=none on host `base`, following its redirects: the code, or the error. */
  async function silentAuthorize(base: string, jar: CookieJar): Promise<URLSearchParams> {
    const url = new URL(`${base}/auth`);
    url.search = new URLSearchParams({
      client_id: client.clientId,
      response_type: 'code',
      scope: 'openid offline_access',
      prompt: 'none',
      redirect_uri: REDIRECT,
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    }).toString();
    let next = url.toString();
    for (let hop = 0; hop < 10; hop++) {
      if (next.startsWith(REDIRECT)) return new URL(next).searchParams;
      const res = await fetch(next, { headers: { cookie: jar.header() }, redirect: 'manual' });
      jar.store(res);
      const location = res.headers.get('location');
      if (!location) throw new Error(`no redirect from ${next} (${res.status})`);
      next = new URL(location, base).toString();
    }
    throw new Error('too many redirects');
  }

  test('a consent withdrawn on one host is not served from another host cache', async () => {
    const jar = new CookieJar();
    const { code, verifier } = await httpAuthorizeIn(jar, client, user);
    const tokens = await exchange(client, code, verifier);

    // Host B reads (and caches) the grant: a refresh there.
    const onB: HttpFlowClient = { ...client, issuer: b.publicUrl };
    const refreshed = await tokenRequest(onB, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    // With the grant in place, B answers a silent request with a code.
    assert.ok((await silentAuthorize(b.publicUrl, jar)).get('code'), 'the grant stands: no consent needed');

    // The consent is withdrawn through host A.
    const found = await a.admin<{ users: Array<{ id: string }> }>('GET', `/admin/users?email=${encodeURIComponent(user.email)}`);
    const accountId = found.body.users[0]!.id;
    assert.equal((await a.admin('DELETE', `/admin/users/${accountId}/consents/${client.clientId}`)).status, 204);

    // Host B must ask for consent again, though the browser session still names the grant.
    const silent = await silentAuthorize(b.publicUrl, jar);
    assert.equal(silent.get('code'), null, 'host B issued a code from its cached copy of a withdrawn grant');
    assert.equal(silent.get('error'), 'consent_required');
  });

  test('a read that a withdrawal overtakes is not cached', async () => {
    // The real repository on the real database, its reads slowed so the withdrawal lands mid-read.
    const grants = new GrantRepository(a.database.prisma);
    const slowGrants = Object.assign(Object.create(grants) as GrantRepository, {
      find: async (id: string) => {
        const row = await grants.find(id);
        await sleep(150);
        return row;
      },
    });
    const bus = new LocalInvalidationBus();
    const store = new MemoryStore();
    try {
      const adapter = createAdapterFactory({ clients: undefined as never, grants: slowGrants, shortLived: store, bus, revokedGrantTtl: 60 })('Grant');
      const revocation = new GrantRevocation(grants, store, 60, bus);
      const id = `grant-${randomBytes(8).toString('hex')}`;
      const account = await a.admin<{ users: Array<{ id: string }> }>('GET', `/admin/users?email=${encodeURIComponent(user.email)}`);
      await grants.upsert(id, { jti: id, kind: 'Grant', accountId: account.body.users[0]!.id, clientId: client.clientId, openid: { scope: 'openid' } }, 3600);

      const reading = adapter.find(id);
      await sleep(50);
      await revocation.revoke(id);
      assert.ok(await reading, 'the read began before the withdrawal');
      assert.equal(await adapter.find(id), undefined, 'the withdrawn grant was cached by the overtaken read');
    } finally {
      await store.close();
      await bus.close();
    }
  });
});
