/**
 * Issue 7, finding 2: the admin API is a trust boundary of its own. It always wants a bearer
 * token (generated into KEYS_DIR when ADMIN_TOKEN is unset), serves only its own Host names,
 * refuses anything a browser sends on behalf of a web page (Origin, Sec-Fetch-Site) and any body
 * that is not JSON. Every refusal changes nothing: no user created, no key rotated.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { selfSignedCertificate } from '../helpers/certificates.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: { error?: string; error_description?: string; [k: string]: unknown };
}

/** One request with full control over the headers (fetch would not let us set Host). */
function raw(url: string, method: string, p: string, headers: Record<string, string>, body?: string, ca?: Buffer): Promise<Answer> {
  const target = new URL(p, url);
  const send = target.protocol === 'https:' ? https.request : http.request;
  return new Promise((resolve, reject) => {
    // The certificate is checked against the URL's host, whatever Host header the test sends.
    const tlsOptions = ca ? { ca, servername: '', checkServerIdentity: (_: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(target.hostname, cert) } : {};
    const req = send(target, { method, headers, agent: false, ...tlsOptions }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let parsed: Answer['body'] = {};
        try {
          parsed = text ? (JSON.parse(text) as Answer['body']) : {};
        } catch {
          parsed = { raw: text };
        }
        resolve({ status: res.statusCode!, headers: res.headers, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

function assertAdminError(res: Answer, status: number) {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.equal(typeof res.body.error, 'string');
  assert.equal(typeof res.body.error_description, 'string');
  assert.doesNotMatch(JSON.stringify(res.body), /at \w+ \(|node_modules/);
}

describe('admin API: always authenticated, only its own Host, no browser requests, JSON only', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let keysBefore: string;
  const auth = () => ({ authorization: `Bearer ${veil.adminToken}` });
  const accounts = () => veil.database.prisma.account.count();
  const keys = async () => JSON.stringify((await veil.admin('GET', '/admin/keys')).body);

  before(async () => {
    stores = await createTestStores();
    // No ADMIN_TOKEN: the default, also in production.
    veil = await startTestVeil(stores);
    keysBefore = await keys();
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  test('without ADMIN_TOKEN a token is generated into KEYS_DIR (0600), and requests without it are refused', async () => {
    const file = path.join(veil.config.keysDir, 'admin-token');
    const stat = await fs.stat(file);
    assert.equal(stat.mode & 0o777, 0o600);
    assert.equal((await fs.readFile(file, 'utf8')).trim(), veil.adminToken);
    assert.ok(veil.adminToken.length >= 32);

    const list = await raw(veil.adminUrl, 'GET', '/admin/users', {});
    assertAdminError(list, 401);
    assert.match(String(list.headers['www-authenticate']), /^Bearer/);
    const wrong = await raw(veil.adminUrl, 'GET', '/admin/users', { authorization: 'Bearer not-the-admin-token-at-all' });
    assertAdminError(wrong, 401);

    const before = await accounts();
    const create = await raw(
      veil.adminUrl,
      'POST',
      '/admin/users',
      { 'content-type': 'application/json' },
      JSON.stringify({ email: 'mallory@example.com', password: 'a long enough password' }),
    );
    assertAdminError(create, 401);
    assert.equal(await accounts(), before);

    const rotate = await raw(veil.adminUrl, 'POST', '/admin/keys/rotate', { 'content-type': 'application/json' }, '{}');
    assertAdminError(rotate, 401);
    assert.equal(await keys(), keysBefore);

    // The generated token works.
    const ok = await raw(veil.adminUrl, 'GET', '/admin/users', auth());
    assert.equal(ok.status, 200);
  });

  test('a foreign Host is refused (421) before anything else, probes included; own names are served', async () => {
    const port = new URL(veil.adminUrl).port;
    for (const p of ['/admin/users', '/healthz', '/readyz', '/metrics']) {
      assertAdminError(await raw(veil.adminUrl, 'GET', p, { ...auth(), host: 'evil.example' }), 421);
      assertAdminError(await raw(veil.adminUrl, 'GET', p, { ...auth(), host: `evil.example:${port}` }), 421);
    }
    const rotate = await raw(veil.adminUrl, 'POST', '/admin/keys/rotate', { ...auth(), host: 'evil.example', 'content-type': 'application/json' }, '{}');
    assertAdminError(rotate, 421);
    assert.equal(await keys(), keysBefore);
    // DNS rebinding looks like this: the attacker's name, the admin port.
    assertAdminError(await raw(veil.adminUrl, 'GET', '/admin/users', { ...auth(), host: `localhost.evil.example:${port}` }), 421);

    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`]) {
      const res = await raw(veil.adminUrl, 'GET', '/admin/users', { ...auth(), host });
      assert.equal(res.status, 200, host);
    }
  });

  test('a request carrying Origin or a browser Sec-Fetch-Site is refused (403), even with the token', async () => {
    const before = await accounts();
    const body = JSON.stringify({ email: 'cross@example.com', password: 'a long enough password' });
    const cases: Record<string, string>[] = [
      { origin: 'http://evil.example' },
      { origin: veil.adminUrl },
      { origin: 'null' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
    ];
    for (const headers of cases) {
      assertAdminError(await raw(veil.adminUrl, 'POST', '/admin/keys/rotate', { ...auth(), ...headers, 'content-type': 'application/json' }, '{}'), 403);
      assertAdminError(await raw(veil.adminUrl, 'POST', '/admin/users', { ...auth(), ...headers, 'content-type': 'application/json' }, body), 403);
      assertAdminError(await raw(veil.adminUrl, 'GET', '/admin/users', { ...auth(), ...headers }), 403);
    }
    // The cross-site form POST of the issue, without a token: refused as well.
    const form = await raw(
      veil.adminUrl,
      'POST',
      '/admin/keys/rotate',
      { origin: 'http://evil.example', 'sec-fetch-site': 'cross-site', 'content-type': 'application/x-www-form-urlencoded' },
      '',
    );
    assert.ok(form.status === 403 || form.status === 415 || form.status === 401, String(form.status));
    assert.equal(await keys(), keysBefore);
    assert.equal(await accounts(), before);
    // A typed-in URL (Sec-Fetch-Site: none) is not a web page's request.
    assert.equal((await raw(veil.adminUrl, 'GET', '/admin/users', { ...auth(), 'sec-fetch-site': 'none' })).status, 200);
  });

  test('a body that is not application/json is refused (415), even with the token', async () => {
    const before = await accounts();
    const form = 'email=form%40example.com&password=a+long+enough+password';
    for (const type of ['application/x-www-form-urlencoded', 'text/plain', 'multipart/form-data; boundary=x']) {
      assertAdminError(await raw(veil.adminUrl, 'POST', '/admin/users', { ...auth(), 'content-type': type }, form), 415);
      assertAdminError(await raw(veil.adminUrl, 'POST', '/admin/keys/rotate', { ...auth(), 'content-type': type }, ''), 415);
    }
    // No Content-Type at all on a POST is not JSON either.
    assertAdminError(await raw(veil.adminUrl, 'POST', '/admin/keys/rotate', auth(), ''), 415);
    assertAdminError(await raw(veil.adminUrl, 'POST', '/admin/users', auth(), '{"email":"x@example.com","password":"a long enough password"}'), 415);
    assert.equal(await keys(), keysBefore);
    assert.equal(await accounts(), before);
    // JSON with a charset is JSON.
    const ok = await raw(
      veil.adminUrl,
      'POST',
      '/admin/users',
      { ...auth(), 'content-type': 'application/json; charset=utf-8' },
      JSON.stringify({ email: 'json@example.com', password: 'a long enough password' }),
    );
    assert.equal(ok.status, 201);
    assert.equal(await accounts(), before + 1);
  });

  test('media types and the auth scheme are case-insensitive, as HTTP says', async () => {
    const before = await accounts();
    const res = await raw(
      veil.adminUrl,
      'POST',
      '/admin/users',
      { authorization: `bearer ${veil.adminToken}`, 'content-type': 'APPLICATION/JSON' },
      JSON.stringify({ email: 'upper@example.com', password: 'a long enough password' }),
    );
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(await accounts(), before + 1);
  });

  test('on a loopback bind the probes answer without a token', async () => {
    assert.equal((await raw(veil.adminUrl, 'GET', '/healthz', {})).status, 200);
    assert.equal((await raw(veil.adminUrl, 'GET', '/readyz', {})).status, 200);
    assert.equal((await raw(veil.adminUrl, 'GET', '/metrics', {})).status, 200);
  });

  test('ADMIN_ALLOWED_HOSTS adds names; the same token is kept across restarts', async () => {
    const other = await startTestVeil(stores, { KEYS_DIR: veil.config.keysDir, ADMIN_ALLOWED_HOSTS: 'admin.internal, veil.example:8443' });
    try {
      assert.equal(other.adminToken, veil.adminToken);
      const port = new URL(other.adminUrl).port;
      const headers = { authorization: `Bearer ${other.adminToken}` };
      assert.equal((await raw(other.adminUrl, 'GET', '/admin/users', { ...headers, host: 'admin.internal' })).status, 200);
      assert.equal((await raw(other.adminUrl, 'GET', '/admin/users', { ...headers, host: `admin.internal:${port}` })).status, 200);
      assert.equal((await raw(other.adminUrl, 'GET', '/admin/users', { ...headers, host: 'veil.example:8443' })).status, 200);
      assertAdminError(await raw(other.adminUrl, 'GET', '/admin/users', { ...headers, host: 'veil.example:9999' }), 421);
      assertAdminError(await raw(other.adminUrl, 'GET', '/admin/users', { ...headers, host: 'evil.example' }), 421);
    } finally {
      await other.stop();
    }
  });
});

describe('generated admin token', () => {
  test('processes racing at first start end with one token, in a 0600 file', async () => {
    // Imported here so the HTTP tests above run (and fail) on code without the module.
    const { ADMIN_TOKEN_FILE, loadOrCreateAdminToken } = await import('../../src/admin/admin-token.js');
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-admin-token-'));
    try {
      const results = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateAdminToken(path.join(dir, 'keys'))));
      const tokens = new Set(results.map((r) => r.token));
      assert.equal(tokens.size, 1);
      assert.equal(results.filter((r) => r.created).length, 1);
      const file = path.join(dir, 'keys', ADMIN_TOKEN_FILE);
      assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
      assert.deepEqual(await fs.readdir(path.join(dir, 'keys')), [ADMIN_TOKEN_FILE]);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('admin listener off loopback: TLS and the token, probes included', () => {
  let stores: TestStores;
  let dir: string;
  let cert: Buffer;
  let veil: TestVeil;
  const TOKEN = 'off-loopback-admin-token-0123456789abcdef';

  before(async () => {
    stores = await createTestStores();
    ({ dir, cert } = await selfSignedCertificate('veil-admin-tls-'));
    veil = await startTestVeil(stores, {
      ADMIN_HOST: '0.0.0.0',
      ADMIN_TOKEN: TOKEN,
      ADMIN_TLS_CERT: path.join(dir, 'cert.pem'),
      ADMIN_TLS_KEY: path.join(dir, 'key.pem'),
    });
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('serves https only; probes need the token', async () => {
    const port = new URL(veil.adminUrl).port;
    const url = `https://127.0.0.1:${port}`;
    assert.match(veil.adminUrl, /^https:/);
    for (const p of ['/healthz', '/readyz', '/metrics', '/admin/users']) {
      assertAdminError(await raw(url, 'GET', p, {}, undefined, cert), 401);
      assert.equal((await raw(url, 'GET', p, { authorization: `Bearer ${TOKEN}` }, undefined, cert)).status, 200, p);
    }
    assertAdminError(await raw(url, 'GET', '/admin/users', { authorization: `Bearer ${TOKEN}`, host: 'evil.example' }, undefined, cert), 421);
    // Plain http to the TLS port gets no admin answer.
    const plain = await raw(`http://127.0.0.1:${port}`, 'GET', '/healthz', {}).catch(() => undefined);
    assert.ok(!plain || plain.status !== 200);
  });
});
