/**
 * Sealed access tokens (src/crypto/sealer.ts) are built with node:crypto and checked by jose:
 * every signing algorithm × key management algorithm (on each key type it takes) × content
 * encryption is decrypted by jose given only the recipient's private key, then verified given
 * only the signer's public key.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { describe, test } from 'node:test';
import { compactDecrypt, jwtVerify } from 'jose';
import {
  SealerKeyError,
  assertSealingKey,
  assertSigningKey,
  defaultKeyManagementAlg,
  encryptCompact,
  sealAccessToken,
  signJwt,
  type ContentEncryptionAlg,
  type KeyManagementAlg,
  type SealingKey,
  type SigningAlg,
  type SigningKey,
} from '../../src/crypto/sealer.js';

interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/**
 * A key pair whose KeyObjects have no keygen job behind them: on Node 20, jose exports
 * KeyObjects as JWK, and that export can deadlock on a key fresh from generateKeyPairSync
 * (see the top of src/crypto/sealer.ts).
 */
function keyPair(type: 'rsa' | 'ec' | 'ed25519' | 'ed448' | 'x25519' | 'x448', options: { namedCurve?: string; modulusLength?: number } = {}): KeyPair {
  const generate = generateKeyPairSync as unknown as (t: string, o: object) => { privateKey: Buffer };
  const der = generate(type, { ...options, publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } });
  const privateKey = createPrivateKey({ key: der.privateKey, format: 'der', type: 'pkcs8' });
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

/** 16 characters, like the truncated JWK thumbprints Veil uses as kids. */
const newKid = () => randomBytes(12).toString('base64url');
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const decodeJson = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;

/** RFC 9068 claims of a user's token with Veil-shaped values (client_id 22 chars, jti 22). */
function typicalClaims(): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: 'https://veil.example.com',
    sub: 'd9a8f0b2-6c1e-4f7a-9b3d-2e5c8a1f4b7e',
    aud: 'https://api.example.com',
    client_id: randomBytes(16).toString('base64url'),
    iat: now,
    exp: now + 3600,
    jti: randomBytes(16).toString('base64url'),
    scope: 'read write',
    auth_time: now - 120,
    acr: 'urn:mace:incommon:iap:silver',
    amr: ['pwd'],
  };
}

// ---------------------------------------------------------------------------------------------
// Keys

interface SignerCase {
  signer: SigningKey;
  publicKey: KeyObject;
}

const signerRsa = keyPair('rsa', { modulusLength: 2048 });
const signerCase = (alg: SigningAlg, pair: KeyPair): SignerCase => ({ signer: { alg, kid: newKid(), key: pair.privateKey }, publicKey: pair.publicKey });
const SIGNERS: SignerCase[] = [
  signerCase('RS256', signerRsa),
  signerCase('PS256', signerRsa),
  signerCase('ES256', keyPair('ec', { namedCurve: 'P-256' })),
  signerCase('ES384', keyPair('ec', { namedCurve: 'P-384' })),
  signerCase('EdDSA', keyPair('ed25519')),
];
const signerFor = (alg: SigningAlg) => SIGNERS.find((s) => s.signer.alg === alg)!;

interface RecipientKind {
  label: string;
  pair: KeyPair;
  /** For ECDH: the epk's crv and the base64url length of each coordinate. */
  epk?: { kty: 'EC' | 'OKP'; crv: string; coordinate: number };
}

const ECDH_ALGS: KeyManagementAlg[] = ['ECDH-ES', 'ECDH-ES+A128KW', 'ECDH-ES+A192KW', 'ECDH-ES+A256KW'];
const RSA_ALGS: KeyManagementAlg[] = ['RSA-OAEP', 'RSA-OAEP-256'];
const ENCS: ContentEncryptionAlg[] = ['A128GCM', 'A192GCM', 'A256GCM'];
const ECDH_KINDS: RecipientKind[] = [
  { label: 'P-256', pair: keyPair('ec', { namedCurve: 'P-256' }), epk: { kty: 'EC', crv: 'P-256', coordinate: 43 } },
  { label: 'P-384', pair: keyPair('ec', { namedCurve: 'P-384' }), epk: { kty: 'EC', crv: 'P-384', coordinate: 64 } },
  { label: 'P-521', pair: keyPair('ec', { namedCurve: 'P-521' }), epk: { kty: 'EC', crv: 'P-521', coordinate: 88 } },
  { label: 'X25519', pair: keyPair('x25519'), epk: { kty: 'OKP', crv: 'X25519', coordinate: 43 } },
];
const RSA_KIND: RecipientKind = { label: 'RSA-2048', pair: keyPair('rsa', { modulusLength: 2048 }) };

