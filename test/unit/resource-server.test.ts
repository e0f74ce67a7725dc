/**
 * @veil/resource-server: sealed access tokens are accepted only when every layer checks out, and
 * each way of failing has its own error code. Tokens are built with jose against a stand-in
 * issuer (JWKS, discovery, introspection) on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, type JsonWebKey } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import Koa from 'koa';
import { CompactEncrypt, SignJWT, exportSPKI, importJWK, type CryptoKey, type JWTPayload } from 'jose';
import {
  createVerifier,
  expressRequireAccessToken,
  koaRequireAccessToken,
  VeilTokenError,
  type AccessTokenState,
  type AccessTokenVerifier,
  type VeilTokenErrorCode,
  type VerifierOptions,
} from '@veil/resource-server';
import {
  accessTokenClaims,
  b64url,
  encoder,
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

let issuer: FakeIssuer;
let es256: Signer;
let rs256: Signer;
let ecRecipient: Recipient;
let rsaRecipient: Recipient;
let stranger: Recipient;

before(async () => {
  [es256, rs256, ecRecipient, rsaRecipient, stranger] = await Promise.all([
    generateSigner('ES256'),
    generateSigner('RS256'),
    generateRecipient('ECDH-ES+A256KW'),
    generateRecipient('RSA-OAEP-256'),
    generateRecipient('ECDH-ES+A256KW'),
  ]);
  issuer = await startFakeIssuer([rs256, es256]);
});
after(() => issuer.close());

type ExtraOptions = Omit<Partial<VerifierOptions>, 'decryptionKeys' | 'decryptionJwks'>;

function verifierFor(recipient: Recipient = ecRecipient, extra: ExtraOptions = {}): AccessTokenVerifier {
  return createVerifier({ issuer: issuer.url, audience: AUDIENCE, decryptionKeys: [recipient.privateJwk], ...extra });
}

const claims = (overrides: JWTPayload = {}) => accessTokenClaims(issuer.url, AUDIENCE, overrides);

/** A good token unless told otherwise: ES256-signed, sealed to the EC recipient. */
async function sealedToken(overrides: JWTPayload = {}, signer: Signer = es256, recipient: Recipient = ecRecipient): Promise<string> {
  return seal(await signAccessToken(claims(overrides), signer), recipient);
}

