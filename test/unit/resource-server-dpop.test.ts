/**
 * @veil/resource-server and DPoP (RFC 9449): a DPoP-bound sealed token is accepted only with a
 * fresh, unused proof for this request, this token and the token's key; each way a proof fails
 * has its own error code, and the Koa and Express middleware answer with a DPoP challenge.
 * Tokens are built with jose against a stand-in issuer on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import Koa from 'koa';
import { exportJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
import {
  createVerifier,
  expressRequireAccessToken,
  koaRequireAccessToken,
  normalizeHtu,
  VeilTokenError,
  type AccessTokenState,
  type AccessTokenVerifier,
  type DPoPOptions,
  type VeilTokenErrorCode,
} from '@veil/resource-server';
import { dpopKey, dpopProof, type DPoPKey } from '../helpers/dpop.js';
import {
  accessTokenClaims,
  generateRecipient,
  generateSigner,
  listen,
  seal,
  signAccessToken,
  startFakeIssuer,
  type FakeIssuer,
  type Recipient,
  type Signer,
} from '../helpers/sealed-tokens.js';

const AUDIENCE = 'https://api.example.test';
const URL_HERE = 'https://api.example.test/things/1';

let issuer: FakeIssuer;
let signer: Signer;
let recipient: Recipient;
let key: DPoPKey;
let otherKey: DPoPKey;
let bound: string;
let unbound: string;

const sealedToken = async (overrides: JWTPayload = {}) => seal(await signAccessToken(accessTokenClaims(issuer.url, AUDIENCE, overrides), signer), recipient);

before(async () => {
  [signer, recipient, key, otherKey] = await Promise.all([generateSigner('ES256'), generateRecipient('ECDH-ES+A256KW'), dpopKey('ES256'), dpopKey('ES256')]);
  issuer = await startFakeIssuer([signer]);
  bound = await sealedToken({ cnf: { jkt: key.jkt }, scope: 'read write' });
  unbound = await sealedToken({ scope: 'read write' });
});
after(() => issuer.close());

const verifierWith = (dpop: DPoPOptions = {}): AccessTokenVerifier => createVerifier({ issuer: issuer.url, audience: AUDIENCE, decryptionKeys: [recipient.privateJwk], dpop });

async function rejectsWith(promise: Promise<unknown>, code: VeilTokenErrorCode): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof VeilTokenError, `expected VeilTokenError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

/** A good proof for GET URL_HERE and the bound token, unless told otherwise. */
const proof = (overrides: Partial<Parameters<typeof dpopProof>[1]> = {}, k: DPoPKey = key) => dpopProof(k, { htm: 'GET', htu: URL_HERE, accessToken: bound, ...overrides });