interface RecipientCase {
  alg: KeyManagementAlg;
  kind: RecipientKind;
  kid: string;
}

const RECIPIENTS: RecipientCase[] = [
  ...ECDH_KINDS.flatMap((kind) => ECDH_ALGS.map((alg) => ({ alg, kind, kid: newKid() }))),
  ...RSA_ALGS.map((alg) => ({ alg, kind: RSA_KIND, kid: newKid() })),
];
const sealingKey = (r: RecipientCase, enc: ContentEncryptionAlg): SealingKey => ({ kid: r.kid, alg: r.alg, enc, key: r.kind.pair.publicKey });
const recipientFor = (alg: KeyManagementAlg, label: string) => RECIPIENTS.find((r) => r.alg === alg && r.kind.label === label)!;

// ---------------------------------------------------------------------------------------------
// Opening a token with jose, checking every header on the way

async function openWithJose(token: string, s: SignerCase, r: RecipientCase, enc: ContentEncryptionAlg): Promise<Record<string, unknown>> {
  const parts = token.split('.');
  assert.equal(parts.length, 5, 'compact JWE: header.encryptedKey.iv.ciphertext.tag');
  for (const part of parts) assert.match(part, BASE64URL, 'base64url without padding');
  const [rawHeader, encryptedKey, iv, , tag] = parts as [string, string, string, string, string];
  assert.equal(iv.length, 16, '96-bit IV');
  assert.equal(tag.length, 22, '128-bit tag');
  assert.equal(encryptedKey === '', r.alg === 'ECDH-ES', 'the encrypted key is empty for direct ECDH-ES only');

  const { plaintext, protectedHeader } = await compactDecrypt(token, r.kind.pair.privateKey, {
    keyManagementAlgorithms: [r.alg],
    contentEncryptionAlgorithms: [enc],
  });
  const header = decodeJson(rawHeader);
  assert.deepEqual(protectedHeader, header);
  const expected = r.kind.epk ? ['alg', 'enc', 'kid', 'cty', 'epk'] : ['alg', 'enc', 'kid', 'cty'];
  assert.deepEqual(Object.keys(header), expected, 'exactly these members, in this order (no zip)');
  assert.deepEqual({ ...header, epk: undefined }, { alg: r.alg, enc, kid: r.kid, cty: 'JWT', epk: undefined });
  if (r.kind.epk) {
    const epk = header.epk as Record<string, string>;
    const { kty, crv, coordinate } = r.kind.epk;
    assert.deepEqual(Object.keys(epk), kty === 'EC' ? ['kty', 'crv', 'x', 'y'] : ['kty', 'crv', 'x']);
    assert.equal(epk.kty, kty);
    assert.equal(epk.crv, crv);
    assert.equal(epk.x!.length, coordinate);
    if (kty === 'EC') assert.equal(epk.y!.length, coordinate);
  }

  const jws = new TextDecoder().decode(plaintext);
  const { payload, protectedHeader: jwsHeader } = await jwtVerify(jws, s.publicKey, { algorithms: [s.signer.alg], typ: 'at+jwt' });
  assert.deepEqual(Object.keys(decodeJson(jws.split('.')[0]!)), ['alg', 'typ', 'kid']);
  assert.deepEqual(jwsHeader, { alg: s.signer.alg, typ: 'at+jwt', kid: s.signer.kid });
  for (const part of jws.split('.')) assert.match(part, BASE64URL);
  return payload;
}

// ---------------------------------------------------------------------------------------------

describe('sealAccessToken, opened by jose', () => {
  // Beyond the RFC 9068 claims: non-ASCII text and nested values must round-trip exactly too.
  const claims = { ...typicalClaims(), name: 'Zoë Ångström 🦊', cnf: { jkt: newKid() }, roles: ['a', 'b'], extra: { n: 1.5, t: true, z: null } };

  for (const s of SIGNERS) {
    for (const r of RECIPIENTS) {
      test(`${s.signer.alg} inside ${r.alg} (${r.kind.label}), every enc`, async () => {
        for (const enc of ENCS) {
          const token = sealAccessToken(claims, s.signer, sealingKey(r, enc));
          assert.deepEqual(await openWithJose(token, s, r, enc), claims);
        }
      });
    }
  }
});

