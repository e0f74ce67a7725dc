/**
 * The state behind confidential-claim decisions (src/he/decisions/budgets.ts), on real Redis
 * and in process memory: the decision cache and the daily budget are claimed in one atomic
 * step (many concurrent claims for the last unit: exactly one is granted), a settled answer
 * comes back unchanged, and aggregates admit a set of users only if none was counted within the
 * window. Keys hold keyed hashes only: no account id, jti or client id appears in Redis.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { MemoryDecisionState, RedisDecisionState, type DecisionSlot, type DecisionState } from '../../src/he/decisions/budgets.js';
import { Envelope, generateMasterKey, parseMasterKeys } from '../../src/crypto/master-key.js';
import { envelopeAtRest } from '../../src/store/at-rest.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';

for (const mode of ['redis', 'memory'] as const) {
  describe(`decision state (${mode})`, () => {
    let stores: TestStores | undefined;
    let state: DecisionState;

    before(async () => {
      const atRest = envelopeAtRest(new Envelope(parseMasterKeys(generateMasterKey(), 'test')));
      if (mode === 'redis') {
        stores = await createTestStores();
        state = new RedisDecisionState(stores.redis, stores.keyPrefix, atRest);
      } else {
        state = new MemoryDecisionState(atRest);
      }
    });

    after(async () => {
      await stores?.cleanup();
    });

    const slot = (over: Partial<DecisionSlot> = {}): DecisionSlot => ({
      subject: randomUUID(),
      claim: 'age',
      node: 'node-1',
      policy: 'age-gate',
      jti: randomBytes(16).toString('base64url'),
      day: '2026-12-06',
      ...over,
    });

    test('granted once, then pending until settled, then the settled answer; a new token of the same user spends the next unit', async () => {
      const s = slot();
      assert.deepEqual(await state.claim(s, 2), { kind: 'granted' });
      assert.deepEqual(await state.claim(s, 2), { kind: 'pending' });
      await state.settle(s, 'decision-jwt-1', 60);
      assert.deepEqual(await state.claim(s, 2), { kind: 'cached', decision: 'decision-jwt-1' });
      const second = { ...s, jti: 'another-token' };
      assert.deepEqual(await state.claim(second, 2), { kind: 'granted' });
      assert.deepEqual(await state.claim({ ...s, jti: 'third-token' }, 2), { kind: 'spent' });
      // The cached answers stay available when the budget is spent.
      assert.deepEqual(await state.claim(s, 2), { kind: 'cached', decision: 'decision-jwt-1' });
      // Budgets are per (user, claim, node) and per day.
      assert.deepEqual(await state.claim({ ...s, jti: 'x', node: 'node-2' }, 2), { kind: 'granted' });
      assert.deepEqual(await state.claim({ ...s, jti: 'y', claim: 'spend_headroom' }, 2), { kind: 'granted' });
      assert.deepEqual(await state.claim({ ...s, jti: 'z', day: '2026-12-07' }, 2), { kind: 'granted' });
      assert.deepEqual(await state.claim({ ...s, jti: 'w', subject: randomUUID() }, 2), { kind: 'granted' });
    });

    test('50 concurrent claims by 50 tokens of one user for the last unit: exactly one is granted', async () => {
      const base = slot();
      assert.equal((await state.claim(base, 3)).kind, 'granted');
      assert.equal((await state.claim({ ...base, jti: 'second' }, 3)).kind, 'granted');
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => state.claim({ ...base, jti: `racer-${i}` }, 3)));
      assert.equal(results.filter((r) => r.kind === 'granted').length, 1);
      assert.equal(results.filter((r) => r.kind === 'spent').length, 49);
    });

    test('20 concurrent claims of one token: one granted, the others wait (pending)', async () => {
      const s = slot();
      const results = await Promise.all(Array.from({ length: 20 }, () => state.claim(s, 3)));
      assert.equal(results.filter((r) => r.kind === 'granted').length, 1);
      assert.equal(results.filter((r) => r.kind === 'pending').length, 19);
    });

    test('aggregates: a set is admitted only if none of its users was counted within the window, atomically', async () => {
      const users = Array.from({ length: 12 }, () => randomUUID());
      assert.equal(await state.admitSubjects('node-a', 'age', users.slice(0, 10), 3600), true);
      // Overlap by one user: refused, and the new users are not recorded.
      assert.equal(await state.admitSubjects('node-a', 'age', [users[9]!, users[10]!, users[11]!], 3600), false);
      assert.equal(await state.admitSubjects('node-a', 'age', [users[10]!, users[11]!], 3600), true);
      // Another node or claim counts separately.
      assert.equal(await state.admitSubjects('node-b', 'age', users.slice(0, 10), 3600), true);
      assert.equal(await state.admitSubjects('node-a', 'spend_headroom', users.slice(0, 10), 3600), true);
      // Concurrent overlapping sets: exactly one admitted.
      const fresh = Array.from({ length: 5 }, () => randomUUID());
      const raced = await Promise.all(Array.from({ length: 10 }, (_, i) => state.admitSubjects('node-c', 'age', [fresh[0]!, `${i}-${randomUUID()}`], 3600)));
      assert.equal(raced.filter(Boolean).length, 1);
      // After the window, a user may be counted again.
      const later = randomUUID();
      assert.equal(await state.admitSubjects('node-d', 'age', [later], 1), true);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      assert.equal(await state.admitSubjects('node-d', 'age', [later], 1), true);
    });

    if (mode === 'redis') {
      test('Redis holds keyed hashes and sealed answers: no account id, jti, client id or answer in plain', async () => {
        const s = slot({ node: 'node-visible-id', jti: 'jti-visible-value' });
        await state.claim(s, 3);
        await state.settle(s, 'decision-visible-jwt', 60);
        await state.admitSubjects('node-visible-id', 'age', [s.subject], 60);
        const keys = await stores!.redis.keys(`${stores!.keyPrefix}*`);
        assert.ok(keys.length > 0);
        const values = await Promise.all(
          keys.map(async (k) => ((await stores!.redis.type(k)) === 'string' ? String(await stores!.redis.get(k)) : JSON.stringify(await stores!.redis.zrange(k, 0, -1)))),
        );
        const dump = [...keys, ...values].join('\n');
        for (const plain of [s.subject, s.jti, s.node, 'decision-visible-jwt']) assert.ok(!dump.includes(plain), plain);
      });
    }
  });
}