describe('verify(token, dpop)', () => {
  test('a bound token with a good proof is accepted, and carries its cnf', async () => {
    const verified = await verifierWith().verify(bound, { proof: await proof(), method: 'GET', url: URL_HERE });
    assert.deepEqual(verified.claims.cnf, { jkt: key.jkt });
  });

  test('a bound token used as a bearer token is dpop_required; an unbound one with DPoP is dpop_not_bound', async () => {
    const verifier = verifierWith();
    await rejectsWith(verifier.verify(bound), 'dpop_required');
    await rejectsWith(verifier.verify(unbound, { proof: await proof({ accessToken: unbound }), method: 'GET', url: URL_HERE }), 'dpop_not_bound');
    // Unbound as bearer: still fine.
    assert.equal((await verifier.verify(unbound)).claims.cnf, undefined);
  });

  test('a proof is single use (dpop_replay), even after the token verification is cached; a fresh one passes', async () => {
    const verifier = verifierWith();
    const once = await proof();
    await verifier.verify(bound, { proof: once, method: 'GET', url: URL_HERE });
    await rejectsWith(verifier.verify(bound, { proof: once, method: 'GET', url: URL_HERE }), 'dpop_replay');
    await verifier.verify(bound, { proof: await proof(), method: 'GET', url: URL_HERE });
    assert.equal(verifier.cacheStats().misses, 1);
  });

  test('a refused proof does not use up its jti', async () => {
    const verifier = verifierWith();
    const jti = randomUUID();
    await rejectsWith(verifier.verify(bound, { proof: await proof({ jti, htm: 'POST' }), method: 'GET', url: URL_HERE }), 'dpop_htm_mismatch');
    await verifier.verify(bound, { proof: await proof({ jti }), method: 'GET', url: URL_HERE });
  });

  test('htu is compared without query and fragment, after URL normalisation', async () => {
    const verifier = verifierWith();
    for (const htu of [`${URL_HERE}?page=2#top`, 'HTTPS://API.example.test:443/things/1']) {
      await verifier.verify(bound, { proof: await proof({ htu }), method: 'GET', url: `${URL_HERE}?other=1` });
    }
    assert.equal(normalizeHtu('https://a.test/p?q#f'), 'https://a.test/p');
    assert.equal(normalizeHtu('ftp://a.test/p'), undefined);
  });

  const now = () => Math.floor(Date.now() / 1000);
  const badProofs: Array<[string, () => Promise<string>, VeilTokenErrorCode]> = [
    ['wrong method', () => proof({ htm: 'POST' }), 'dpop_htm_mismatch'],
    ['method in lower case', () => proof({ htm: 'get' }), 'dpop_htm_mismatch'],
    ['another path', () => proof({ htu: 'https://api.example.test/things/2' }), 'dpop_htu_mismatch'],
    ['another origin', () => proof({ htu: 'https://evil.example.test/things/1' }), 'dpop_htu_mismatch'],
    ['http instead of https', () => proof({ htu: 'http://api.example.test/things/1' }), 'dpop_htu_mismatch'],
    ['htu not a URL', () => proof({ htu: 'not a url' }), 'dpop_htu_mismatch'],
    ['iat too old', () => proof({ iat: now() - 120 }), 'dpop_proof_stale'],
    ['iat in the future', () => proof({ iat: now() + 60 }), 'dpop_proof_stale'],
    ['ath of another token', () => proof({ accessToken: unbound }), 'dpop_ath_mismatch'],
    ["another key's proof", () => proof({}, otherKey), 'dpop_key_mismatch'],
    ['no ath', () => proof({ omit: ['ath'] }), 'invalid_dpop_proof'],
    ['no jti', () => proof({ omit: ['jti'] }), 'invalid_dpop_proof'],
    ['no iat', () => proof({ omit: ['iat'] }), 'invalid_dpop_proof'],
    ['iat a string', () => proof({ claims: { iat: String(now()) } }), 'invalid_dpop_proof'],
    ['typ JWT', () => proof({ typ: 'JWT' }), 'invalid_dpop_proof'],
    ['header jwk of another key (signature does not verify)', () => proof({ jwk: otherKey.publicJwk }), 'invalid_dpop_proof'],
    [
      'tampered payload',
      async () => {
        const [h, , s] = (await proof()).split('.');
        return `${h}.${Buffer.from(JSON.stringify({ htm: 'GET', htu: URL_HERE, iat: now(), jti: 'x', ath: 'y' })).toString('base64url')}.${s}`;
      },
      'invalid_dpop_proof',
    ],
    ['two proofs in one header', async () => `${await proof()}, ${await proof()}`, 'invalid_dpop_proof'],
    ['not a JWS', async () => 'hello', 'invalid_dpop_proof'],
  ];
  for (const [label, make, code] of badProofs) {
    test(`${label}: ${code}`, async () => {
      await rejectsWith(verifierWith().verify(bound, { proof: await make(), method: 'GET', url: URL_HERE }), code);
    });
  }

  test('no proof at all: invalid_dpop_proof', async () => {
    await rejectsWith(verifierWith().verify(bound, { proof: undefined, method: 'GET', url: URL_HERE }), 'invalid_dpop_proof');
  });

  test('algorithms outside the allow-list, symmetric keys and private keys in the header are refused', async () => {
    const es512 = await dpopKey('ES512');
    const token512 = await sealedToken({ cnf: { jkt: es512.jkt } });
    await rejectsWith(
      verifierWith().verify(token512, { proof: await dpopProof(es512, { htm: 'GET', htu: URL_HERE, accessToken: token512 }), method: 'GET', url: URL_HERE }),
      'invalid_dpop_proof',
    );
    // Allowed when the API says so.
    await verifierWith({ algorithms: ['ES512'] }).verify(token512, {
      proof: await dpopProof(es512, { htm: 'GET', htu: URL_HERE, accessToken: token512 }),
      method: 'GET',
      url: URL_HERE,
    });

    const secret = new Uint8Array(32).fill(7);
    const hmac = await new SignJWT({ htm: 'GET', htu: URL_HERE, iat: now(), jti: randomUUID(), ath: 'x' })
      // jose's header type leaves out secret members: the point here is a header that has one.
      .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: { kty: 'oct', k: Buffer.from(secret).toString('base64url') } as JWK })
      .sign(secret);
    await rejectsWith(verifierWith().verify(bound, { proof: hmac, method: 'GET', url: URL_HERE }), 'invalid_dpop_proof');

    const withPrivate = await proof({ jwk: await exportJWK(key.privateKey) });
    await rejectsWith(verifierWith().verify(bound, { proof: withPrivate, method: 'GET', url: URL_HERE }), 'invalid_dpop_proof');
  });

  test("a proof key imported once is reused, never trusted: another key's signature under the same jwk header, or the private jwk, is still refused", async () => {
    const verifier = verifierWith();
    await verifier.verify(bound, { proof: await proof(), method: 'GET', url: URL_HERE });
    const forged = await dpopProof(otherKey, { htm: 'GET', htu: URL_HERE, accessToken: bound, jwk: key.publicJwk });
    await rejectsWith(verifier.verify(bound, { proof: forged, method: 'GET', url: URL_HERE }), 'invalid_dpop_proof');
    await rejectsWith(verifier.verify(bound, { proof: await proof({ jwk: await exportJWK(key.privateKey) }), method: 'GET', url: URL_HERE }), 'invalid_dpop_proof');
    await verifier.verify(bound, { proof: await proof(), method: 'GET', url: URL_HERE });
  });

  test('the iat window is configurable', async () => {
    const old = await proof({ iat: now() - 120 });
    await verifierWith({ maxAgeSeconds: 300 }).verify(bound, { proof: old, method: 'GET', url: URL_HERE });
  });

  test('options are validated', () => {
    assert.throws(() => verifierWith({ algorithms: [] }), /must not be empty/);
    assert.throws(() => verifierWith({ algorithms: ['HS256' as 'ES256'] }), /cannot include HS256/);
    assert.throws(() => verifierWith({ maxAgeSeconds: 0 }), /dpop.maxAgeSeconds/);
    assert.throws(() => verifierWith({ replayCacheSize: -1 }), /dpop.replayCacheSize/);
  });

  test('the replay cache is bounded: a small cache still refuses a replay within it', async () => {
    const verifier = verifierWith({ replayCacheSize: 2 });
    const proofs = await Promise.all([proof(), proof(), proof()]);
    for (const p of proofs) await verifier.verify(bound, { proof: p, method: 'GET', url: URL_HERE });
    // The newest entries are kept.
    await rejectsWith(verifier.verify(bound, { proof: proofs[2], method: 'GET', url: URL_HERE }), 'dpop_replay');
  });
});

