/**
 * The demo API in-process: its key file, its public JWK Set, and its protected route answering
 * a token sealed to that published key (and refusing a bad one).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { importJWK, type CryptoKey, type JWK } from 'jose';
import { startDemoApi, type DemoApi } from '../../src/demo-api/app.js';
import { freePort } from '../helpers/net.js';
import { accessTokenClaims, generateSigner, seal, signAccessToken, startFakeIssuer, type FakeIssuer, type Signer } from '../helpers/sealed-tokens.js';

let root: string;
let issuer: FakeIssuer;
let signer: Signer;
let api: DemoApi;
let keyFile: string;
const lines: string[] = [];
let identifier: string;

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-demo-api-test-'));
  signer = await generateSigner('ES256');
  issuer = await startFakeIssuer([signer]);
  const port = await freePort();
  identifier = `http://127.0.0.1:${port}`;
  keyFile = path.join(root, 'data', 'demo-api-key.json');
  api = await startDemoApi({ port, host: '127.0.0.1', issuer: issuer.url, identifier, keyFile, log: (line) => lines.push(line) });
});
after(async () => {
  await api?.close();
  await issuer?.close();
  await fs.rm(root, { recursive: true, force: true });
});

async function publishedKey(): Promise<{ jwk: JWK; key: CryptoKey }> {
  const res = await fetch(`${api.url}/jwks.json`);
  const { keys } = (await res.json()) as { keys: JWK[] };
  const jwk = keys[0]!;
  return { jwk, key: (await importJWK(jwk, jwk.alg)) as CryptoKey };
}

describe('demo API', () => {
  test('/jwks.json publishes only the public part of one ECDH-ES+A256KW encryption key', async () => {
    const res = await fetch(`${api.url}/jwks.json`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { keys: JWK[] };
    assert.equal(body.keys.length, 1);
    const [jwk] = body.keys;
    assert.deepEqual(Object.keys(jwk!).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    assert.equal(jwk!.use, 'enc');
    assert.equal(jwk!.alg, 'ECDH-ES+A256KW');
    assert.equal(jwk!.kid, api.kid);
  });

  test('the private key file is 0600 and is reused, not overwritten, on the next start', async () => {
    assert.equal((await fs.stat(keyFile)).mode & 0o777, 0o600);
    const before = await fs.readFile(keyFile, 'utf8');
    const again = await startDemoApi({ port: 0, host: '127.0.0.1', issuer: issuer.url, identifier, keyFile, log: () => {} });
    try {
      assert.equal(again.kid, api.kid);
      assert.equal(await fs.readFile(keyFile, 'utf8'), before);
    } finally {
      await again.close();
    }
  });

  test('logs its jwks_uri and the exact registration command', () => {
    assert.ok(lines.includes(`jwks_uri: ${api.jwksUri}`));
    assert.ok(lines.includes(`  npx veil resources create --identifier ${identifier} --name "Demo API" --scope "read" --jwks-uri ${api.jwksUri}`), lines.join('\n'));
  });

  test('a token sealed to the published key reaches /api/hello', async () => {
    const { jwk, key } = await publishedKey();
    const jws = await signAccessToken(accessTokenClaims(issuer.url, identifier, { scope: 'read' }), signer);
    const token = await seal(jws, { kid: jwk.kid!, alg: 'ECDH-ES+A256KW', publicKey: key });
    const res = await fetch(`${api.url}/api/hello`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { message: 'Hello, user-1', sub: 'user-1', client_id: 'client-1', scope: 'read' });
  });

  test('a bad token gets 401 invalid_token; a token without the scope gets 403; none gets 401', async () => {
    const { jwk, key } = await publishedKey();
    const wrongAudience = await seal(await signAccessToken(accessTokenClaims(issuer.url, 'https://elsewhere.test', { scope: 'read' }), signer), {
      kid: jwk.kid!,
      alg: 'ECDH-ES+A256KW',
      publicKey: key,
    });
    const bad = await fetch(`${api.url}/api/hello`, { headers: { authorization: `Bearer ${wrongAudience}` } });
    assert.equal(bad.status, 401);
    assert.match(bad.headers.get('www-authenticate') ?? '', /error="invalid_token", error_description="audience_mismatch"/);

    const noScope = await seal(await signAccessToken(accessTokenClaims(issuer.url, identifier, { scope: 'write' }), signer), {
      kid: jwk.kid!,
      alg: 'ECDH-ES+A256KW',
      publicKey: key,
    });
    assert.equal((await fetch(`${api.url}/api/hello`, { headers: { authorization: `Bearer ${noScope}` } })).status, 403);

    const none = await fetch(`${api.url}/api/hello`);
    assert.equal(none.status, 401);
    // Both schemes offered (RFC 9449 §7.1): the demo API takes DPoP-bound tokens too.
    assert.equal(none.headers.get('www-authenticate'), `Bearer realm="${identifier}", DPoP realm="${identifier}", algs="ES256 ES384 PS256 RS256 Ed25519 EdDSA"`);
  });
});