describe('freshness', () => {
  const claims = typicalClaims();
  const es256 = signerFor('ES256').signer;

  test('two seals of the same claims share no part but a fixed RSA header', () => {
    for (const r of [recipientFor('ECDH-ES+A256KW', 'P-256'), recipientFor('ECDH-ES', 'X25519'), recipientFor('RSA-OAEP-256', 'RSA-2048')]) {
      const a = sealAccessToken(claims, es256, sealingKey(r, 'A256GCM')).split('.');
      const b = sealAccessToken(claims, es256, sealingKey(r, 'A256GCM')).split('.');
      // The header differs through epk; RSA headers have none and never change.
      if (r.kind.epk) assert.notEqual(a[0], b[0]);
      else assert.equal(a[0], b[0]);
      if (r.alg === 'ECDH-ES') assert.equal(a[1], '');
      else assert.notEqual(a[1], b[1], 'fresh CEK');
      assert.notEqual(a[2], b[2], 'fresh IV');
      assert.notEqual(a[3], b[3]);
      assert.notEqual(a[4], b[4]);
    }
  });

  test('every token has its own ephemeral key, on every curve', () => {
    for (const kind of ECDH_KINDS) {
      const r = recipientFor('ECDH-ES+A128KW', kind.label);
      const seen = new Set<string>();
      for (let i = 0; i < 25; i++) {
        const epk = decodeJson(sealAccessToken(claims, es256, sealingKey(r, 'A128GCM')).split('.')[0]!).epk as Record<string, string>;
        seen.add(epk.x!);
      }
      assert.equal(seen.size, 25, kind.label);
    }
  });
});

describe('encryptCompact and signJwt', () => {
  test('cty and kid are whatever the caller gives, for the same key', async () => {
    const r = recipientFor('ECDH-ES+A256KW', 'P-256');
    for (const [kid, cty] of [
      ['one', 'JWT'],
      ['two', 'text/plain'],
      ['one', 'text/plain'],
    ] as const) {
      const token = encryptCompact('héllo ✓', { kid, alg: r.alg, enc: 'A128GCM', key: r.kind.pair.publicKey }, cty);
      const { plaintext, protectedHeader } = await compactDecrypt(token, r.kind.pair.privateKey);
      assert.equal(new TextDecoder().decode(plaintext), 'héllo ✓');
      assert.equal(protectedHeader.kid, kid);
      assert.equal(protectedHeader.cty, cty);
    }
  });

  test('signJwt takes another typ, and the signature verifies with jose for every alg', async () => {
    for (const s of SIGNERS) {
      const jwt = signJwt({ sub: 'x', n: 1 }, s.signer, 'JWT');
      const { payload, protectedHeader } = await jwtVerify(jwt, s.publicKey, { algorithms: [s.signer.alg], typ: 'JWT' });
      assert.deepEqual(protectedHeader, { alg: s.signer.alg, typ: 'JWT', kid: s.signer.kid });
      assert.deepEqual(payload, { sub: 'x', n: 1 });
    }
  });
});