describe('middleware with DPoP', () => {
  const apps = {
    koa: async (publicOrigin?: string) => {
      const app = new Koa<AccessTokenState>();
      app.use(koaRequireAccessToken(verifierWith(), { scopes: ['write'], ...(publicOrigin ? { publicOrigin } : {}) }));
      app.use((ctx) => {
        ctx.body = { sub: ctx.state.accessToken.claims.sub };
      });
      return listen(app.callback());
    },
    express: async (publicOrigin?: string) => {
      // Mounted under /v1: the proof names the URL the client called, not the router's rewritten path.
      const app = express();
      const router = express.Router();
      router.get('/things/1', expressRequireAccessToken(verifierWith(), { scopes: ['write'], ...(publicOrigin ? { publicOrigin } : {}) }), (req, res) => {
        res.json({ sub: req.accessToken?.claims.sub });
      });
      app.use('/v1', router);
      return listen(app);
    },
  };
  const pathOf = { koa: '/v1/things/1', express: '/v1/things/1' };

  for (const [name, start] of Object.entries(apps) as Array<[keyof typeof apps, (typeof apps)['koa']]>) {
    describe(name, () => {
      let server: { url: string; close(): Promise<void> };
      let publicServer: { url: string; close(): Promise<void> };
      before(async () => {
        server = await start();
        publicServer = await start('https://api.example.test');
      });
      after(async () => {
        await server.close();
        await publicServer.close();
      });

      const call = (base: string, headers: Record<string, string>, method = 'GET') => fetch(`${base}${pathOf[name]}?x=1`, { method, headers });
      const dpopFor = (base: string, token: string, k: DPoPKey = key, htm = 'GET') => dpopProof(k, { htm, htu: `${base}${pathOf[name]}`, accessToken: token });

      test('a bound token with a good proof: 200; the same proof again: 401 invalid_dpop_proof (dpop_replay)', async () => {
        const p = await dpopFor(server.url, bound);
        const ok = await call(server.url, { authorization: `DPoP ${bound}`, dpop: p });
        assert.equal(ok.status, 200, await ok.clone().text());
        assert.deepEqual(await ok.json(), { sub: 'user-1' });
        const again = await call(server.url, { authorization: `DPoP ${bound}`, dpop: p });
        assert.equal(again.status, 401);
        assert.match(
          again.headers.get('www-authenticate') ?? '',
          /^DPoP realm="https:\/\/api\.example\.test", error="invalid_dpop_proof", error_description="dpop_replay", algs="ES256/,
        );
        assert.deepEqual(await again.json(), { error: 'invalid_dpop_proof', error_description: 'dpop_replay' });
      });

      test('a bound token as Bearer: 401 with a DPoP challenge (dpop_required)', async () => {
        const res = await call(server.url, { authorization: `Bearer ${bound}` });
        assert.equal(res.status, 401);
        assert.match(res.headers.get('www-authenticate') ?? '', /^DPoP realm="[^"]+", error="invalid_token", error_description="dpop_required"/);
      });

      test("another key's proof, the wrong method, the wrong URL, no proof: 401 invalid_dpop_proof with the code", async () => {
        const cases: Array<[Record<string, string>, string]> = [
          [{ dpop: await dpopFor(server.url, bound, otherKey) }, 'dpop_key_mismatch'],
          [{ dpop: await dpopFor(server.url, bound, key, 'POST') }, 'dpop_htm_mismatch'],
          [{ dpop: await dpopProof(key, { htm: 'GET', htu: `${server.url}/v1/things/2`, accessToken: bound }) }, 'dpop_htu_mismatch'],
          [{}, 'invalid_dpop_proof'],
        ];
        for (const [headers, code] of cases) {
          const res = await call(server.url, { authorization: `DPoP ${bound}`, ...headers });
          assert.equal(res.status, 401, code);
          assert.deepEqual(await res.json(), { error: 'invalid_dpop_proof', error_description: code });
        }
      });

      test('an unbound token with DPoP: 401 invalid_token (dpop_not_bound); insufficient scope: 403 with a DPoP challenge', async () => {
        const res = await call(server.url, { authorization: `DPoP ${unbound}`, dpop: await dpopFor(server.url, unbound) });
        assert.equal(res.status, 401);
        assert.match(res.headers.get('www-authenticate') ?? '', /^DPoP .*error="invalid_token", error_description="dpop_not_bound"/);
        const readOnly = await sealedToken({ cnf: { jkt: key.jkt }, scope: 'read' });
        const forbidden = await call(server.url, { authorization: `DPoP ${readOnly}`, dpop: await dpopFor(server.url, readOnly) });
        assert.equal(forbidden.status, 403);
        assert.match(forbidden.headers.get('www-authenticate') ?? '', /^DPoP .*error="insufficient_scope"/);
      });

      test('with publicOrigin, the proof must name the public URL, not the address the server sees', async () => {
        const local = await call(publicServer.url, { authorization: `DPoP ${bound}`, dpop: await dpopFor(publicServer.url, bound) });
        assert.equal(local.status, 401);
        assert.equal(((await local.json()) as { error_description: string }).error_description, 'dpop_htu_mismatch');
        const ok = await call(publicServer.url, { authorization: `DPoP ${bound}`, dpop: await dpopFor('https://api.example.test', bound) });
        assert.equal(ok.status, 200, await ok.clone().text());
      });

      test('two tokens after DPoP: 400 invalid_request', async () => {
        const res = await call(server.url, { authorization: `DPoP ${bound} ${bound}`, dpop: await dpopFor(server.url, bound) });
        assert.equal(res.status, 400);
        assert.match(res.headers.get('www-authenticate') ?? '', /^DPoP .*error="invalid_request"/);
      });
    });
  }

  test('publicOrigin must be an origin', () => {
    assert.throws(() => koaRequireAccessToken(verifierWith(), { publicOrigin: 'https://api.example.test/base' }), /publicOrigin/);
    assert.throws(() => expressRequireAccessToken(verifierWith(), { publicOrigin: 'not a url' }), /publicOrigin/);
  });
});
