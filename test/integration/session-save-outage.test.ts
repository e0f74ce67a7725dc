/**
 * Redis cut at the moment oidc-provider saves the browser session: the browser gets the HTML
 * error page (503), never Koa's plain-text answer.
 *
 * oidc-provider wraps each route in `ensureSessionSave`, outside the route's own error handler:
 * when the session save at the end of a route fails, the route's handler answers (the error
 * redirect or page), then `ensureSessionSave` tries the save once more, fails again, and that
 * error used to escape to Koa's default handler (503 text/plain): the fault suite's "malformed
 * 503" on a login page. Veil's error boundary (src/http/error-boundary.ts) now answers it.
 * Real Redis and PostgreSQL; a TCP proxy cuts Redis exactly when the session's SET goes out.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { CookieJar, exchange, httpAuthorizeIn } from '../helpers/http-flow.js';
import { startTcpProxy } from '../helpers/net.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

type Proxy = Awaited<ReturnType<typeof startTcpProxy>>;

const REDIRECT_URI = 'https://app.example/cb';

/** A RESP `SET` of a browser session's record or uid index (`<prefix>Session:{…}`, `<prefix>Session:uid:…`), as the proxy sees the bytes. */
const sessionSet = (chunk: Buffer) => /\$3\r\nset\r\n\$\d+\r\n[^\r]*Session:(\{|uid:)/i.test(chunk.toString('latin1'));

/** `promise`, or a failure naming `what` after `ms`. */
const within = <T>(promise: Promise<T>, ms: number, what: string) =>
  Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms).unref())]);

describe('a store failure while the browser session is saved', () => {
  let stores: TestStores;
  let proxy: Proxy;
  let veil: TestVeil;
  let client: { issuer: string; clientId: string; clientSecret: string; redirectUri: string };
  const user = { email: 'session-save@example.com', password: 'a password long enough' };

  before(async () => {
    stores = await createTestStores();
    proxy = await startTcpProxy('127.0.0.1', Number(new URL(stores.redisUrl).port || 6379));
    veil = await startTestVeil(stores, { REDIS_URL: `redis://127.0.0.1:${proxy.port}` });
    await veil.admin('POST', '/admin/users', user);
    const c = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'Session save',
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      scope: 'openid offline_access',
    });
    client = { issuer: veil.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret, redirectUri: REDIRECT_URI };
  });

  after(async () => {
    await veil?.stop();
    await proxy?.close();
    await stores?.cleanup();
  });

  function authorizeUrl(): string {
    const url = new URL(`${veil.issuer}/auth`);
    url.search = new URLSearchParams({
      client_id: client.clientId,
      response_type: 'code',
      scope: 'openid offline_access',
      prompt: 'consent',
      redirect_uri: REDIRECT_URI,
      code_challenge: createHash('sha256').update(randomBytes(32)).digest('base64url'),
      code_challenge_method: 'S256',
    }).toString();
    return url.toString();
  }

  test('the authorization endpoint answers the HTML error page (503), then works again once Redis is back', async () => {
    // A signed-in browser: its session exists, so the authorization endpoint saves it again.
    const jar = new CookieJar();
    await httpAuthorizeIn(jar, client, user);

    const cut = proxy.cutWhen(sessionSet);
    const res = await fetch(authorizeUrl(), { headers: { cookie: jar.header() }, redirect: 'manual' });
    const body = await res.text();
    await within(cut, 1000, "the cut at the session's save"); // not before the request was even read
    proxy.restore();

    assert.equal(res.status, 503, `status ${res.status}: ${body.slice(0, 200)}`);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(body, /Temporarily unavailable/);
    assert.equal(res.headers.get('location'), null, 'no redirect goes out with the error page');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', 'the page keeps the security headers');
    assert.doesNotMatch(body, /\n\s+at /, 'no stack trace');

    // Redis back: the same browser signs in and its code is redeemed.
    let tokens: Awaited<ReturnType<typeof exchange>> | undefined;
    for (let i = 0; i < 40 && !tokens; i++) {
      try {
        const { code, verifier } = await httpAuthorizeIn(jar, client, user);
        tokens = await exchange(client, code, verifier);
      } catch {
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    assert.ok(tokens?.refresh_token, 'the flow works again once Redis is back');
  });
});
