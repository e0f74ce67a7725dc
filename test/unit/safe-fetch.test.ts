/**
 * The outbound fetcher behind every jwks_uri (src/http/safe-fetch.ts, src/http/remote-jwks.ts):
 * address rules checked before any socket is opened, one DNS resolution that is also the one
 * connected to, no redirects, 64 KiB, a few seconds. Only loopback servers are ever contacted.
 */
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { assertSafeUrl, checkUrlPolicy, classifyAddress, OutboundRefused, safeFetch, type OutboundPolicy } from '../../src/http/safe-fetch.js';
import { fetchJwkSet, JWKS_URI_ERROR, JwksUriError, safeRemoteJWKSet } from '../../src/http/remote-jwks.js';

const strict: OutboundPolicy = { allowPrivate: false, requireHttps: false };
const lenient: OutboundPolicy = { allowPrivate: true, requireHttps: false };

/** Counts every TCP client socket this process opens while `fn` runs. */
async function socketsOpenedDuring(fn: () => Promise<unknown>): Promise<number> {
  let opened = 0;
  const onSocket = (_message: unknown) => {
    opened += 1;
  };
  diagnostics.subscribe('net.client.socket', onSocket);
  try {
    await fn();
  } finally {
    diagnostics.unsubscribe('net.client.socket', onSocket);
  }
  return opened;
}

let server: http.Server;
let base = '';
let hits: string[] = [];
let jwk: JWK;

