/**
 * The randomness pool (src/he/randomness-pool.ts, real worker threads) and the encryptor of `hec`
 * claims (src/he/he-encryptor.ts): every factor is a fresh n-th residue (it encrypts 0), none is
 * handed out twice, an empty pool makes a take wait for a worker (counted as a miss), a key
 * change fails the waiters of the old key, and the encryptor's ciphertexts decrypt to the values
 * under the active key, differ from token to token, and refuse values out of range.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  PLAINTEXT_BOUND,
  PaillierInputError,
  ciphertextFromBase64url,
  decrypt,
  generateKeyPair,
  type PaillierPublicKey,
  type PaillierSecretKey,
} from '@veil/resource-server/paillier';
import { HeEncryptor } from '../../src/he/he-encryptor.js';
import { HeKeyRing } from '../../src/he/he-keys.js';
import { RandomnessPool } from '../../src/he/randomness-pool.js';

type Keys = { publicKey: PaillierPublicKey; secretKey: PaillierSecretKey };
let a: Keys;
let b: Keys;

before(() => {
  a = generateKeyPair(2048, 'he-a');
  b = generateKeyPair(2048, 'he-b');
});

for (const mode of ['standard', 'short-exponent'] as const) {
  describe(`pool, ${mode} randomness`, () => {
    let pool: RandomnessPool;
    before(() => {
      pool = new RandomnessPool({ size: 8, workers: 2, mode });
      pool.use(a.secretKey);
    });
    after(async () => {
      await pool.close();
    });

    test('fresh n-th residues, never the same twice', async () => {
      await pool.warm(8);
      assert.equal(pool.stats().ready, 8);
      const factors = await Promise.all(Array.from({ length: 30 }, () => pool.take(a.publicKey)));
      assert.equal(new Set(factors).size, factors.length);
      for (const f of factors.slice(0, 6)) assert.equal(decrypt(a.secretKey, f), 0n);
      const stats = pool.stats();
      assert.ok(stats.misses >= 30 - 8 - 1, `takes beyond the pool waited for a worker (${stats.misses})`);
      assert.equal(stats.served, 30);
    });

    test('a take for another key than the active one is refused', async () => {
      await assert.rejects(pool.take(b.publicKey), /no randomness pool for HE key he-b/);
    });
  });
}

describe('pool of size 0', () => {
  test('every take waits for a worker and counts as a miss; a key change fails the waiters of the old key', async () => {
    const pool = new RandomnessPool({ size: 0, workers: 1, mode: 'standard' });
    try {
      pool.use(a.secretKey);
      const f = await pool.take(a.publicKey);
      assert.equal(decrypt(a.secretKey, f), 0n);
      assert.deepEqual(pool.stats(), { ready: 0, served: 1, misses: 1 });
      const waiting = Array.from({ length: 6 }, () => pool.take(a.publicKey));
      pool.use(b.secretKey);
      const outcomes = await Promise.allSettled(waiting);
      assert.ok(
        outcomes.some((o) => o.status === 'rejected'),
        'waiters of the old key fail',
      );
      for (const o of outcomes) if (o.status === 'fulfilled') assert.equal(decrypt(a.secretKey, o.value), 0n);
      assert.equal(decrypt(b.secretKey, await pool.take(b.publicKey)), 0n);
    } finally {
      await pool.close();
    }
    await assert.rejects(pool.take(b.publicKey), /closed/);
  });
});

describe('HeEncryptor', () => {
  let pool: RandomnessPool;
  let encryptor: HeEncryptor;
  before(() => {
    pool = new RandomnessPool({ size: 16, workers: 1, mode: 'standard' });
    pool.use(a.secretKey);
    const ring = new HeKeyRing([{ ...a, retired: false, dropAfter: undefined }], 'test');
    encryptor = new HeEncryptor(ring, pool);
  });
  after(async () => {
    await pool.close();
  });

  test('hec: the active kid and one base64url ciphertext per claim, decrypting to the value', async () => {
    const values = { age: 34n, spend_headroom: -125n, max: PLAINTEXT_BOUND - 1n };
    const hec = await encryptor.encrypt(values);
    assert.deepEqual(Object.keys(hec).sort(), ['age', 'kid', 'max', 'spend_headroom']);
    assert.equal(hec.kid, 'he-a');
    for (const [name, value] of Object.entries(values)) assert.equal(decrypt(a.secretKey, ciphertextFromBase64url(a.publicKey, hec[name]!)), value);
  });

  test('fresh randomness per token: the same values never give the same ciphertexts', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const hec = await encryptor.encrypt({ age: 34n, other: 34n });
      assert.notEqual(hec.age, hec.other);
      for (const c of [hec.age!, hec.other!]) {
        assert.ok(!seen.has(c));
        seen.add(c);
      }
    }
  });

  test('values outside ±2^62 and a claim named kid are refused', async () => {
    await assert.rejects(encryptor.encrypt({ age: PLAINTEXT_BOUND }), PaillierInputError);
    await assert.rejects(encryptor.encrypt({ age: -PLAINTEXT_BOUND }), PaillierInputError);
    await assert.rejects(encryptor.encrypt({ kid: 1n }), PaillierInputError);
    await assert.rejects(encryptor.encrypt({ age: 34 as unknown as bigint }), PaillierInputError);
  });
});
