/**
 * Self-service "connected apps" (GET /account, POST /account/apps/:clientId/withdraw): a
 * signed-in user sees the apps they granted access to and withdraws a grant, which makes its
 * refresh token fail at once. The form is protected by a per-session anti-CSRF token and an
 * Origin check. Driven over real HTTP with the browser session's cookies, against real
 * PostgreSQL and Redis.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { CookieJar, exchange, httpAuthorizeIn, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const user = { email: 'self.service@example.com', password: 'manage my apps 123' };
const SCOPE = 'openid email offline_access';

interface CreatedClient {
  client: { client_id: string };
  client_secret: string;
}

describe('self-service connected apps', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let notes: HttpFlowClient;
  let other: HttpFlowClient;

  async function createClient(name: string): Promise<HttpFlowClient> {
    const redirectUri = `https://${name.toLowerCase().replace(/\W/g, '')}.example/cb`;
    const c = await veil.admin<CreatedClient>('POST', '/admin/clients', {
      client_name: name,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      scope: SCOPE,
    });
    assert.equal(c.status, 201);
    return { issuer: veil.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret, redirectUri };
  }

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    assert.equal((await veil.admin('POST', '/admin/users', user)).status, 201);
    notes = await createClient('Notes App');
    other = await createClient('Other App');
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  /** Signs in (once per jar) and consents to `client`; returns its tokens. */
  async function consent(jar: CookieJar, client: HttpFlowClient) {
    const { code, verifier } = await httpAuthorizeIn(jar, client, user, SCOPE);
    return exchange(client, code, verifier);
  }

  async function accountPage(jar?: CookieJar, query = '') {
    const res = await fetch(`${veil.issuer}/account${query}`, { headers: jar ? { cookie: jar.header(), accept: 'text/html' } : { accept: 'text/html' } });
    return { status: res.status, headers: res.headers, html: await res.text() };
  }

  function csrfOf(html: string): string {
    const token = /name="csrf" value="([^"]+)"/.exec(html)?.[1];
    assert.ok(token, 'the page has no anti-CSRF token');
    return token;
  }

  function withdraw(jar: CookieJar | undefined, clientId: string, fields: Record<string, string>, origin?: string) {
    return fetch(`${veil.issuer}/account/apps/${encodeURIComponent(clientId)}/withdraw`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        ...(jar ? { cookie: jar.header() } : {}),
        ...(origin ? { origin } : {}),
      },
      body: new URLSearchParams(fields).toString(),
      redirect: 'manual',
    });
  }

  const refresh = (client: HttpFlowClient, refreshToken: string) => tokenRequest(client, { grant_type: 'refresh_token', refresh_token: refreshToken });

  /** One authorization request without `prompt`: does this session go straight back to the app? */
  async function authorizeAgain(jar: CookieJar, client: HttpFlowClient): Promise<'callback' | 'consent'> {
    const url = new URL(`${veil.issuer}/auth`);
    url.search = new URLSearchParams({
      client_id: client.clientId,
      response_type: 'code',
      scope: 'openid email',
      redirect_uri: client.redirectUri,
      code_challenge: createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url'),
      code_challenge_method: 'S256',
    }).toString();
    let next = url.toString();
    for (let hop = 0; hop < 10; hop++) {
      if (next.startsWith(client.redirectUri)) return 'callback';
      const res = await fetch(next, { headers: { cookie: jar.header() }, redirect: 'manual' });
      jar.store(res);
      if (res.status === 302 || res.status === 303) {
        next = new URL(res.headers.get('location')!, veil.issuer).toString();
        continue;
      }
      const page = await res.text();
      assert.match(page, /action="[^"]+\/confirm"/, `unexpected page (${res.status})`);
      return 'consent';
    }
    throw new Error('too many redirects');
  }

  test('without a session: 401 page that says so, and no data', async () => {
    for (const jar of [undefined, new CookieJar()]) {
      const page = await accountPage(jar);
      assert.equal(page.status, 401);
      assert.match(page.html, /You are not signed in/);
      assert.doesNotMatch(page.html, /Remove access|name="csrf"|@example\.com|Notes App/);
      assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    }
    // A forged session cookie is no session either.
    const forged = await fetch(`${veil.issuer}/account`, { headers: { cookie: '_session=forged; _session.sig=forged' } });
    assert.equal(forged.status, 401);
    // Nor can a POST without a session withdraw anything.
    assert.equal((await withdraw(undefined, notes.clientId, { csrf: 'x' })).status, 401);
  });

  test('lists the apps; "Remove access" ends the grant: refresh fails, the app is gone, consent is asked again', async () => {
    const jar = new CookieJar();
    const tokens = await consent(jar, notes);
    const otherTokens = await consent(jar, other);
    assert.ok(tokens.refresh_token && otherTokens.refresh_token);
    // Consent is remembered: a new request from this session goes straight back to the app.
    assert.equal(await authorizeAgain(jar, notes), 'callback');

    const page = await accountPage(jar);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.equal(page.headers.get('cache-control'), 'no-store');
    // Not `no-referrer`: browsers would send `Origin: null` with the form, which is refused.
    assert.equal(page.headers.get('referrer-policy'), 'same-origin');
    assert.match(page.html, /<meta name="referrer" content="same-origin">/);
    assert.match(page.html, /Connected apps/);
    assert.match(page.html, /self\.service@example\.com/);
    assert.match(page.html, /Notes App/);
    assert.match(page.html, /Other App/);
    assert.match(page.html, /See your email address/);
    assert.match(page.html, /Stay connected when you are not using it/);
    assert.ok(page.html.includes(`action="/account/apps/${notes.clientId}/withdraw"`));
    assert.doesNotMatch(page.html, /<script/i);

    const res = await withdraw(jar, notes.clientId, { csrf: csrfOf(page.html) }, new URL(veil.issuer).origin);
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), `/account?removed=${encodeURIComponent(notes.clientId)}`);

    // At once: the refresh token and the access token of the withdrawn grant stop working.
    const refreshed = await refresh(notes, tokens.refresh_token);
    assert.equal(refreshed.status, 400);
    assert.equal(refreshed.body.error, 'invalid_grant');
    const userinfo = await fetch(`${veil.issuer}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    assert.equal(userinfo.status, 401);
    assert.equal(await veil.database.prisma.grant.count({ where: { clientId: notes.clientId } }), 0);
    // Audited as the user's own act; nothing else about the user goes into the row.
    const events = await veil.database.prisma.auditEvent.findMany({ where: { type: 'consent.withdrawn', clientId: notes.clientId } });
    assert.deepEqual(
      events.map((e) => ({ actor: e.actor, accountId: e.accountId, details: e.details })),
      [{ actor: 'user', accountId: (await veil.database.prisma.account.findUnique({ where: { email: user.email } }))!.id, details: {} }],
    );
    // The other app keeps its access.
    assert.equal((await refresh(other, otherTokens.refresh_token)).status, 200);

    const after = await accountPage(jar, res.headers.get('location')!.slice('/account'.length));
    assert.equal(after.status, 200);
    assert.match(after.html, /role="status"[^>]*><strong>Notes App<\/strong> no longer has access/);
    assert.ok(!after.html.includes(`/account/apps/${notes.clientId}/withdraw`));
    assert.ok(after.html.includes(`/account/apps/${other.clientId}/withdraw`));
    // The confirmation is shown only when true: Other App still has access.
    const lie = await accountPage(jar, `?removed=${encodeURIComponent(other.clientId)}`);
    assert.doesNotMatch(lie.html, /role="status"/);
    // Nor for a made-up name: the query string is anyone's to write.
    const forged = await accountPage(jar, `?removed=${encodeURIComponent('Your bank')}`);
    assert.doesNotMatch(forged.html, /role="status"/);
    assert.doesNotMatch(forged.html, /Your bank/);

    // The session still names the deleted grant; oidc-provider finds no grant and asks again.
    assert.equal(await authorizeAgain(jar, notes), 'consent');
  });

  test('a missing, wrong or foreign anti-CSRF token, or a foreign Origin: 403 and nothing revoked', async () => {
    const jar = new CookieJar();
    let { refresh_token: refreshToken } = await consent(jar, notes);
    const token = csrfOf((await accountPage(jar)).html);
    const stranger = new CookieJar();
    await consent(stranger, other);
    const strangersToken = csrfOf((await accountPage(stranger)).html);
    assert.notEqual(token, strangersToken);

    const attempts: Array<[string, Record<string, string>, string | undefined]> = [
      ['no token', {}, undefined],
      ['empty token', { csrf: '' }, undefined],
      ['wrong token', { csrf: `${token.slice(0, -2)}AA` }, undefined],
      ["another session's token", { csrf: strangersToken }, undefined],
      ['foreign Origin', { csrf: token }, 'https://evil.example'],
      ['opaque Origin', { csrf: token }, 'null'],
    ];
    const withdrawnBefore = await veil.database.prisma.auditEvent.count({ where: { type: 'consent.withdrawn' } });
    for (const [what, fields, origin] of attempts) {
      const res = await withdraw(jar, notes.clientId, fields, origin);
      assert.equal(res.status, 403, what);
      const html = await res.text();
      assert.match(html, /access_denied/, what);
      assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'/, what);
    }
    assert.equal(await veil.database.prisma.grant.count({ where: { clientId: notes.clientId } }), 1);
    assert.equal(await veil.database.prisma.auditEvent.count({ where: { type: 'consent.withdrawn' } }), withdrawnBefore);
    const still = await refresh(notes, refreshToken);
    assert.equal(still.status, 200, 'the grant survived the refused requests');
    refreshToken = still.body.refresh_token!;
    assert.match((await accountPage(jar)).html, /Notes App/);

    // The same token, from the page's own origin (or with no Origin at all), works.
    assert.equal((await withdraw(jar, notes.clientId, { csrf: token })).status, 303);
    assert.equal((await refresh(notes, refreshToken)).body.error, 'invalid_grant');
  });

  test('only GET and POST, and the empty list', async () => {
    const jar = new CookieJar();
    await consent(jar, other);
    const token = csrfOf((await accountPage(jar)).html);
    const put = await fetch(`${veil.issuer}/account`, { method: 'PUT', headers: { cookie: jar.header() } });
    assert.equal(put.status, 405);
    assert.equal((await withdraw(jar, other.clientId, { csrf: token })).status, 303);
    const empty = await accountPage(jar);
    assert.equal(empty.status, 200);
    assert.match(empty.html, /No apps have access to your account/);
    // Withdrawing what is already gone changes nothing and says nothing.
    const again = await withdraw(jar, other.clientId, { csrf: token });
    assert.equal(again.status, 303);
    assert.equal(again.headers.get('location'), '/account');
  });
});
