/**
 * The proof that a node's c' was blinded from the presented token's own ciphertext c
 * (paillier.ts proveBlinding / verifyBlinding, POST /he/decide's `proof`): honest proofs verify
 * over random (x, t, coin) at 2048 and 3072 bits, with and without Veil's CRT shortcut; the
 * witness is cross-checked against an independent modexp (bigint-crypto-utils, paillier-bigint's);
 * a c' built from another user's ciphertext, a tampered response, another context or a malformed
 * wire form fails; and the responses hide the coin (the signs of z1 and z2 are balanced).
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { before, describe, test } from 'node:test';
import * as bcu from 'bigint-crypto-utils';
import {
  PaillierInputError,
  blindedDifferenceWithWitness,
  blindingWitnessBits,
  decrypt,
  encrypt,
  generateKeyPair,
  generateKeyPairAsync,
  proofFromWire,
  proofToWire,
  proveBlinding,
  randomBelow,
  verifyBlinding,
  type BlindingProof,
  type PaillierPublicKey,
  type PaillierSecretKey,
} from '@veil/resource-server/paillier';

interface Keys {
  publicKey: PaillierPublicKey;
  secretKey: PaillierSecretKey;
}

let k2048: Keys;
let k3072: Keys;
before(async () => {
  k2048 = generateKeyPair(2048, 'proof-2048');
  k3072 = await generateKeyPairAsync(3072, 'proof-3072');
});

const context = ['jti-1', 'age-gate', 'gate-client'];
/** A claim or threshold anywhere in the comparison's range, with the edges often. */
const value = (): bigint => {
  const pick = randomInt(6);
  if (pick === 0) return 0n;
  if (pick === 1) return (1n << 62n) - 1n;
  if (pick === 2) return -((1n << 62n) - 1n);
  const v = randomBelow(1n << BigInt(randomInt(1, 62)));
  return randomInt(2) ? -v : v;
};

function honestRounds(keys: Keys, rounds: number): void {
  const { publicKey: pk, secretKey: sk } = keys;
  const n2 = pk.n2;
  for (let i = 0; i < rounds; i++) {
    const x = value();
    const t = i % 5 === 0 ? x : value();
    const negate = randomInt(2) === 1;
    const c = encrypt(pk, x);
    const { ciphertext, witness } = blindedDifferenceWithWitness(pk, c, t, { negate });
    // The witness, by an independent modexp: c' = c^a · (1+n)^u · ρ^n mod n².
    assert.ok(witness.rho !== undefined);
    const rebuilt = (bcu.modPow(c, witness.a, n2) * bcu.modPow(pk.n + 1n, bcu.toZn(witness.u, pk.n), n2) * bcu.modPow(witness.rho, pk.n, n2)) % n2;
    assert.equal(rebuilt, ciphertext);
    assert.equal(decrypt(sk, ciphertext) >= 0n, negate ? x < t : x >= t, `x=${x} t=${t} negate=${negate}`);
    const w = blindingWitnessBits(pk);
    assert.ok(bcu.bitLength(bcu.abs(witness.a)) <= w.a && bcu.bitLength(bcu.abs(witness.u)) <= w.u);
    const proof = proofFromWire(pk, proofToWire(pk, proveBlinding(pk, c, ciphertext, witness, context)));
    assert.equal(verifyBlinding(sk, c, ciphertext, proof, context), true, 'CRT verification');
    assert.equal(verifyBlinding(pk, c, ciphertext, proof, context), true, 'public verification');
  }
}

describe('honest proofs verify', () => {
  test('2048-bit key: 40 random (x, t, coin), equality and range edges included', () => honestRounds(k2048, 40));
  test('3072-bit key: 12 random (x, t, coin)', () => honestRounds(k3072, 12));
});

