/**
 * Veil's Paillier arithmetic (packages/resource-server/src/paillier.ts, imported through the
 * package's `./paillier` export) cross-checked against an independent implementation,
 * paillier-bigint: encryptions decrypt with the other side's key both ways, homomorphic
 * operations agree, the blinded comparison gives the right sign, bad input is refused with
 * PaillierInputError, and the self-test catches a broken modexp.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, describe, test } from 'node:test';
import * as reference from 'paillier-bigint';
import {
  PLAINTEXT_BOUND,
  PaillierInputError,
  PaillierSelfTestError,
  add,
  bitLength,
  blindedDifference,
  blindingBits,
  ciphertextFromBase64url,
  ciphertextToBase64url,
  decrypt,
  encrypt,
  gcd,
  generateKeyPair,
  generateKeyPairAsync,
  isCiphertext,
  keyPairFromPrimes,
  logUniformBlinding,
  modInverse,
  modPow,
  modPowBigint,
  multiplyPlain,
  publicJwk,
  publicKeyFromJwk,
  randomBelow,
  randomFactor,
  randomFactorCrt,
  randomFactorShort,
  rerandomize,
  selfTest,
  shortExponentBase,
  type PaillierPublicKey,
  type PaillierSecretKey,
} from '@veil/resource-server/paillier';

interface Pair {
  publicKey: PaillierPublicKey;
  secretKey: PaillierSecretKey;
  ref: { publicKey: reference.PublicKey; privateKey: reference.PrivateKey };
}

function referenceKeys(sk: PaillierSecretKey): Pair['ref'] {
  const { n, n2 } = sk.publicKey;
  const lambda = ((sk.p - 1n) * (sk.q - 1n)) / gcd(sk.p - 1n, sk.q - 1n);
  const g = n + 1n;
  const mu = modInverse((modPowBigint(g, lambda, n2) - 1n) / n, n);
  const publicKey = new reference.PublicKey(n, g);
  return { publicKey, privateKey: new reference.PrivateKey(lambda, mu, publicKey, sk.p, sk.q) };
}

const randomSigned = (bits: number): bigint => {
  const v = randomBelow(1n << BigInt(bits));
  return randomBytes(1)[0]! & 1 ? -v : v;
};
const modN = (m: bigint, n: bigint): bigint => ((m % n) + n) % n;

let k2048: Pair;
let k3072: Pair;

before(async () => {
  const a = generateKeyPair(2048, 'he-2048');
  const b = await generateKeyPairAsync(3072, 'he-3072');
  k2048 = { ...a, ref: referenceKeys(a.secretKey) };
  k3072 = { ...b, ref: referenceKeys(b.secretKey) };
});

describe('key generation', () => {
  test('n has exactly the requested size, p ≠ q, and the CRT data matches', () => {
    for (const [k, bits] of [
      [k2048, 2048],
      [k3072, 3072],
    ] as const) {
      assert.equal(k.publicKey.bits, bits);
      assert.equal(bitLength(k.publicKey.n), bits);
      assert.notEqual(k.secretKey.p, k.secretKey.q);
      assert.equal(k.secretKey.p * k.secretKey.q, k.publicKey.n);
      assert.equal(k.publicKey.n2, k.publicKey.n * k.publicKey.n);
      assert.equal(gcd(k.publicKey.n, (k.secretKey.p - 1n) * (k.secretKey.q - 1n)), 1n);
    }
  });

  test('a key rebuilt from its primes is the same key; mismatched primes are refused', () => {
    const again = keyPairFromPrimes(k2048.secretKey.p, k2048.secretKey.q, 'again');
    assert.equal(again.publicKey.n, k2048.publicKey.n);
    assert.equal(decrypt(again.secretKey, encrypt(k2048.publicKey, 42n)), 42n);
    assert.throws(() => keyPairFromPrimes(k2048.secretKey.p, k2048.secretKey.p, 'x'), PaillierInputError);
    assert.throws(() => keyPairFromPrimes(k2048.secretKey.p, k3072.secretKey.p, 'x'), RangeError);
  });

  test('only 2048 and 3072 bits', () => {
    assert.throws(() => generateKeyPair(1024 as 2048, 'x'), RangeError);
  });
});

describe('modPow (OpenSSL through the DH API) against square-and-multiply', () => {
  test('random vectors over n² and the CRT moduli, with edge cases', () => {
    const { n, n2 } = k2048.publicKey;
    const moduli = [n2, k2048.secretKey.p2, k3072.publicKey.n2];
    for (const m of moduli) {
      const w = bitLength(m);
      const cases: Array<[bigint, bigint]> = [
        [randomBelow(m), randomBelow(m)],
        [randomBelow(m), n],
        [randomBelow(m) + m, 3n], // base ≥ modulus
        [randomBelow(m) - 5n * m, 7n], // negative base
        [randomBelow(1n << 64n), randomBelow(1n << BigInt(w + 100))], // exponent wider than modulus
        [randomBelow(m) >> 40n, randomBelow(1n << 200n) >> 64n], // leading zero bytes
        [2n, 0n],
        [2n, 1n],
        [0n, 9n],
        [1n, 9n],
        [m - 1n, 9n],
        [m - 1n, 10n],
        [0n, 0n],
      ];
      for (const [b, e] of cases) assert.equal(modPow(b, e, m), modPowBigint(b, e, m), `${w}-bit modulus`);
    }
  });

  test('negative exponents use the inverse; a non-invertible base throws', () => {
    const { n2 } = k2048.publicKey;
    const b = randomFactor(k2048.publicKey);
    assert.equal((modPow(b, -5n, n2) * modPow(b, 5n, n2)) % n2, 1n);
    assert.throws(() => modPow(k2048.secretKey.p, -1n, n2), RangeError);
  });

  test('small and even moduli take the bigint path', () => {
    assert.equal(modPow(3n, 5n, 35n), 33n);
    assert.equal(modPow(3n, 7n, 1024n), 3n ** 7n % 1024n);
    assert.equal(modPow(3n, 7n, 1n), 0n);
  });
});

describe('selfTest', () => {
  test('passes with the real modexp', () => {
    selfTest();
  });

  test('detects a broken modexp', () => {
    const broken: Array<[string, (b: bigint, e: bigint, m: bigint) => bigint]> = [
      ['off by one on large moduli', (b, e, m) => (bitLength(m) > 1500 ? (modPow(b, e, m) + 1n) % m : modPow(b, e, m))],
      ['base not reduced', (b, e, m) => (b >= m ? modPow(b - 1n, e, m) : modPow(b, e, m))],
      ['exponent truncated to the modulus width', (b, e, m) => modPow(b, e & ((1n << BigInt(bitLength(m))) - 1n), m)],
      ['exponent 1 mishandled', (b, e, m) => (e === 1n ? 1n : modPow(b, e, m))],
      ['trailing zero byte dropped', (b, e, m) => modPow(b, e, m) >> 8n],
      ['negative exponent ignored', (b, e, m) => modPow(b, e < 0n ? -e : e, m)],
      ['identity', (b) => b],
    ];
    for (const [name, pow] of broken) assert.throws(() => selfTest(pow), PaillierSelfTestError, name);
  });
});

describe('encryption and decryption against paillier-bigint', () => {
  for (const bits of [2048, 3072] as const) {
    test(`${bits}: ours decrypts theirs and theirs decrypts ours`, () => {
      const k = bits === 2048 ? k2048 : k3072;
      const { n } = k.publicKey;
      const values = [0n, 1n, -1n, 34n, PLAINTEXT_BOUND - 1n, -(PLAINTEXT_BOUND - 1n), (n - 1n) / 2n, -((n - 1n) / 2n)];
      for (let i = 0; i < 6; i++) values.push(randomSigned(200));
      for (const m of values) {
        const ours = encrypt(k.publicKey, m);
        assert.ok(isCiphertext(k.publicKey, ours));
        assert.equal(k.ref.privateKey.decrypt(ours), modN(m, n));
        const theirs = k.ref.publicKey.encrypt(modN(m, n));
        assert.equal(decrypt(k.secretKey, theirs), m);
        assert.equal(decrypt(k.secretKey, ours), m);
      }
    });
  }

  test('the same value encrypts differently every time; a given factor reproduces paillier-bigint exactly', () => {
    const pk = k2048.publicKey;
    assert.notEqual(encrypt(pk, 7n), encrypt(pk, 7n));
    const rho = randomBelow(pk.n);
    const factor = modPow(rho, pk.n, pk.n2);
    assert.equal(encrypt(pk, 7n, factor), k2048.ref.publicKey.encrypt(7n, rho));
  });

  test('factors by CRT and short-exponent factors are n-th residues that decrypt right', () => {
    const pk = k2048.publicKey;
    const h = shortExponentBase(pk);
    for (const factor of [randomFactorCrt(k2048.secretKey), randomFactorShort(pk, h), randomFactor(pk)]) {
      // An n-th residue encrypts 0: both implementations agree.
      assert.equal(k2048.ref.privateKey.decrypt(factor), 0n);
      assert.equal(decrypt(k2048.secretKey, encrypt(pk, -99n, factor)), -99n);
    }
    assert.notEqual(randomFactorShort(pk, h), randomFactorShort(pk, h));
    assert.notEqual(randomFactorCrt(k2048.secretKey), randomFactorCrt(k2048.secretKey));
  });

  test('plaintexts outside (−n/2, n/2] are refused', () => {
    const pk = k2048.publicKey;
    assert.throws(() => encrypt(pk, (pk.n + 1n) / 2n), PaillierInputError);
    assert.throws(() => encrypt(pk, -((pk.n + 1n) / 2n)), PaillierInputError);
  });
});

describe('homomorphic operations against paillier-bigint', () => {
  test('add, multiplyPlain (incl. negative k), rerandomize', () => {
    const k = k2048;
    const pk = k.publicKey;
    for (let i = 0; i < 8; i++) {
      const x = randomSigned(100);
      const y = randomSigned(100);
      const kk = randomSigned(60);
      const cx = encrypt(pk, x);
      const cy = k.ref.publicKey.encrypt(modN(y, pk.n));
      assert.equal(decrypt(k.secretKey, add(pk, cx, cy)), x + y);
      assert.equal(add(pk, cx, cy), k.ref.publicKey.addition(cx, cy));
      assert.equal(decrypt(k.secretKey, multiplyPlain(pk, cx, kk)), x * kk);
      assert.equal(k.ref.privateKey.decrypt(multiplyPlain(pk, cx, kk)), modN(x * kk, pk.n));
      if (kk >= 0n) assert.equal(multiplyPlain(pk, cx, kk), k.ref.publicKey.multiply(cx, kk));
      const again = rerandomize(pk, cx);
      assert.notEqual(again, cx);
      assert.equal(decrypt(k.secretKey, again), x);
    }
    assert.equal(decrypt(k.secretKey, multiplyPlain(pk, encrypt(pk, 5n), -1n)), -5n);
    assert.equal(decrypt(k.secretKey, multiplyPlain(pk, encrypt(pk, 5n), 0n)), 0n);
  });
});

describe('blindedDifference', () => {
  let calls = 0;
  const sign = (k: Pair, x: bigint, t: bigint, negate: boolean, fresh = false): boolean => {
    // A fixed factor (1 = 1^n) keeps the many-pairs loop fast; fresh factors are used separately.
    // paillier-bigint (pure JavaScript, slow) encrypts and decrypts every eighth pair.
    const crossCheck = calls++ % 8 === 0;
    const c = crossCheck ? k.ref.publicKey.encrypt(modN(x, k.publicKey.n)) : encrypt(k.publicKey, x, 1n);
    const blinded = blindedDifference(k.publicKey, c, t, fresh ? { negate } : { negate, factor: 1n });
    const value = decrypt(k.secretKey, blinded);
    if (crossCheck) assert.equal(modN(value, k.publicKey.n), k.ref.privateKey.decrypt(blinded));
    return value >= 0n;
  };
  const max = PLAINTEXT_BOUND - 1n;

  test('the sign is x ≥ t (plain) and x < t (negated) over many random pairs, both key sizes', () => {
    for (const k of [k2048, k3072]) {
      const pairs: Array<[bigint, bigint]> = [
        [0n, 0n],
        [18n, 18n],
        [17n, 18n],
        [19n, 18n],
        [max, max],
        [max, -max],
        [-max, max],
        [-max, -max],
        [0n, max],
        [max, 0n],
        [-1n, 0n],
        [0n, -1n],
      ];
      const random = k === k2048 ? 120 : 30;
      for (let i = 0; i < random; i++) {
        const bits = 1 + (i % 62);
        const x = randomSigned(bits);
        pairs.push([x, i % 5 === 0 ? x : randomSigned(bits)]);
      }
      for (const [x, t] of pairs) {
        assert.equal(sign(k, x, t, false), x >= t, `x ${x >= t ? '≥' : '<'} t, plain`);
        assert.equal(sign(k, x, t, true), x < t, `x ${x >= t ? '≥' : '<'} t, negated`);
      }
    }
  });

  test('fresh re-randomisation: identical (x, t) give different ciphertexts, still the right sign', () => {
    const pk = k2048.publicKey;
    const c = encrypt(pk, 34n);
    assert.notEqual(blindedDifference(pk, c, 18n), blindedDifference(pk, c, 18n));
    assert.equal(sign(k2048, 34n, 18n, false, true), true);
    assert.equal(sign(k2048, 16n, 18n, true, true), true);
    assert.equal(sign(k2048, 16n, 18n, false, true), false);
  });

  test('the blinded value hides |x − t|: it is not the difference and varies in magnitude', () => {
    const pk = k2048.publicKey;
    const c = encrypt(pk, 1000n);
    const magnitudes = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const v = decrypt(k2048.secretKey, blindedDifference(pk, c, 10n, { factor: 1n }));
      assert.ok(v >= 990n);
      magnitudes.add(bitLength(v));
    }
    assert.ok(magnitudes.size > 10, 'magnitudes spread over many binades');
  });

  test('log-uniform r: every binade equally likely, r in [1, 2^K)', () => {
    const K = 40;
    const counts = new Array<number>(K).fill(0);
    const draws = 8000;
    for (let i = 0; i < draws; i++) {
      const r = logUniformBlinding(K);
      assert.ok(r >= 1n && r < 1n << BigInt(K));
      counts[bitLength(r) - 1]!++;
    }
    // Binades of r = ⌊2^U⌋ below 2^1 collapse to r = 1 for U < 1: bit length 1 covers U ∈ [0, 1).
    for (const c of counts) assert.ok(c > (draws / K) * 0.6 && c < (draws / K) * 1.4, `binade count ${c}`);
    assert.equal(blindingBits(k3072.publicKey), 3072 - 80);
  });

  test('thresholds beyond ±2^62 and non-ciphertexts are refused', () => {
    const pk = k2048.publicKey;
    const c = encrypt(pk, 1n);
    assert.throws(() => blindedDifference(pk, c, PLAINTEXT_BOUND), PaillierInputError);
    assert.throws(() => blindedDifference(pk, c, -PLAINTEXT_BOUND), PaillierInputError);
    assert.throws(() => blindedDifference(pk, pk.n, 1n), PaillierInputError);
    assert.throws(() => blindedDifference(pk, 0n, 1n), PaillierInputError);
  });
});

describe('ciphertext validation and wire format', () => {
  test('isCiphertext: Z*_{n²} only', () => {
    const { n, n2 } = k2048.publicKey;
    const pk = k2048.publicKey;
    assert.equal(isCiphertext(pk, 0n), false);
    assert.equal(isCiphertext(pk, n2), false);
    assert.equal(isCiphertext(pk, n2 + 1n), false);
    assert.equal(isCiphertext(pk, -1n), false);
    assert.equal(isCiphertext(pk, n), false);
    assert.equal(isCiphertext(pk, k2048.secretKey.p * 12345n), false);
    assert.equal(isCiphertext(pk, 1n), true);
    assert.throws(() => decrypt(k2048.secretKey, n * 3n), PaillierInputError);
    assert.throws(() => add(pk, n2, 1n), PaillierInputError);
    assert.throws(() => multiplyPlain(pk, 0n, 2n), PaillierInputError);
  });

  test('base64url is fixed width (byte length of n²) and round-trips', () => {
    for (const k of [k2048, k3072]) {
      const pk = k.publicKey;
      const width = Math.ceil(bitLength(pk.n2) / 8);
      for (const c of [1n, encrypt(pk, 5n), pk.n2 - 1n]) {
        const s = ciphertextToBase64url(pk, c);
        assert.equal(Buffer.from(s, 'base64url').length, width);
        assert.equal(ciphertextFromBase64url(pk, s), c);
      }
      assert.equal(ciphertextToBase64url(pk, encrypt(pk, 5n)).length, k === k2048 ? 683 : 1024);
    }
  });

  test('bad encodings are PaillierInputError', () => {
    const pk = k2048.publicKey;
    const good = ciphertextToBase64url(pk, encrypt(pk, 5n));
    const width = Math.ceil(bitLength(pk.n2) / 8);
    const enc = (v: bigint): string => Buffer.from(v.toString(16).padStart(width * 2, '0'), 'hex').toString('base64url');
    const bad: unknown[] = [
      '',
      good.slice(1),
      `${good}A`,
      `${good.slice(0, -1)}=`,
      good.replace(/.$/, '+'),
      `${good.slice(0, -2)}\n${good.slice(-1)}`,
      enc(0n),
      enc(pk.n),
      enc(pk.n * 7n),
      Buffer.alloc(width, 0xff).toString('base64url'), // ≥ n²
      42,
      null,
    ];
    for (const s of bad) assert.throws(() => ciphertextFromBase64url(pk, s as string), PaillierInputError, String(s).slice(0, 20));
    // Non-canonical trailing bits of the last base64url character.
    const last = good.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sibling = alphabet[(alphabet.indexOf(last) ^ 1) % 64]!;
    if (Buffer.from(good.slice(0, -1) + sibling, 'base64url').toString('base64url') !== good.slice(0, -1) + sibling) {
      assert.throws(() => ciphertextFromBase64url(pk, good.slice(0, -1) + sibling), PaillierInputError);
    }
  });
});

describe('public JWK', () => {
  test('round trip, documented members', () => {
    for (const k of [k2048, k3072]) {
      const jwk = publicJwk(k.publicKey);
      assert.deepEqual(Object.keys(jwk).sort(), ['alg', 'kid', 'kty', 'n', 'use']);
      assert.equal(jwk.kty, 'Paillier');
      assert.equal(jwk.use, 'he');
      assert.equal(jwk.alg, `Paillier-${k.publicKey.bits}`);
      const back = publicKeyFromJwk(JSON.parse(JSON.stringify(jwk)));
      assert.deepEqual(back, k.publicKey);
      // A ciphertext made with the parsed key decrypts with the original secret key.
      assert.equal(decrypt(k.secretKey, encrypt(back, -12n)), -12n);
    }
  });

  test('bad JWKs are PaillierInputError', () => {
    const jwk = publicJwk(k2048.publicKey);
    const n3072 = publicJwk(k3072.publicKey).n;
    const nBytes = Buffer.from(jwk.n, 'base64url');
    const even = Buffer.from(nBytes);
    even[even.length - 1]! &= 0xfe;
    const withSmallFactor = Buffer.from((3n * ((1n << 2046n) + 1n)).toString(16).padStart(512, '0'), 'hex');
    const bad: unknown[] = [
      null,
      'jwk',
      [jwk],
      { ...jwk, kty: 'RSA' },
      { ...jwk, kid: '' },
      { ...jwk, kid: 5 },
      { ...jwk, kid: 'x'.repeat(300) },
      { ...jwk, use: 'sig' },
      { ...jwk, alg: 'Paillier-1024' },
      { ...jwk, alg: 'Paillier-3072' },
      { ...jwk, n: n3072 },
      { ...jwk, n: undefined },
      { ...jwk, n: `${jwk.n}=` },
      { ...jwk, n: jwk.n.slice(2) },
      { ...jwk, n: Buffer.concat([Buffer.from([0]), nBytes.subarray(1)]).toString('base64url') },
      { ...jwk, n: even.toString('base64url') },
      { ...jwk, n: withSmallFactor.toString('base64url') },
    ];
    for (const b of bad) assert.throws(() => publicKeyFromJwk(b), PaillierInputError, JSON.stringify(b)?.slice(0, 60));
  });
});