async function rejectsWith(promise: Promise<unknown>, code: VeilTokenErrorCode): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof VeilTokenError, `expected VeilTokenError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

/** Replaces one of the five compact JWE parts. */
function withPart(token: string, index: number, part: string): string {
  const parts = token.split('.');
  parts[index] = part;
  return parts.join('.');
}

describe('good tokens', () => {
  test('EC P-256 recipient (ECDH-ES+A256KW, A256GCM) with an ES256-signed JWT', async () => {
    const token = await sealedToken({ email: 'ada@example.test', auth_time: 1, acr: 'urn:x', amr: ['pwd'] });
    const verified = await verifierFor().verify(token);
    assert.equal(verified.claims.sub, 'user-1');
    assert.equal(verified.claims.client_id, 'client-1');
    assert.equal(verified.claims.email, 'ada@example.test');
    assert.deepEqual(verified.scopes, ['read', 'write']);
    assert.equal(verified.header.jwe.alg, 'ECDH-ES+A256KW');
    assert.equal(verified.header.jwe.kid, ecRecipient.kid);
    assert.equal(verified.header.jws.typ, 'at+jwt');
    assert.equal(verified.header.jws.kid, es256.kid);
  });

  test('RSA recipient (RSA-OAEP-256) with an RS256-signed JWT', async () => {
    const token = await sealedToken({}, rs256, rsaRecipient);
    const verified = await verifierFor(rsaRecipient).verify(token);
    assert.equal(verified.header.jwe.alg, 'RSA-OAEP-256');
    assert.equal(verified.header.jws.alg, 'RS256');
  });

  test('keys given as a private JWK Set, and cty compared case-insensitively', async () => {
    const token = await seal(await signAccessToken(claims(), es256), ecRecipient, { cty: 'jwt' });
    const verifier = createVerifier({ issuer: issuer.url, audience: AUDIENCE, decryptionJwks: { keys: [rsaRecipient.privateJwk, ecRecipient.privateJwk] } });
    assert.equal((await verifier.verify(token)).claims.sub, 'user-1');
  });

  test('keys given as an imported KeyObject or CryptoKey', async () => {
    const keyObject = createPrivateKey({ key: rsaRecipient.privateJwk as JsonWebKey, format: 'jwk' });
    const cryptoKey = (await importJWK(ecRecipient.privateJwk, 'ECDH-ES+A256KW')) as CryptoKey;
    const verifier = createVerifier({
      issuer: issuer.url,
      audience: AUDIENCE,
      decryptionKeys: [
        { kid: rsaRecipient.kid, key: keyObject },
        { kid: ecRecipient.kid, key: cryptoKey },
      ],
    });
    assert.equal((await verifier.verify(await sealedToken({}, rs256, rsaRecipient))).header.jwe.kid, rsaRecipient.kid);
    assert.equal((await verifier.verify(await sealedToken())).header.jwe.kid, ecRecipient.kid);
  });

  test('a token without scope has no scopes', async () => {
    const verified = await verifierFor().verify(await sealedToken({ scope: undefined }));
    assert.deepEqual(verified.scopes, []);
  });
});

describe('outer JWE failures', () => {
  test('tampered: one flipped ciphertext byte is decryption_failed', async () => {
    const token = await sealedToken();
    const ciphertext = Buffer.from(token.split('.')[3]!, 'base64url');
    ciphertext[0]! ^= 0x01;
    await rejectsWith(verifierFor().verify(withPart(token, 3, ciphertext.toString('base64url'))), 'decryption_failed');
  });

  test('truncated: a shortened authentication tag is decryption_failed', async () => {
    const token = await sealedToken();
    await rejectsWith(verifierFor().verify(token.slice(0, -6)), 'decryption_failed');
  });

  test('re-encrypted to another key under our kid is decryption_failed', async () => {
    const jws = await signAccessToken(claims(), es256);
    const token = await seal(jws, { ...stranger, kid: ecRecipient.kid });
    await rejectsWith(verifierFor().verify(token), 'decryption_failed');
  });

  test('unknown decryption kid is decryption_key_unknown', async () => {
    const token = await seal(await signAccessToken(claims(), es256), stranger);
    await rejectsWith(verifierFor().verify(token), 'decryption_key_unknown');
  });

  test('compressed (zip DEF) is compression_not_allowed, before any decryption or inflation', async () => {
    const verifier = verifierFor(ecRecipient, { maxTokenLength: 100_000 });
    // A real compressed JWE whose plaintext would inflate to 2 MB.
    const bomb = await new CompactEncrypt(encoder.encode('a'.repeat(2_000_000)))
      .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: ecRecipient.kid, cty: 'JWT', zip: 'DEF' })
      .encrypt(ecRecipient.publicKey);
    await rejectsWith(verifier.verify(bomb), 'compression_not_allowed');
    // Same header over parts that cannot be decrypted: still compression_not_allowed, so the
    // header is refused before decryption is even attempted.
    const header = b64url({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: ecRecipient.kid, cty: 'JWT', zip: 'DEF' });
    await rejectsWith(verifier.verify(`${header}.AAAA.AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA`), 'compression_not_allowed');
  });

  test('oversized is token_too_large', async () => {
    const token = await sealedToken({ padding: 'x'.repeat(9000) });
    assert.ok(token.length > 8192);
    await rejectsWith(verifierFor().verify(token), 'token_too_large');
    await rejectsWith(verifierFor(ecRecipient, { maxTokenLength: 100 }).verify(await sealedToken()), 'token_too_large');
  });

  test('a plain JWS without encryption is token_not_encrypted', async () => {
    await rejectsWith(verifierFor().verify(await signAccessToken(claims(), es256)), 'token_not_encrypted');
  });

  test('cty missing is wrong_token_type', async () => {
    const token = await seal(await signAccessToken(claims(), es256), ecRecipient, { cty: undefined });
    await rejectsWith(verifierFor().verify(token), 'wrong_token_type');
  });

  test('a disallowed content encryption (A256CBC-HS512) is algorithm_not_allowed', async () => {
    const token = await seal(await signAccessToken(claims(), es256), ecRecipient, { enc: 'A256CBC-HS512' });
    await rejectsWith(verifierFor().verify(token), 'algorithm_not_allowed');
  });

  test('an RSA algorithm naming an EC key is algorithm_not_allowed', async () => {
    const token = await seal(await signAccessToken(claims(), es256), { ...rsaRecipient, kid: ecRecipient.kid });
    await rejectsWith(verifierFor().verify(token), 'algorithm_not_allowed');
  });

  test('garbage strings are token_malformed', async () => {
    const garbage = [
      '',
      'garbage',
      'a.b',
      'a.b.c',
      '..',
      '....',
      'x.y.z.w.v',
      '!!!.@@@.###.$$$.%%%',
      'ü.ü.ü.ü.ü',
      `${b64url('not json')}.a.b.c.d`,
      `${b64url([1, 2])}.a.b.c.d`,
      'Bearer abc',
      null as unknown as string,
      42 as unknown as string,
    ];
    for (const token of garbage) await rejectsWith(verifierFor().verify(token), 'token_malformed');
  });
});

describe('inner JWT failures', () => {
  test('wrong audience is audience_mismatch', async () => {
    await rejectsWith(verifierFor().verify(await sealedToken({ aud: 'https://other-api.example.test' })), 'audience_mismatch');
  });

  test('the error carries no decoded claims a caller could log', async () => {
    await assert.rejects(verifierFor().verify(await sealedToken({ aud: 'https://other-api.example.test', email: 'ada@example.com' })), (err: unknown) => {
      assert.ok(err instanceof VeilTokenError);
      assert.equal(err.code, 'audience_mismatch');
      assert.doesNotMatch(JSON.stringify({ message: err.message, cause: err.cause }), /ada@example\.com/);
      assert.equal((err.cause as { payload?: unknown } | undefined)?.payload, undefined);
      return true;
    });
  });

  test('wrong issuer is issuer_mismatch', async () => {
    await rejectsWith(verifierFor().verify(await sealedToken({ iss: 'https://evil.example.test' })), 'issuer_mismatch');
  });

  test('expired is token_expired', async () => {
    const now = Math.floor(Date.now() / 1000);
    await rejectsWith(verifierFor().verify(await sealedToken({ iat: now - 600, exp: now - 60 })), 'token_expired');
  });

  test('not yet valid (nbf in the future) is token_not_yet_valid', async () => {
    const now = Math.floor(Date.now() / 1000);
    await rejectsWith(verifierFor().verify(await sealedToken({ nbf: now + 120 })), 'token_not_yet_valid');
  });

  test('issued in the future (iat beyond the clock tolerance) is token_not_yet_valid', async () => {
    const now = Math.floor(Date.now() / 1000);
    await rejectsWith(verifierFor().verify(await sealedToken({ iat: now + 120, exp: now + 600 })), 'token_not_yet_valid');
  });

  test('alg none inner token is algorithm_not_allowed', async () => {
    const unsigned = `${b64url({ alg: 'none', typ: 'at+jwt' })}.${b64url(claims())}.`;
    await rejectsWith(verifierFor().verify(await seal(unsigned, ecRecipient)), 'algorithm_not_allowed');
  });

  test('HS256 keyed with the signer public key is algorithm_not_allowed', async () => {
    const publicPem = await exportSPKI(rs256.publicKey);
    const forged = await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: rs256.kid }).sign(encoder.encode(publicPem));
    await rejectsWith(verifierFor().verify(await seal(forged, ecRecipient)), 'algorithm_not_allowed');
  });

  test('unknown signing kid is signing_key_unknown', async () => {
    const unpublished = await generateSigner('ES256');
    await rejectsWith(verifierFor().verify(await sealedToken({}, unpublished)), 'signing_key_unknown');
  });

  test('a signature that does not verify is signature_invalid', async () => {
    const [header, payload] = (await signAccessToken(claims(), es256)).split('.');
    const otherSignature = (await signAccessToken(claims({ sub: 'someone-else' }), es256)).split('.')[2];
    await rejectsWith(verifierFor().verify(await seal(`${header}.${payload}.${otherSignature}`, ecRecipient)), 'signature_invalid');
  });

  test('typ JWT instead of at+jwt is wrong_token_type', async () => {
    const jws = await signAccessToken(claims(), es256, { typ: 'JWT' });
    await rejectsWith(verifierFor().verify(await seal(jws, ecRecipient)), 'wrong_token_type');
  });

  test('a JWE inside the JWE is wrong_token_type', async () => {
    const inner = await sealedToken();
    await rejectsWith(verifierFor().verify(await seal(inner, ecRecipient)), 'wrong_token_type');
  });

  test('a DPoP-bound (cnf.jkt) token used as a bearer token is dpop_required; other cnf (mTLS) is wrong_token_type', async () => {
    await rejectsWith(verifierFor().verify(await sealedToken({ cnf: { jkt: 'abc' } })), 'dpop_required');
    await rejectsWith(verifierFor().verify(await sealedToken({ cnf: { 'x5t#S256': 'abc' } })), 'wrong_token_type');
    await rejectsWith(verifierFor().verify(await sealedToken({ cnf: { jkt: 'abc', 'x5t#S256': 'abc' } })), 'wrong_token_type');
  });

  test('a missing client_id is claims_invalid', async () => {
    await rejectsWith(verifierFor().verify(await sealedToken({ client_id: undefined })), 'claims_invalid');
  });

  test('a mistyped scope claim is claims_invalid', async () => {
    await rejectsWith(verifierFor().verify(await sealedToken({ scope: ['read'] })), 'claims_invalid');
  });
});

describe('issuer signing keys', () => {
  test('a new signing kid makes the verifier fetch the JWKS again', async () => {
    const verifier = verifierFor(ecRecipient, { jwksCooldownMs: 0 });
    await verifier.verify(await sealedToken());
    const fetchesBefore = issuer.jwksFetches;

    const rotated = await generateSigner('ES256');
    issuer.jwks.push(rotated.publicJwk);
    try {
      const verified = await verifier.verify(await sealedToken({}, rotated));
      assert.equal(verified.header.jws.kid, rotated.kid);
      assert.equal(issuer.jwksFetches, fetchesBefore + 1, 'exactly one re-fetch for the new kid');
    } finally {
      issuer.jwks.pop();
    }
  });

  test("Veil's Cache-Control max-age is honoured: a removed signing key stops being trusted within it", async () => {
    const retiring = await generateSigner('ES256');
    const own = await startFakeIssuer([retiring, es256]);
    own.jwksCacheControl = 'public, max-age=1, must-revalidate';
    try {
      const verifier = createVerifier({ issuer: own.url, audience: AUDIENCE, decryptionKeys: [ecRecipient.privateJwk] });
      const token = async () => seal(await signAccessToken(accessTokenClaims(own.url, AUDIENCE), retiring), ecRecipient);
      await verifier.verify(await token());
      const fetches = own.jwksFetches;
      // Within max-age the cached set is used, however many tokens come in.
      for (let i = 0; i < 5; i += 1) await verifier.verify(await token());
      assert.equal(own.jwksFetches, fetches);

      own.jwks = own.jwks.filter((k) => k.kid !== retiring.kid);
      await new Promise((r) => setTimeout(r, 1300));
      await rejectsWith(verifier.verify(await token()), 'signing_key_unknown');
    } finally {
      await own.close();
    }
  });

  test('max-age=0 does not make every verification fetch the JWKS', async () => {
    const own = await startFakeIssuer([es256]);
    own.jwksCacheControl = 'no-cache, max-age=0';
    try {
      // cache: false, else the verified-token cache would answer before the JWKS is consulted.
      const verifier = createVerifier({ issuer: own.url, audience: AUDIENCE, decryptionKeys: [ecRecipient.privateJwk], cache: false });
      const token = await seal(await signAccessToken(accessTokenClaims(own.url, AUDIENCE), es256), ecRecipient);
      for (let i = 0; i < 10; i += 1) await verifier.verify(token);
      assert.equal(own.jwksFetches, 1);
    } finally {
      await own.close();
    }
  });

  test('a JWKS that cannot be re-fetched after max-age keeps the last good set (up to jwksCacheMaxAgeMs)', async () => {
    const own = await startFakeIssuer([es256]);
    own.jwksCacheControl = 'max-age=1';
    try {
      const verifier = createVerifier({ issuer: own.url, audience: AUDIENCE, decryptionKeys: [ecRecipient.privateJwk], cache: false });
      const token = await seal(await signAccessToken(accessTokenClaims(own.url, AUDIENCE), es256), ecRecipient);
      await verifier.verify(token);
      own.jwksUp = false;
      await new Promise((r) => setTimeout(r, 1300));
      await verifier.verify(token);
      assert.equal(own.jwksFetches, 2, 'it did try again');
    } finally {
      await own.close();
    }
  });

  test('an unreachable JWKS is jwks_unavailable (rejected, not blamed on the token)', async () => {
    issuer.jwksUp = false;
    try {
      await rejectsWith(verifierFor().verify(await sealedToken()), 'jwks_unavailable');
    } finally {
      issuer.jwksUp = true;
    }
  });
});

describe('introspection', () => {
  const introspect = { clientId: 'rs:api example', clientSecret: 's3cr:t/+' };

  test('active: posts the original token with form-encoded Basic client authentication', async () => {
    issuer.introspectionCalls.length = 0;
    issuer.introspection = 'active';
    const token = await sealedToken();
    await verifierFor(ecRecipient, { introspect }).verify(token);

    assert.equal(issuer.introspectionCalls.length, 1);
    const [call] = issuer.introspectionCalls;
    assert.equal(call!.params.get('token'), token, 'the sealed token itself is introspected');
    // RFC 6749 §2.3.1: form-urlencode, then join with ":" and base64.
    const expected = `Basic ${Buffer.from('rs%3Aapi+example:s3cr%3At%2F%2B').toString('base64')}`;
    assert.equal(call!.authorization, expected);
  });

  test('inactive is token_inactive', async () => {
    issuer.introspection = 'inactive';
    try {
      await rejectsWith(verifierFor(ecRecipient, { introspect }).verify(await sealedToken()), 'token_inactive');
    } finally {
      issuer.introspection = 'active';
    }
  });

  test('an introspection endpoint failure is introspection_failed (fails closed)', async () => {
    issuer.introspection = 'error';
    try {
      await rejectsWith(verifierFor(ecRecipient, { introspect }).verify(await sealedToken()), 'introspection_failed');
    } finally {
      issuer.introspection = 'active';
    }
  });

  test('positive answers are cached for cacheSeconds; without cacheSeconds every call asks', async () => {
    const token = await sealedToken();
    issuer.introspectionCalls.length = 0;
    const cached = verifierFor(ecRecipient, { introspect: { ...introspect, cacheSeconds: 60 } });
    await cached.verify(token);
    await cached.verify(token);
    assert.equal(issuer.introspectionCalls.length, 1, 'second verification used the cache');

    // Once revoked, a cached verifier keeps accepting until the cache entry expires; an uncached one does not.
    issuer.introspection = 'inactive';
    try {
      await cached.verify(token);
      await rejectsWith(verifierFor(ecRecipient, { introspect }).verify(token), 'token_inactive');
    } finally {
      issuer.introspection = 'active';
    }
  });

  test('onResult hears every call to Veil (active, inactive, failed), not cache hits', async () => {
    const heard: string[] = [];
    const onResult = (outcome: string) => void heard.push(outcome);
    const token = await sealedToken();
    const cached = verifierFor(ecRecipient, { introspect: { ...introspect, cacheSeconds: 60, onResult } });
    await cached.verify(token);
    await cached.verify(token);
    const uncached = verifierFor(ecRecipient, { introspect: { ...introspect, onResult } });
    try {
      issuer.introspection = 'inactive';
      await rejectsWith(uncached.verify(await sealedToken()), 'token_inactive');
      issuer.introspection = 'error';
      await rejectsWith(uncached.verify(await sealedToken()), 'introspection_failed');
    } finally {
      issuer.introspection = 'active';
    }
    assert.deepEqual(heard, ['active', 'inactive', 'failed']);
  });

  test('a token failing local checks is never sent to introspection', async () => {
    issuer.introspectionCalls.length = 0;
    await rejectsWith(verifierFor(ecRecipient, { introspect }).verify(await sealedToken({ aud: 'https://other.example.test' })), 'audience_mismatch');
    assert.equal(issuer.introspectionCalls.length, 0);
  });
});

describe('verified-token cache', () => {
  const sleepUntil = (epochMs: number) => new Promise((r) => setTimeout(r, Math.max(0, epochMs - Date.now())));

  test('the same token again is a hit: decrypted and verified once, the same frozen result each time', async () => {
    const verifier = verifierFor();
    const token = await sealedToken();
    const first = await verifier.verify(token);
    const second = await verifier.verify(token);
    await verifier.verify(token);
    assert.deepEqual(verifier.cacheStats(), { entries: 1, hits: 2, misses: 1 });
    assert.equal(second, first);
    assert.ok(Object.isFrozen(first.claims) && Object.isFrozen(first.scopes), 'a shared result cannot be changed by one request');

    const uncached = verifierFor(ecRecipient, { cache: false });
    for (let i = 0; i < 3; i += 1) await uncached.verify(token);
    assert.deepEqual(uncached.cacheStats(), { entries: 0, hits: 0, misses: 3 });
  });

  test('concurrent requests with the same new token share one verification', async () => {
    const verifier = verifierFor();
    const token = await sealedToken();
    const results = await Promise.all(Array.from({ length: 5 }, () => verifier.verify(token)));
    assert.deepEqual(verifier.cacheStats(), { entries: 1, hits: 4, misses: 1 });
    assert.ok(results.every((r) => r === results[0]));
  });

  test('a token differing by one character is a miss, and failures are not cached', async () => {
    const verifier = verifierFor();
    const token = await sealedToken();
    await verifier.verify(token);
    // The first character of the ciphertext: all six of its bits count (a final one may be padding).
    const at = token.split('.').slice(0, 3).join('.').length + 1;
    const changed = `${token.slice(0, at)}${token[at] === 'A' ? 'B' : 'A'}${token.slice(at + 1)}`;
    await rejectsWith(verifier.verify(changed), 'decryption_failed');
    await rejectsWith(verifier.verify(changed), 'decryption_failed');
    assert.deepEqual(verifier.cacheStats(), { entries: 1, hits: 0, misses: 3 });
    await verifier.verify(token);
    assert.equal(verifier.cacheStats().hits, 1);
  });

  test('an expired token is refused even when cached', async () => {
    const verifier = verifierFor(ecRecipient, { clockToleranceSeconds: 0 });
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await sealedToken({ exp });
    await verifier.verify(token);
    await verifier.verify(token);
    assert.equal(verifier.cacheStats().hits, 1);
    await sleepUntil(exp * 1000 + 50);
    await rejectsWith(verifier.verify(token), 'token_expired');
    assert.deepEqual(verifier.cacheStats(), { entries: 0, hits: 1, misses: 2 });
  });

  test('maxAgeSeconds bounds reuse: a token whose signing key Veil retired stops verifying within it', async () => {
    const retiring = await generateSigner('ES256');
    const own = await startFakeIssuer([retiring]);
    own.jwksCacheControl = 'max-age=1';
    try {
      const verifier = createVerifier({ issuer: own.url, audience: AUDIENCE, decryptionKeys: [ecRecipient.privateJwk], cache: { maxAgeSeconds: 1 } });
      const token = await seal(await signAccessToken(accessTokenClaims(own.url, AUDIENCE), retiring), ecRecipient);
      await verifier.verify(token);
      own.jwks = [];
      await new Promise((r) => setTimeout(r, 1300));
      await rejectsWith(verifier.verify(token), 'signing_key_unknown');
    } finally {
      await own.close();
    }
  });

  test('the bound holds: at most maxEntries tokens, the least recently used dropped first', async () => {
    const verifier = verifierFor(ecRecipient, { cache: { maxEntries: 2 } });
    const [a, b, c] = await Promise.all([sealedToken(), sealedToken(), sealedToken()]);
    await verifier.verify(a);
    await verifier.verify(b);
    await verifier.verify(a); // a is now the most recently used
    await verifier.verify(c); // evicts b
    assert.deepEqual(verifier.cacheStats(), { entries: 2, hits: 1, misses: 3 });
    await verifier.verify(a);
    await verifier.verify(c);
    assert.equal(verifier.cacheStats().hits, 3, 'a and c stayed');
    await verifier.verify(b);
    assert.deepEqual(verifier.cacheStats(), { entries: 2, hits: 3, misses: 4 });
  });

  test('forget(token) drops the cached verification', async () => {
    const verifier = verifierFor();
    const token = await sealedToken();
    await verifier.verify(token);
    assert.equal(verifier.forget(token), true);
    assert.equal(verifier.forget(token), false);
    await verifier.verify(token);
    assert.deepEqual(verifier.cacheStats(), { entries: 1, hits: 0, misses: 2 });
  });

  test('revoke(jti): the cached token and any other token with that jti stop verifying', async () => {
    const verifier = verifierFor();
    const jti = 'revoked-jti';
    const token = await sealedToken({ jti });
    const other = await sealedToken({ jti: 'kept-jti' });
    await verifier.verify(token);
    await verifier.verify(other);
    verifier.revoke(jti);
    assert.equal(verifier.cacheStats().entries, 1, 'only the revoked jti left the cache');
    await rejectsWith(verifier.verify(token), 'token_inactive');
    await rejectsWith(verifier.verify(await sealedToken({ jti })), 'token_inactive');
    await verifier.verify(other);
    // Also without a cache.
    const uncached = verifierFor(ecRecipient, { cache: false });
    uncached.revoke(jti);
    await rejectsWith(uncached.verify(token), 'token_inactive');
    assert.throws(() => verifier.revoke(''), TypeError);
  });

  test('introspection saying active: false drops the cached token for good; an outage does not', async () => {
    const verifier = verifierFor(ecRecipient, { introspect: { clientId: 'a', clientSecret: 'b' } });
    const token = await sealedToken();
    await verifier.verify(token);
    assert.equal(verifier.cacheStats().entries, 1);
    try {
      issuer.introspection = 'error';
      await rejectsWith(verifier.verify(token), 'introspection_failed');
      assert.equal(verifier.cacheStats().entries, 1, 'Veil unreachable says nothing about the token');
      issuer.introspection = 'inactive';
      await rejectsWith(verifier.verify(token), 'token_inactive');
      assert.equal(verifier.cacheStats().entries, 0);
      // Veil never makes a token active again; the verifier remembers instead of asking twice.
      issuer.introspection = 'active';
      await rejectsWith(verifier.verify(token), 'token_inactive');
    } finally {
      issuer.introspection = 'active';
    }
  });

  test('a verification that fails after the local checks is not cached', async () => {
    const verifier = verifierFor(ecRecipient, { introspect: { clientId: 'a', clientSecret: 'b' } });
    const token = await sealedToken();
    issuer.introspection = 'error';
    try {
      await rejectsWith(verifier.verify(token), 'introspection_failed');
    } finally {
      issuer.introspection = 'active';
    }
    assert.equal(verifier.cacheStats().entries, 0);
    await verifier.verify(token);
    assert.deepEqual(verifier.cacheStats(), { entries: 1, hits: 0, misses: 2 });
  });

  test('cache options are validated', () => {
    assert.throws(() => verifierFor(ecRecipient, { cache: { maxEntries: 0 } }), /cache.maxEntries/);
    assert.throws(() => verifierFor(ecRecipient, { cache: { maxAgeSeconds: -1 } }), /cache.maxAgeSeconds/);
  });
});

describe('options', () => {
  test('exactly one key source, and no unsafe algorithms', () => {
    const base = { issuer: 'https://veil.example.test', audience: AUDIENCE };
    assert.throws(() => createVerifier({ ...base } as VerifierOptions), TypeError);
    assert.throws(() => createVerifier({ ...base, decryptionKeys: [ecRecipient.privateJwk], decryptionJwks: { keys: [] } } as unknown as VerifierOptions), TypeError);
    assert.throws(() => createVerifier({ ...base, decryptionKeys: [ecRecipient.privateJwk], algorithms: { signing: ['HS256' as 'RS256'] } }), /cannot include HS256/);
    const { d: _d, ...publicOnly } = ecRecipient.privateJwk;
    assert.throws(() => createVerifier({ ...base, decryptionKeys: [publicOnly] }), /no private part/);
  });
});

describe('middleware', () => {
  let goodToken: string;
  let readOnlyToken: string;
  before(async () => {
    goodToken = await sealedToken({ scope: 'read write' });
    readOnlyToken = await sealedToken({ scope: 'read' });
  });

  const apps = {
    koa: async () => {
      const app = new Koa<AccessTokenState>();
      app.use(koaRequireAccessToken(verifierFor(), { scopes: ['write'] }));
      app.use((ctx) => {
        ctx.body = { sub: ctx.state.accessToken.claims.sub };
      });
      return listen(app.callback());
    },
    express: async () => {
      const app = express();
      app.get('/', expressRequireAccessToken(verifierFor(), { scopes: ['write'] }), (req, res) => {
        res.json({ sub: req.accessToken?.claims.sub });
      });
      return listen(app);
    },
  };

  for (const [name, start] of Object.entries(apps)) {
    describe(name, () => {
      let server: { url: string; close(): Promise<void> };
      before(async () => {
        server = await start();
      });
      after(() => server.close());

      const get = (authorization?: string) => fetch(`${server.url}/`, { headers: authorization ? { authorization } : {} });

      test('401 without a token, challenge without an error attribute', async () => {
        const res = await get();
        assert.equal(res.status, 401);
        // RFC 9449 §7.1: both schemes offered, the DPoP one with the proof algorithms accepted.
        assert.equal(res.headers.get('www-authenticate'), `Bearer realm="${AUDIENCE}", DPoP realm="${AUDIENCE}", algs="ES256 ES384 PS256 RS256 Ed25519 EdDSA"`);
        assert.equal(((await res.json()) as { error: string }).error, 'unauthorized');
        // Another scheme is no bearer token at all.
        assert.equal((await get('Basic dXNlcjpwYXNz')).status, 401);
      });

      test('401 invalid_token with the error code, never echoing the token', async () => {
        const bad = await seal(await signAccessToken(claims(), es256), stranger);
        const res = await get(`Bearer ${bad}`);
        assert.equal(res.status, 401);
        assert.equal(res.headers.get('www-authenticate'), `Bearer realm="${AUDIENCE}", error="invalid_token", error_description="decryption_key_unknown"`);
        const text = await res.text();
        assert.deepEqual(JSON.parse(text), { error: 'invalid_token', error_description: 'decryption_key_unknown' });
        assert.ok(!text.includes(bad.slice(0, 20)));
      });

      test('400 invalid_request for more than one token', async () => {
        const res = await get(`Bearer ${goodToken} ${goodToken}`);
        assert.equal(res.status, 400);
        assert.match(res.headers.get('www-authenticate') ?? '', /error="invalid_request"/);
      });

      test('403 insufficient_scope naming the required scope', async () => {
        const res = await get(`Bearer ${readOnlyToken}`);
        assert.equal(res.status, 403);
        const challenge = res.headers.get('www-authenticate') ?? '';
        assert.match(challenge, /^Bearer realm="https:\/\/api\.example\.test", error="insufficient_scope"/);
        assert.match(challenge, /scope="write"/);
        assert.equal(((await res.json()) as { error: string }).error, 'insufficient_scope');
      });

      test('200 with a good token; the scheme is case-insensitive', async () => {
        const res = await get(`bearer ${goodToken}`);
        assert.equal(res.status, 200);
        assert.deepEqual(await res.json(), { sub: 'user-1' });
      });
    });
  }

  test('503 when introspection is unavailable (fails closed without blaming the token)', async () => {
    const app = new Koa();
    app.use(koaRequireAccessToken(verifierFor(ecRecipient, { introspect: { clientId: 'a', clientSecret: 'b' } })));
    app.use((ctx) => {
      ctx.body = 'reached';
    });
    const server = await listen(app.callback());
    issuer.introspection = 'error';
    try {
      const res = await fetch(`${server.url}/`, { headers: { authorization: `Bearer ${goodToken}` } });
      assert.equal(res.status, 503);
      assert.equal(res.headers.get('www-authenticate'), null);
      assert.deepEqual(await res.json(), { error: 'temporarily_unavailable', error_description: 'introspection_failed' });
    } finally {
      issuer.introspection = 'active';
      await server.close();
    }
  });
});