before(async () => {
  const { publicKey } = await generateKeyPair('ES256', { extractable: true });
  jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  server = http.createServer((req, res) => {
    hits.push(req.url ?? '');
    const send = (status: number, body: string, headers: Record<string, string> = {}) => res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(body);
    switch (req.url) {
      case '/jwks':
        return send(200, JSON.stringify({ keys: [jwk] }));
      case '/redirect':
        return send(302, '', { location: '/jwks' });
      case '/big':
        return send(200, JSON.stringify({ keys: [jwk], pad: 'x'.repeat(65 * 1024) }));
      case '/big-chunked':
        res.writeHead(200, { 'content-type': 'application/json' });
        for (let i = 0; i < 70; i += 1) res.write('x'.repeat(1024));
        return res.end();
      case '/slow':
        return; // never answers
      case '/metrics':
        return send(200, '# HELP secret_marker internal\nsecret_marker 1\n', { 'content-type': 'text/plain' });
      default:
        return send(404, '{}');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

describe('address rules', () => {
  const alwaysRefused = [
    'http://169.254.169.254/latest/meta-data/',
    'http://[fe80::1]/',
    'http://0.0.0.0/',
    'http://[::]/',
    'http://224.0.0.1/',
    'http://255.255.255.255/',
    'http://[ff02::1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[::ffff:10.0.0.1]/',
    'http://[::ffff:a00:1]/',
    'http://[64:ff9b::a00:1]/',
  ];
  const privateOnes = [
    'http://10.0.0.1/',
    'http://172.16.5.4/',
    'http://192.168.1.1/',
    'http://100.64.0.1/',
    'http://127.0.0.1/',
    'http://[::1]/',
    'http://[fd00::1]/',
    'http://[fc00::1]/',
  ];

  test('private, loopback, link-local, ULA, unspecified, multicast and IPv4-mapped literals are refused without opening a socket', async () => {
    for (const uri of [...alwaysRefused, ...privateOnes]) {
      const started = performance.now();
      const sockets = await socketsOpenedDuring(() => assert.rejects(safeFetch(uri, strict), OutboundRefused, uri));
      assert.equal(sockets, 0, `${uri}: no socket`);
      assert.ok(performance.now() - started < 200, `${uri}: refused at once`);
    }
  });

  test('RESOURCE_JWKS_ALLOW_PRIVATE relaxes loopback, private and ULA only', async () => {
    for (const uri of alwaysRefused) {
      const sockets = await socketsOpenedDuring(() => assert.rejects(assertSafeUrl(uri, lenient), OutboundRefused, uri));
      assert.equal(sockets, 0, uri);
    }
    for (const uri of privateOnes) await assertSafeUrl(uri, lenient);
  });

  test('public addresses pass', () => {
    for (const address of ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c', '1.1.1.1']) assert.equal(classifyAddress(address), 'public', address);
  });

  test('a hostname is refused when any address it resolves to is refused (localhost)', async () => {
    hits = [];
    await assert.rejects(safeFetch(`http://localhost:${new URL(base).port}/jwks`, strict), OutboundRefused);
    const mixed: OutboundPolicy = {
      ...strict,
      resolve: async () => [
        { address: '93.184.215.14', family: 4 },
        { address: '10.1.2.3', family: 4 },
      ],
    };
    await assert.rejects(assertSafeUrl('http://api.example.com/', mixed), OutboundRefused);
    assert.deepEqual(hits, []);
  });

  test('the address checked is the address connected to (no second DNS look-up)', async () => {
    let lookups = 0;
    // rebind.test resolves nowhere but through this resolver: reaching the server proves the
    // connection used the vetted answer, and one look-up proves nothing resolved it again.
    const resolving: OutboundPolicy = { ...lenient, resolve: async () => (lookups++, [{ address: '127.0.0.1', family: 4 }]) };
    hits = [];
    const res = await safeFetch(`http://rebind.test:${new URL(base).port}/jwks`, resolving);
    assert.equal(res.status, 200);
    assert.equal(lookups, 1);
    assert.deepEqual(hits, ['/jwks']);
  });

  test('plain http is refused when https is required, and so are credentials in the URL', () => {
    assert.throws(() => checkUrlPolicy('http://api.example.com/jwks', { allowPrivate: false, requireHttps: true }), /https/);
    assert.throws(() => checkUrlPolicy('https://user:pw@api.example.com/jwks', strict), OutboundRefused);
    assert.throws(() => checkUrlPolicy('file:///etc/passwd', strict), OutboundRefused);
    assert.equal(checkUrlPolicy('https://api.example.com/jwks', { allowPrivate: false, requireHttps: true }).hostname, 'api.example.com');
  });
});

describe('fetching', () => {
  test('a JWK Set from an allowed address', async () => {
    const set = await fetchJwkSet(`${base}/jwks`, lenient);
    assert.equal(set.keys[0]!.kid, 'k1');
  });

  test('redirects are not followed', async () => {
    hits = [];
    await assert.rejects(fetchJwkSet(`${base}/redirect`, lenient), (err: Error) => err instanceof JwksUriError && err.message === JWKS_URI_ERROR);
    assert.deepEqual(hits, ['/redirect']);
  });

  test('bodies over 64 KiB are refused, counted while streaming', async () => {
    for (const path of ['/big', '/big-chunked']) {
      await assert.rejects(fetchJwkSet(`${base}${path}`, lenient), (err: Error) => err.message === JWKS_URI_ERROR, path);
    }
  });

  test('a slow server is given up on at the timeout', async () => {
    const started = performance.now();
    await assert.rejects(fetchJwkSet(`${base}/slow`, { ...lenient, timeoutMs: 500 }), (err: Error) => err.message === JWKS_URI_ERROR);
    const took = performance.now() - started;
    assert.ok(took >= 450 && took < 2000, `${took} ms`);
  });

  test('what was fetched is never quoted', async () => {
    await assert.rejects(fetchJwkSet(`${base}/metrics`, lenient), (err: Error) => {
      assert.equal(err.message, JWKS_URI_ERROR);
      assert.doesNotMatch(String(err.stack) + JSON.stringify(err), /secret_marker/);
      return true;
    });
  });

  test('safeRemoteJWKSet (for jose consumers) fetches through the same rules', async () => {
    const getKey = safeRemoteJWKSet(new URL(`${base}/jwks`), lenient);
    await getKey({ alg: 'ES256', kid: 'k1' });
    const refused = safeRemoteJWKSet(new URL(`${base}/jwks`), strict);
    await assert.rejects(refused({ alg: 'ES256', kid: 'k1' }));
  });
});