describe('key checks', () => {
  const throwsKeyError = (fn: () => unknown, what: string) => assert.throws(fn, SealerKeyError, what);
  const ec256 = ECDH_KINDS[0]!.pair;
  const ec384 = ECDH_KINDS[1]!.pair;

  test('signJwt refuses a key that does not fit its alg, with SealerKeyError', () => {
    const cases: Array<[SigningAlg, KeyObject, string]> = [
      ['RS256', ec256.privateKey, 'EC key for RS256'],
      ['PS256', signerRsa.publicKey, 'public key'],
      ['ES256', ec384.privateKey, 'P-384 key for ES256'],
      ['ES384', ec256.privateKey, 'P-256 key for ES384'],
      ['ES256', signerRsa.privateKey, 'RSA key for ES256'],
      ['EdDSA', keyPair('ed448').privateKey, 'Ed448 key for EdDSA'],
      ['EdDSA', keyPair('x25519').privateKey, 'X25519 key for EdDSA'],
      ['RS256', keyPair('rsa', { modulusLength: 1024 }).privateKey, 'RSA-1024'],
      ['HS256' as SigningAlg, signerRsa.privateKey, 'unknown alg'],
    ];
    for (const [alg, key, what] of cases) {
      throwsKeyError(() => signJwt({ sub: 'x' }, { alg, kid: 'k', key }), what);
      throwsKeyError(() => assertSigningKey(key, alg), what);
    }
    for (const s of SIGNERS) assert.doesNotThrow(() => assertSigningKey(s.signer.key, s.signer.alg));
  });

  test('assertSealingKey refuses keys that do not fit the alg, with SealerKeyError', () => {
    const cases: Array<[KeyObject, KeyManagementAlg, ContentEncryptionAlg, string]> = [
      [RSA_KIND.pair.publicKey, 'ECDH-ES', 'A256GCM', 'RSA key for ECDH-ES'],
      [RSA_KIND.pair.publicKey, 'ECDH-ES+A256KW', 'A256GCM', 'RSA key for ECDH-ES+A256KW'],
      [ec256.publicKey, 'RSA-OAEP', 'A256GCM', 'EC key for RSA-OAEP'],
      [ECDH_KINDS[3]!.pair.publicKey, 'RSA-OAEP-256', 'A256GCM', 'X25519 key for RSA-OAEP-256'],
      [keyPair('rsa', { modulusLength: 1024 }).publicKey, 'RSA-OAEP-256', 'A256GCM', 'RSA-1024'],
      [keyPair('x448').publicKey, 'ECDH-ES+A256KW', 'A256GCM', 'X448'],
      [keyPair('ed25519').publicKey, 'ECDH-ES', 'A256GCM', 'Ed25519'],
      [keyPair('ec', { namedCurve: 'secp256k1' }).publicKey, 'ECDH-ES+A128KW', 'A128GCM', 'secp256k1'],
      [ec256.privateKey, 'ECDH-ES+A256KW', 'A256GCM', 'a private key'],
      [ec256.publicKey, 'dir' as KeyManagementAlg, 'A256GCM', 'unknown alg'],
      [ec256.publicKey, 'ECDH-ES', 'A128CBC-HS256' as ContentEncryptionAlg, 'unknown enc'],
    ];
    for (const [key, alg, enc, what] of cases) {
      throwsKeyError(() => assertSealingKey(key, alg, enc), what);
      throwsKeyError(() => encryptCompact('x', { kid: 'k', alg, enc, key }), what);
    }
    for (const r of RECIPIENTS) for (const enc of ENCS) assert.doesNotThrow(() => assertSealingKey(r.kind.pair.publicKey, r.alg, enc));
  });

  test('defaultKeyManagementAlg: ECDH-ES+A256KW for EC and OKP, RSA-OAEP-256 for RSA', () => {
    for (const kind of ECDH_KINDS) assert.equal(defaultKeyManagementAlg(kind.pair.publicKey), 'ECDH-ES+A256KW');
    assert.equal(defaultKeyManagementAlg(RSA_KIND.pair.publicKey), 'RSA-OAEP-256');
  });
});

describe('token size', () => {
  const sizeOf = (alg: SigningAlg, r: RecipientCase) => Buffer.byteLength(sealAccessToken(typicalClaims(), signerFor(alg).signer, sealingKey(r, 'A256GCM')));
  const es256WithA256kw = () => sizeOf('ES256', recipientFor('ECDH-ES+A256KW', 'P-256'));

  test('bytes per algorithm pair, a user token with typical RFC 9068 claims, A256GCM, 16-character kids', (t) => {
    const algs = SIGNERS.map((s) => s.signer.alg);
    t.diagnostic(`${'recipient'.padEnd(30)}${algs.map((a) => a.padStart(7)).join('')}`);
    for (const r of RECIPIENTS) {
      t.diagnostic(`${`${r.alg} ${r.kind.label}`.padEnd(30)}${algs.map((a) => String(sizeOf(a, r)).padStart(7)).join('')}`);
    }
    // The claims are base64url-encoded twice (JWS, then JWE), so each claim byte costs about
    // 1.78 bytes; this budget catches any growth in headers or encoding.
    assert.ok(es256WithA256kw() <= 1300, `ES256 + ECDH-ES+A256KW/A256GCM: ${es256WithA256kw()} bytes`);
  });

  test('a client-credentials token (ES256 + ECDH-ES+A256KW/A256GCM, P-256) fits in 1,000 bytes', () => {
    const now = Math.floor(Date.now() / 1000);
    const clientId = randomBytes(16).toString('base64url');
    const claims = {
      iss: 'https://veil.example.com',
      sub: clientId,
      aud: 'https://api.example.com',
      client_id: clientId,
      iat: now,
      exp: now + 600,
      jti: randomBytes(16).toString('base64url'),
      scope: 'read write',
    };
    const size = Buffer.byteLength(sealAccessToken(claims, signerFor('ES256').signer, sealingKey(recipientFor('ECDH-ES+A256KW', 'P-256'), 'A256GCM')));
    assert.ok(size <= 1000, `${size} bytes`);
  });
});
