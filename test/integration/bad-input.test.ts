/**
 * Acceptance 6 of the foundation: every caller mistake gets the protocol's own error (OAuth
 * JSON, or the HTML error page for browsers), never a stack trace, never a 500.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startLoginInteraction } from '../helpers/http-flow.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const HTML = { accept: 'text/html' };

async function json(res: Response) {
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  return (await res.json()) as { error: string; error_description?: string };
}

async function html(res: Response) {
  assert.match(res.headers.get('content-type') ?? '', /text\/html/);
  const body = await res.text();
  assert.doesNotMatch(body, /at .*\.(js|ts):\d+/, 'no stack trace in the page');
  return body;
}

describe('bad input', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let confidential: { id: string; secret: string; basic: string };
  let publicClientId: string;
  const redirectUri = 'https://app.example/cb';

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    const c = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'Confidential',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'client_credentials'],
    });
    confidential = {
      id: c.body.client.client_id,
      secret: c.body.client_secret,
      basic: `Basic ${Buffer.from(`${c.body.client.client_id}:${c.body.client_secret}`).toString('base64')}`,
    };
    const p = await veil.admin<{ client: { client_id: string } }>('POST', '/admin/clients', {
      client_name: 'Public SPA',
      redirect_uris: [redirectUri],
      public: true,
    });
    publicClientId = p.body.client.client_id;
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  function authorizeUrl(params: Record<string, string>) {
    const url = new URL(`${veil.issuer}/auth`);
    url.search = new URLSearchParams({
      response_type: 'code',
      scope: 'openid',
      redirect_uri: redirectUri,
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
      ...params,
    }).toString();
    return url;
  }

  function token(body: string, headers: Record<string, string> = {}) {
    return fetch(`${veil.issuer}/token`, { method: 'POST', headers: { ...FORM, authorization: confidential.basic, ...headers }, body });
  }

  describe('authorization endpoint', () => {
    test('unknown client: error page, no redirect', async () => {
      const res = await fetch(authorizeUrl({ client_id: 'no-such-client' }), { headers: HTML, redirect: 'manual' });
      assert.equal(res.status, 400);
      const body = await html(res);
      assert.match(body, /invalid_client/);
    });

    test('unregistered redirect URI: error page, never redirected there', async () => {
      const res = await fetch(authorizeUrl({ client_id: confidential.id, redirect_uri: 'https://evil.example/cb' }), { headers: HTML, redirect: 'manual' });
      assert.equal(res.status, 400);
      assert.equal(res.headers.get('location'), null);
      assert.match(await html(res), /invalid_redirect_uri/);
    });

    test('missing PKCE: invalid_request sent back to the client', async () => {
      const url = authorizeUrl({ client_id: publicClientId, state: 's1' });
      url.searchParams.delete('code_challenge');
      url.searchParams.delete('code_challenge_method');
      const res = await fetch(url, { redirect: 'manual' });
      assert.equal(res.status, 303);
      const location = new URL(res.headers.get('location')!);
      assert.equal(location.origin + location.pathname, redirectUri);
      assert.equal(location.searchParams.get('error'), 'invalid_request');
      assert.match(location.searchParams.get('error_description')!, /PKCE/);
      assert.equal(location.searchParams.get('state'), 's1');
    });

    test('plain PKCE method is refused', async () => {
      const res = await fetch(authorizeUrl({ client_id: publicClientId, code_challenge_method: 'plain', state: 's2' }), { redirect: 'manual' });
      const location = new URL(res.headers.get('location')!);
      assert.equal(location.searchParams.get('error'), 'invalid_request');
    });

    test('implicit response type is not supported', async () => {
      const res = await fetch(authorizeUrl({ client_id: confidential.id, response_type: 'token', state: 's3' }), { redirect: 'manual' });
      assert.equal(res.status, 303);
      // Errors for implicit-style requests go back in the fragment.
      const fragment = new URLSearchParams(new URL(res.headers.get('location')!).hash.slice(1));
      assert.equal(fragment.get('error'), 'unsupported_response_type');
      assert.equal(fragment.get('state'), 's3');
    });
  });

  describe('token endpoint', () => {
    test('wrong client secret: 401 invalid_client', async () => {
      const res = await token('grant_type=client_credentials', {
        authorization: `Basic ${Buffer.from(`${confidential.id}:wrong-secret`).toString('base64')}`,
      });
      assert.equal(res.status, 401);
      assert.equal((await json(res)).error, 'invalid_client');
    });

    test('unknown client: 401 invalid_client', async () => {
      const res = await token('grant_type=client_credentials', { authorization: `Basic ${Buffer.from('ghost:secret').toString('base64')}` });
      assert.equal(res.status, 401);
      assert.equal((await json(res)).error, 'invalid_client');
    });

    test('a client id no database can hold (NUL): refused as /token refuses it, not a 500', async () => {
      const res = await token('grant_type=client_credentials', { authorization: `Basic ${Buffer.from('bad%00id:secret').toString('base64')}` });
      const body = await json(res);
      // oidc-provider refuses it before any look-up (400 invalid_request) or finds no client (401).
      assert.ok([400, 401].includes(res.status), `status ${res.status}`);
      assert.ok(['invalid_request', 'invalid_client'].includes(body.error), body.error);
      for (const id of ['rs_%00x', 'bad%00id']) {
        const introspection = await fetch(`${veil.issuer}/token/introspection`, {
          method: 'POST',
          headers: { authorization: `Basic ${Buffer.from(`${id}:anything`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
          body: 'token=x',
        });
        // Veil's endpoints read Basic by oidc-provider's rules: a NUL is not a VSCHAR.
        assert.equal(introspection.status, 400, id);
        assert.equal((await json(introspection)).error, 'invalid_request');
      }
    });

    test('password and implicit grants are off', async () => {
      const res = await token('grant_type=password&username=a&password=b');
      assert.equal(res.status, 400);
      assert.equal((await json(res)).error, 'unsupported_grant_type');
    });

    test('JSON instead of a form body: invalid_request', async () => {
      const res = await token('{"grant_type":"client_credentials"}', { 'content-type': 'application/json' });
      assert.equal(res.status, 400);
      assert.equal((await json(res)).error, 'invalid_request');
    });

    test('malformed form body: an OAuth error, not a 500', async () => {
      const res = await token('grant_type=%ZZ&&==&');
      assert.equal(res.status, 400);
      assert.equal((await json(res)).error, 'unsupported_grant_type');
    });

    test('oversized body: invalid_request', async () => {
      const res = await token(`grant_type=client_credentials&pad=${'a'.repeat(1_000_000)}`);
      assert.equal(res.status, 400);
      assert.equal((await json(res)).error, 'invalid_request');
    });

    test('unknown authorization code: invalid_grant', async () => {
      const res = await token(`grant_type=authorization_code&code=nope&redirect_uri=${encodeURIComponent(redirectUri)}&code_verifier=${'a'.repeat(43)}`);
      assert.equal(res.status, 400);
      assert.equal((await json(res)).error, 'invalid_grant');
    });

    test('unknown resource indicator: invalid_target', async () => {
      const res = await token('grant_type=client_credentials&resource=https%3A%2F%2Fnot-registered.example%2F');
      assert.equal(res.status, 400);
      assert.equal((await json(res)).error, 'invalid_target');
    });

    test('malformed resource indicator: invalid_target', async () => {
      const res = await token('grant_type=client_credentials&resource=not%20a%20uri');
      assert.equal(res.status, 400);
      assert.equal((await json(res)).error, 'invalid_target');
    });
  });

  describe('client credentials', () => {
    test('a confidential client gets an access token', async () => {
      const res = await token('grant_type=client_credentials');
      assert.equal(res.status, 200);
      const body = (await res.json()) as { access_token: string; token_type: string; refresh_token?: string };
      assert.equal(body.token_type, 'Bearer');
      assert.ok(body.access_token);
      assert.equal(body.refresh_token, undefined);
    });

    test('a public client cannot use it', async () => {
      const res = await fetch(`${veil.issuer}/token`, { method: 'POST', headers: FORM, body: `grant_type=client_credentials&client_id=${publicClientId}` });
      assert.equal(res.status, 400);
      const body = await json(res);
      assert.equal(body.error, 'invalid_request');
      assert.equal(body.error_description, 'requested grant type is not allowed for this client');
    });

    test('a public client cannot even be registered for it', async () => {
      const res = await veil.admin<{ error: string }>('POST', '/admin/clients', { client_name: 'x', public: true, grant_types: ['client_credentials'] });
      assert.equal(res.status, 400);
      assert.equal(res.body.error, 'invalid_request');
    });

    test('a public client stored with client_credentials anyway is still refused', async () => {
      await veil.database.prisma.client.create({
        data: {
          clientId: 'sneaky-public',
          metadata: { client_id: 'sneaky-public', grant_types: ['client_credentials'], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'none' },
        },
      });
      const res = await fetch(`${veil.issuer}/token`, { method: 'POST', headers: FORM, body: 'grant_type=client_credentials&client_id=sneaky-public' });
      assert.equal(res.status, 400);
      assert.equal((await json(res)).error_description, 'requested grant type is not allowed for this client');
    });
  });

  describe('other routes', () => {
    test('unknown route: JSON 404 for API callers', async () => {
      const res = await fetch(`${veil.issuer}/no/such/route`);
      assert.equal(res.status, 404);
      assert.equal((await json(res)).error, 'invalid_request');
    });

    test('unknown route: error page for browsers', async () => {
      const res = await fetch(`${veil.issuer}/no/such/route`, { headers: HTML });
      assert.equal(res.status, 404);
      assert.match(await html(res), /Page not found|not_found/);
    });

    test('interaction that does not exist: error page', async () => {
      const res = await fetch(`${veil.issuer}/interaction/does-not-exist`, { headers: HTML });
      assert.equal(res.status, 400);
      assert.match(await html(res), /expired/);
    });

    test('login post without an interaction: error page', async () => {
      const res = await fetch(`${veil.issuer}/interaction/does-not-exist/login`, { method: 'POST', headers: FORM, body: 'email=a%40b.c&password=x' });
      assert.equal(res.status, 400);
      await html(res);
    });

    test('oversized login form: 413 error page', async () => {
      const res = await fetch(`${veil.issuer}/interaction/x/login`, { method: 'POST', headers: FORM, body: `email=a&password=${'p'.repeat(100_000)}` });
      assert.equal(res.status, 413);
      await html(res);
    });

    test('userinfo without a token: 401 invalid_token', async () => {
      const res = await fetch(`${veil.issuer}/me`);
      assert.equal(res.status, 401);
      assert.match(res.headers.get('www-authenticate') ?? '', /Bearer/);
    });
  });

  describe('admin API', () => {
    async function post(path: string, body: string) {
      return fetch(`${veil.adminUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${veil.adminToken}` }, body });
    }

    test('malformed JSON: 400 invalid_request', async () => {
      const res = await post('/admin/users', '{"email":');
      assert.equal(res.status, 400);
      assert.equal((await json(res)).error, 'invalid_request');
    });

    test('oversized body: 413', async () => {
      const res = await post('/admin/users', JSON.stringify({ email: 'a'.repeat(100_000) }));
      assert.equal(res.status, 413);
      assert.equal((await json(res)).error, 'invalid_request');
    });

    test('invalid fields name the field', async () => {
      const res = await post('/admin/users', JSON.stringify({ email: 'not-an-email', password: 'long enough password' }));
      assert.equal(res.status, 400);
      assert.match((await json(res)).error_description!, /email/);
    });

    test('a short password is refused', async () => {
      const res = await post('/admin/users', JSON.stringify({ email: 'x@example.com', password: 'short' }));
      assert.equal(res.status, 400);
      assert.match((await json(res)).error_description!, /password/);
    });

    test('a duplicate user is a 409, and the first one is kept', async () => {
      assert.equal((await post('/admin/users', JSON.stringify({ email: 'dup@example.com', password: 'first password' }))).status, 201);
      const res = await post('/admin/users', JSON.stringify({ email: 'DUP@example.com', password: 'second password' }));
      assert.equal(res.status, 409);
      const users = await veil.admin<{ users: { email: string }[] }>('GET', '/admin/users');
      assert.equal(users.body.users.filter((u) => u.email === 'dup@example.com').length, 1);
    });

    test('invalid client metadata: 400 invalid_client_metadata', async () => {
      const res = await post('/admin/clients', JSON.stringify({ client_name: 'x', redirect_uris: ['not a url'] }));
      assert.equal(res.status, 400);
      assert.equal((await json(res)).error, 'invalid_client_metadata');
    });

    test('unknown admin route: 404 not_found', async () => {
      const res = await fetch(`${veil.adminUrl}/admin/nothing`, { headers: { authorization: `Bearer ${veil.adminToken}` } });
      assert.equal(res.status, 404);
      assert.equal((await json(res)).error, 'not_found');
    });
  });

  // PostgreSQL refuses U+0000 in text (SQLSTATE 22021): the caller's input, not a server failure.
  test('a NUL byte in input is a 400, at the login form and the admin API, and logs no error', async () => {
    const errorsBefore = veil.logs.filter((l) => /"level":(50|60)/.test(l)).length;
    const { path, cookie } = await startLoginInteraction(veil.issuer, confidential.id, redirectUri);
    const login = await fetch(`${veil.issuer}${path}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
      body: 'email=a%00%40b.co&password=whatever-long-password',
      redirect: 'manual',
    });
    assert.ok(login.status >= 400 && login.status < 500, `login form answered ${login.status}`);
    const admin = { authorization: `Bearer ${veil.adminToken}`, 'content-type': 'application/json' };
    const answers = [
      await fetch(`${veil.adminUrl}/admin/users?email=a%00`, { headers: admin }),
      await fetch(`${veil.adminUrl}/admin/users`, { method: 'POST', headers: admin, body: JSON.stringify({ email: 'a\u0000@b.co', password: 'a long enough password' }) }),
      await fetch(`${veil.adminUrl}/admin/clients/${confidential.id}`, { method: 'PATCH', headers: admin, body: JSON.stringify({ client_name: 'a\u0000' }) }),
    ];
    for (const res of answers) assert.equal(res.status, 400, `${res.url}: ${res.status} ${await res.text()}`);
    assert.equal(veil.logs.filter((l) => /"level":(50|60)/.test(l)).length, errorsBefore, 'a caller mistake was logged as an error');
    // Nothing stored was changed by the refused update.
    const clients = await veil.admin<{ clients: Array<{ client_id: string; client_name: string }> }>('GET', '/admin/clients');
    assert.equal(clients.body.clients.find((c) => c.client_id === confidential.id)?.client_name, 'Confidential');
  });
});

describe('admin token', () => {
  let veil: TestVeil;
  const token = 'a-long-admin-token-for-tests-0123456789';

  before(async () => {
    veil = await startTestVeil(undefined, { ADMIN_TOKEN: token, VEIL_SEED: 'off' });
  });
  after(async () => veil?.stop());

  test('requests without the token are refused with 401', async () => {
    const res = await fetch(`${veil.adminUrl}/admin/users`);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /Bearer/);
    assert.equal((await json(res)).error, 'unauthorized');
  });

  test('a wrong token is refused with 401', async () => {
    const res = await fetch(`${veil.adminUrl}/admin/users`, { headers: { authorization: 'Bearer wrong' } });
    assert.equal(res.status, 401);
  });

  test('the right token is accepted', async () => {
    const res = await fetch(`${veil.adminUrl}/admin/users`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
  });
});
