/**
 * Per-client throttling at /token and /token/introspection (429 with an OAuth JSON error and
 * Retry-After), and the security headers and cookie flags of the public listener.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startLoginInteraction } from '../helpers/http-flow.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

type Created = { client: { client_id: string }; client_secret?: string };

describe('token endpoint throttling and security headers', () => {
  let stores: TestStores;
  let veil: TestVeil;

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores, { TOKEN_RATE_LIMIT_PER_CLIENT: '1' });
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  async function confidentialClient(name: string) {
    const c = await veil.admin<Created>('POST', '/admin/clients', { client_name: name, grant_types: ['client_credentials'] });
    return `Basic ${Buffer.from(`${c.body.client.client_id}:${c.body.client_secret}`).toString('base64')}`;
  }

  const post = (path: string, authorization: string, body: Record<string, string>) =>
    fetch(`${veil.issuer}${path}`, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(body).toString(),
    });

  test('a client over its rate gets 429 temporarily_unavailable with Retry-After; others are unaffected', async () => {
    const greedy = await confidentialClient('greedy');
    // 1 r/s plus a burst of 1 per 10 s: of six requests at once, at most two get through.
    const responses = await Promise.all(Array.from({ length: 6 }, () => post('/token', greedy, { grant_type: 'client_credentials' })));
    const statuses = responses.map((r) => r.status);
    assert.ok(statuses.includes(200), `expected a 200 among ${statuses.join(', ')}`);
    assert.ok(statuses.filter((s) => s === 429).length >= 4, `expected 429s among ${statuses.join(', ')}`);
    const refused = responses.find((r) => r.status === 429)!;
    assert.match(refused.headers.get('content-type')!, /application\/json/);
    assert.deepEqual(await refused.json(), { error: 'temporarily_unavailable', error_description: 'too many requests' });
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After ${refused.headers.get('retry-after')}`);

    // Introspection counts against the same client.
    const introspect = await post('/token/introspection', greedy, { token: 'anything' });
    assert.equal(introspect.status, 429);

    const other = await post('/token', await confidentialClient('modest'), { grant_type: 'client_credentials' });
    assert.equal(other.status, 200);
  });

  test("naming a client from another address does not spend that client's allowance", async () => {
    // Behind a proxy, so the test can speak from two addresses.
    const proxied = await startTestVeil(stores, { TOKEN_RATE_LIMIT_PER_CLIENT: '1', TRUST_PROXY: 'true' });
    try {
      const c = await proxied.admin<Created>('POST', '/admin/clients', { client_name: 'victim', grant_types: ['client_credentials'] });
      const forged = `Basic ${Buffer.from(`${c.body.client.client_id}:not-the-secret`).toString('base64')}`;
      const real = `Basic ${Buffer.from(`${c.body.client.client_id}:${c.body.client_secret}`).toString('base64')}`;
      const from = (ip: string, authorization: string) =>
        fetch(`${proxied.issuer}/token`, {
          method: 'POST',
          headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': ip },
          body: 'grant_type=client_credentials',
        });
      const attack = await Promise.all(Array.from({ length: 6 }, () => from('203.0.113.9', forged)));
      assert.ok(
        attack.some((r) => r.status === 429),
        `the attacker is throttled: ${attack.map((r) => r.status).join(', ')}`,
      );
      assert.equal((await from('198.51.100.7', real)).status, 200);
    } finally {
      await proxied.stop();
    }
  });

  test('/token responses carry nosniff and no-referrer, and no HSTS for an http issuer', async () => {
    const res = await post('/token', 'Basic bm9ib2R5Om5vdGhpbmc=', { grant_type: 'client_credentials' });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(res.headers.get('strict-transport-security'), null);
  });

  test('the login page keeps its CSP, carries the headers, and its cookies are HttpOnly and SameSite', async () => {
    const c = await veil.admin<Created>('POST', '/admin/clients', {
      client_name: 'headers',
      redirect_uris: ['https://app.example/cb'],
      public: true,
    });
    const authorize = await fetch(
      `${veil.issuer}/auth?${new URLSearchParams({
        client_id: c.body.client.client_id,
        response_type: 'code',
        scope: 'openid',
        redirect_uri: 'https://app.example/cb',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
      }).toString()}`,
      { redirect: 'manual' },
    );
    const cookies = authorize.headers.getSetCookie();
    assert.ok(cookies.length > 0);
    for (const cookie of cookies) {
      assert.match(cookie, /;\s*httponly/i, cookie);
      assert.match(cookie, /;\s*samesite=lax/i, cookie);
    }

    const { path, cookie } = await startLoginInteraction(veil.issuer, c.body.client.client_id, 'https://app.example/cb');
    const page = await fetch(`${veil.issuer}${path}`, { headers: { cookie } });
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy')!, /default-src 'none'.*frame-ancestors 'none'/);
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(page.headers.get('strict-transport-security'), null);
  });
});