describe('what does not verify', () => {
  const setup = (keys: Keys) => {
    const { publicKey: pk } = keys;
    const c = encrypt(pk, 16n); // the presented token's claim (user U)
    const victim = encrypt(pk, 34n); // another user's (V)
    const honest = blindedDifferenceWithWitness(pk, c, 18n);
    const proof = proveBlinding(pk, c, honest.ciphertext, honest.witness, context);
    return { pk, sk: keys.secretKey, c, victim, honest, proof };
  };

  test("a c' built from another user's ciphertext fails against the presented token's", () => {
    for (const keys of [k2048, k3072]) {
      const { pk, sk, c, victim } = setup(keys);
      const aimed = blindedDifferenceWithWitness(pk, victim, 18n, { negate: true });
      // A valid proof about V's ciphertext, presented with U's token.
      const aboutVictim = proveBlinding(pk, victim, aimed.ciphertext, aimed.witness, context);
      assert.equal(verifyBlinding(sk, victim, aimed.ciphertext, aboutVictim, context), true);
      assert.equal(verifyBlinding(sk, c, aimed.ciphertext, aboutVictim, context), false);
      assert.equal(verifyBlinding(pk, c, aimed.ciphertext, aboutVictim, context), false);
      // The node's witness for V, claimed for U's c.
      assert.equal(verifyBlinding(sk, c, aimed.ciphertext, proveBlinding(pk, c, aimed.ciphertext, aimed.witness, context), context), false);
    }
  });

  test('a tampered response, another context, out-of-range or non-unit values fail (never throw)', () => {
    const { pk, sk, c, honest, proof } = setup(k2048);
    assert.equal(verifyBlinding(sk, c, honest.ciphertext, proof, context), true);
    const bad: Array<[string, BlindingProof]> = [
      ['e+1', { ...proof, e: proof.e ^ 1n }],
      ['z1+1', { ...proof, z1: proof.z1 + 1n }],
      ['z1 negated', { ...proof, z1: -proof.z1 }],
      ['z2-1', { ...proof, z2: proof.z2 - 1n }],
      ['z3+1', { ...proof, z3: (proof.z3 + 1n) % pk.n }],
      ['z3 = 0', { ...proof, z3: 0n }],
      ['z3 = n', { ...proof, z3: pk.n }],
      ['z3 = p', { ...proof, z3: k2048.secretKey.p }],
      ['z1 huge', { ...proof, z1: proof.z1 + (1n << 4096n) }],
      ['z2 huge', { ...proof, z2: -(1n << 4096n) }],
      ['e negative', { ...proof, e: -proof.e }],
      ['e too wide', { ...proof, e: proof.e + (1n << 128n) }],
    ];
    for (const [label, p] of bad) {
      assert.equal(verifyBlinding(sk, c, honest.ciphertext, p, context), false, label);
      assert.equal(verifyBlinding(pk, c, honest.ciphertext, p, context), false, label);
    }
    for (const other of [
      ['jti-2', 'age-gate', 'gate-client'],
      ['jti-1', 'other-policy', 'gate-client'],
      ['jti-1', 'age-gate', 'other-node'],
      ['jti-1', 'age-gate'],
    ]) {
      assert.equal(verifyBlinding(sk, c, honest.ciphertext, proof, other), false, other.join('|'));
    }
    // Another c' (same witness shape), or values outside Z*_{n²}.
    const second = blindedDifferenceWithWitness(pk, c, 18n);
    assert.equal(verifyBlinding(sk, c, second.ciphertext, proof, context), false);
    assert.equal(verifyBlinding(sk, c, 0n, proof, context), false);
    assert.equal(verifyBlinding(sk, c, pk.n2, proof, context), false);
    assert.equal(verifyBlinding(sk, c, pk.n, proof, context), false);
    assert.equal(verifyBlinding(sk, c, honest.ciphertext, { ...proof, z1: 'x' } as unknown as BlindingProof, context), false);
  });

  test('the prover refuses a witness without ρ or out of range', () => {
    const { pk, c, honest } = setup(k2048);
    assert.throws(() => proveBlinding(pk, c, honest.ciphertext, { ...honest.witness, rho: undefined }, context), PaillierInputError);
    assert.throws(() => proveBlinding(pk, c, honest.ciphertext, { ...honest.witness, a: 1n << 4000n }, context), PaillierInputError);
  });
});

describe('wire form', () => {
  test('fixed widths, round trip, malformed input refused with PaillierInputError', () => {
    for (const keys of [k2048, k3072]) {
      const { publicKey: pk } = keys;
      const c = encrypt(pk, 5n);
      const { ciphertext, witness } = blindedDifferenceWithWitness(pk, c, 3n);
      const proof = proveBlinding(pk, c, ciphertext, witness, context);
      const wire = proofToWire(pk, proof);
      assert.deepEqual(proofFromWire(pk, wire), proof);
      const bytes = [wire.e, wire.z1, wire.z2, wire.z3].reduce((sum, s) => sum + Buffer.from(s, 'base64url').length, 0);
      assert.equal(bytes, pk.bits === 2048 ? 826 : 1210);
      for (const field of ['e', 'z1', 'z2', 'z3'] as const) {
        assert.throws(() => proofFromWire(pk, { ...wire, [field]: undefined }), PaillierInputError, `${field} missing`);
        assert.throws(() => proofFromWire(pk, { ...wire, [field]: `${wire[field]}A` }), PaillierInputError, `${field} too long`);
        assert.throws(() => proofFromWire(pk, { ...wire, [field]: wire[field].slice(1) }), PaillierInputError, `${field} too short`);
        assert.throws(() => proofFromWire(pk, { ...wire, [field]: `+${wire[field].slice(1)}` }), PaillierInputError, `${field} not base64url`);
      }
      assert.throws(() => proofFromWire(pk, null), PaillierInputError);
      assert.throws(() => proofFromWire(pk, [wire]), PaillierInputError);
    }
  });
});

describe('zero knowledge (statistical): the responses hide the coin and t', () => {
  test('the signs of z1 and z2 are balanced whichever the coin', () => {
    const { publicKey: pk } = k2048;
    const c = encrypt(pk, 40n);
    const rounds = 100;
    for (const negate of [false, true]) {
      const { ciphertext, witness } = blindedDifferenceWithWitness(pk, c, 18n, { negate });
      let z1Positive = 0;
      let z2Positive = 0;
      for (let i = 0; i < rounds; i++) {
        const proof = proveBlinding(pk, c, ciphertext, witness, context);
        if (proof.z1 > 0n) z1Positive++;
        if (proof.z2 > 0n) z2Positive++;
      }
      // 4σ around rounds/2 (σ = 5): a leak of the witness's sign would put every z on one side.
      assert.ok(Math.abs(z1Positive - rounds / 2) <= 20, `negate=${negate}: ${z1Positive}/${rounds} z1 > 0`);
      assert.ok(Math.abs(z2Positive - rounds / 2) <= 20, `negate=${negate}: ${z2Positive}/${rounds} z2 > 0`);
    }
  });
});
