/**
 * TLS on the public listener (TLS_CERT / TLS_KEY, a self-signed certificate made with openssl at
 * test time) and TRUST_PROXY (X-Forwarded-Proto decides whether cookies are Secure).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../helpers/net.js';
import { basic } from '../helpers/slow-request.js';
import { selfSignedCertificate } from '../helpers/certificates.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

type Created = { client: { client_id: string }; client_secret?: string };

/** An https request trusting exactly `ca` (no process-wide NODE_TLS_REJECT_UNAUTHORIZED). */
function httpsRequest(url: string, ca: Buffer | undefined, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
    const req = https.request(url, { method: init.method ?? 'GET', headers: init.headers, ca, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

describe('TLS on the public listener', () => {
  let stores: TestStores;
  let dir: string;
  let cert: Buffer;
  let veil: TestVeil;

  before(async () => {
    stores = await createTestStores();
    ({ dir, cert } = await selfSignedCertificate('veil-tls-'));
    const port = await freePort();
    veil = await startTestVeil(stores, {
      PORT: String(port),
      ISSUER: `https://127.0.0.1:${port}`,
      TLS_CERT: path.join(dir, 'cert.pem'),
      TLS_KEY: path.join(dir, 'key.pem'),
    });
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('the listener is https: discovery works for a client trusting the certificate', async () => {
    assert.match(veil.publicUrl, /^https:\/\//);
    assert.ok(veil.logs.some((l) => l.includes('"Veil is ready"') && l.includes(`"public":"${veil.publicUrl}"`)));
    const res = await httpsRequest(`${veil.issuer}/.well-known/openid-configuration`, cert);
    assert.equal(res.status, 200);
    const discovery = JSON.parse(res.body) as { issuer: string; token_endpoint: string };
    assert.equal(discovery.issuer, veil.issuer);
    assert.equal(discovery.token_endpoint, `${veil.issuer}/token`);
    assert.match(String(res.headers['strict-transport-security']), /max-age=31536000/);
  });

  test('client credentials over TLS', async () => {
    const c = await veil.admin<Created>('POST', '/admin/clients', { client_name: 'tls', grant_types: ['client_credentials'] });
    const res = await httpsRequest(`${veil.issuer}/token`, cert, {
      method: 'POST',
      headers: { authorization: basic(c.body.client.client_id, c.body.client_secret!), 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    assert.equal(res.status, 200, res.body);
    assert.equal(typeof (JSON.parse(res.body) as { access_token?: unknown }).access_token, 'string');
  });

  test('cookies set over TLS are Secure', async () => {
    const c = await veil.admin<Created>('POST', '/admin/clients', { client_name: 'tls-web', redirect_uris: ['https://app.example/cb'], public: true });
    const query = new URLSearchParams({
      client_id: c.body.client.client_id,
      response_type: 'code',
      scope: 'openid',
      redirect_uri: 'https://app.example/cb',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    });
    const res = await httpsRequest(`${veil.issuer}/auth?${query.toString()}`, cert);
    assert.equal(res.status, 303);
    const cookies = res.headers['set-cookie'] as string[];
    assert.ok(cookies.length > 0);
    for (const cookie of cookies) assert.match(cookie, /;\s*secure/i, cookie);
  });

  test('a client that does not trust the certificate is refused, and plain http is not served', async () => {
    await assert.rejects(httpsRequest(`${veil.issuer}/.well-known/openid-configuration`, undefined), /self-signed|self signed/i);
    const plain = await fetch(veil.issuer.replace('https:', 'http:') + '/.well-known/openid-configuration').then(
      (r) => r.status,
      () => 'failed',
    );
    assert.notEqual(plain, 200);
  });
});

describe('TRUST_PROXY', () => {
  let stores: TestStores;
  let behindProxy: TestVeil;
  let direct: TestVeil;
  let clientId: string;

  before(async () => {
    stores = await createTestStores();
    // As deployed behind a TLS-terminating proxy: an https issuer, plain http on the listener.
    behindProxy = await startTestVeil(stores, { ISSUER: 'https://veil.example', TRUST_PROXY: 'true' });
    direct = await startTestVeil(stores, { ISSUER: 'https://veil.example' });
    const c = await behindProxy.admin<Created>('POST', '/admin/clients', {
      client_name: 'proxied',
      redirect_uris: ['https://app.example/cb'],
      public: true,
    });
    clientId = c.body.client.client_id;
  });

  after(async () => {
    await behindProxy?.stop();
    await direct?.stop();
    await stores?.cleanup();
  });

  async function authorizationCookies(veil: TestVeil, headers: Record<string, string>) {
    const url = new URL('/auth', veil.publicUrl);
    url.search = new URLSearchParams({
      client_id: clientId,
      response_type: 'code',
      scope: 'openid',
      redirect_uri: 'https://app.example/cb',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    }).toString();
    const res = await fetch(url, { redirect: 'manual', headers });
    assert.equal(res.status, 303);
    const cookies = res.headers.getSetCookie();
    assert.ok(cookies.length > 0);
    return cookies;
  }

  test('on: X-Forwarded-Proto https makes the cookies Secure', async () => {
    for (const cookie of await authorizationCookies(behindProxy, { 'x-forwarded-proto': 'https' })) assert.match(cookie, /;\s*secure/i, cookie);
    // Without the header the request counts as plain http.
    for (const cookie of await authorizationCookies(behindProxy, {})) assert.doesNotMatch(cookie, /;\s*secure/i, cookie);
  });

  test('off: the header is ignored, so nobody can fake the scheme', async () => {
    for (const cookie of await authorizationCookies(direct, { 'x-forwarded-proto': 'https' })) assert.doesNotMatch(cookie, /;\s*secure/i, cookie);
  });
});
