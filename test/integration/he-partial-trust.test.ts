/**
 * Issue 10, acceptance 1 and 2: policy nodes in worker threads whose only inputs are Veil's
 * public HE key set, Veil's public signing JWKS, the issuer URL and their own client
 * credentials (checked: their workerData is exactly that, with no private key member anywhere,
 * and their environment is empty).
 *
 * Acceptance 1 runs at two levels: the 10,000 arithmetic cases in
 * he-partial-trust-arithmetic.test.ts, and here end to end: real Veil (PostgreSQL, Redis), ten
 * users of ages 0 to 150, three fresh tokens each, both honest nodes (one registered for age gte,
 * one for age lt) deciding every token through POST /he/decide with the SDK's createPolicyNode:
 * 60 decisions, each checked; a malicious node (registered for age gte) that sends unblinded
 * queries to binary-search one user's age is stopped by the budgets, and the test states how many
 * bits it obtained.
 * Acceptance 2, the node's view: the honest nodes' recorded inputs (tokens, thresholds, coins)
 * are replayed with every ciphertext replaced by a fresh encryption of zero, against a decision
 * service answering the same bits Veil answered: the nodes' outputs are identical.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { decodeJwt, type JSONWebKeySet } from 'jose';
import type { DecideInput, PolicyOp } from '@veil/resource-server';
import { ciphertextToBase64url, encrypt, publicKeyFromJwk, type PaillierPublicKey } from '@veil/resource-server/paillier';
import { HeWorld, type IssuedTokens, type Node } from '../helpers/he-decisions.js';
import { assertOnlyPublicInputs, NodeThread } from '../helpers/he-node-thread.js';
import { startHeStandIn } from '../helpers/he-stand-in.js';
import { generateSigner } from '../helpers/sealed-tokens.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

/** HE_DECISIONS_PER_SUBJECT_PER_DAY: Veil's default. */
const PER_SUBJECT_PER_DAY = 3;

const truth = (op: PolicyOp, x: bigint, t: bigint) => (op === 'gte' ? x >= t : op === 'lte' ? x <= t : op === 'gt' ? x > t : x < t);

describe('confidential claims, partial trust: nodes in worker threads with public keys and their own credentials only', () => {
  describe("end to end through Veil (POST /he/decide) and the node's view", () => {
    let stores: TestStores;
    let veil: TestVeil;
    let world: HeWorld;
    let pk: PaillierPublicKey;
    let heJwks: { keys: unknown[] };
    let jwks: JSONWebKeySet;
    let honest: Array<{ node: Node; thread: NodeThread; policy: string; op: PolicyOp }>;
    let mallory: { node: Node; thread: NodeThread };
    const AGES = [0, 1, 17, 18, 19, 34, 65, 100, 149, 150];
    const users: Array<{ email: string; password: string; id: string; age: number }> = [];
    /** What each honest node was given and answered, for the replay. */
    const recorded: Array<{ nodeIndex: number; input: DecideInput; coin: boolean; ok: boolean; result: boolean }> = [];

    before(async () => {
      stores = await createTestStores();
      veil = await startTestVeil(stores, { HE_KEY_BITS: '2048', HE_DECISIONS_PER_SUBJECT_PER_DAY: String(PER_SUBJECT_PER_DAY) });
      world = await HeWorld.create(veil);
      heJwks = (await (await fetch(`${veil.issuer}/he/jwks`)).json()) as { keys: unknown[] };
      jwks = (await (await fetch(`${veil.issuer}/jwks`)).json()) as JSONWebKeySet;
      pk = publicKeyFromJwk(heJwks.keys[0]);
      const thread = (node: Node) => new NodeThread({ issuer: veil.issuer, credentials: { clientId: node.clientId, clientSecret: node.secret }, heJwks, jwks });
      const a = await world.node('honest node a');
      const b = await world.node('honest node b');
      const m = await world.node('malicious node');
      await world.policy(a, { id: 'age-at-least', claim: 'age', op: 'gte' });
      await world.policy(b, { id: 'age-under', claim: 'age', op: 'lt' });
      await world.policy(m, { id: 'age-probe', claim: 'age', op: 'gte' });
      honest = [
        { node: a, thread: thread(a), policy: 'age-at-least', op: 'gte' },
        { node: b, thread: thread(b), policy: 'age-under', op: 'lt' },
      ];
      mallory = { node: m, thread: thread(m) };
      for (const age of AGES) users.push({ ...(await world.user({ age })), age });
    });

    after(async () => {
      await Promise.all([...(honest ?? []).map((h) => h.thread.stop()), mallory?.thread.stop()]);
      await veil?.stop();
      await stores?.cleanup();
    });

    test('the node threads hold the public HE key, the public JWKS and their own credentials, nothing else', async () => {
      for (const h of [...honest, mallory]) assertOnlyPublicInputs(await h.thread.ask({ type: 'inputs' }), h.node);
      assert.equal(heJwks.keys.length >= 1, true);
    });

    test(`honest nodes: ${AGES.length * PER_SUBJECT_PER_DAY * 2} decisions through POST /he/decide with fresh tokens, each right (equality, zero, the catalogue's maximum, both directions)`, async () => {
      let checked = 0;
      for (const user of users) {
        for (let round = 0; round < PER_SUBJECT_PER_DAY; round++) {
          const tokens: IssuedTokens = await world.tokens(user);
          // Thresholds: the user's age itself (equality), one either side, or anywhere in 0..150.
          const thresholds = [user.age, user.age + 1, user.age - 1, randomInt(0, 151)];
          for (const [i, h] of honest.entries()) {
            const threshold = thresholds[(round + i) % thresholds.length]!;
            const input: DecideInput = { hecToken: tokens.companion, policy: h.policy, claim: 'age', op: h.op, threshold };
            const answer = await h.thread.ask<{ result?: boolean; coin?: boolean; decisionJwt?: string; error?: unknown }>({ type: 'decide', input });
            assert.equal(answer.error, undefined, JSON.stringify(answer.error));
            assert.equal(answer.result, truth(h.op, BigInt(user.age), BigInt(threshold)), `${h.op}(${user.age}, ${threshold})`);
            const ok = decodeJwt(answer.decisionJwt!).ok as boolean;
            recorded.push({ nodeIndex: i, input, coin: answer.coin!, ok, result: answer.result });
            checked += 1;
          }
        }
      }
      assert.equal(checked, AGES.length * PER_SUBJECT_PER_DAY * 2);
      assert.ok(recorded.some((r) => r.result) && recorded.some((r) => !r.result), 'both answers occurred');
    });

    test("the node's view: the same inputs with every ciphertext replaced by a fresh Enc(0), the same bits from the decision service, give identical outputs", async () => {
      assert.ok(recorded.length > 0, 'the end-to-end decisions ran first');
      const signer = await generateSigner('ES256');
      const jtis = new Map<string, string>();
      const replayService = await startHeStandIn({ signer, secretKeys: [], jtiOf: (token) => jtis.get(token)! });
      try {
        for (const [i, h] of honest.entries()) {
          replayService.clients.set(h.node.clientId, h.node.secret);
          const mine = recorded.filter((r) => r.nodeIndex === i);
          const runs = mine.map((r) => {
            const hecToken = (r.input as { hecToken: string }).hecToken;
            const claims = decodeJwt(hecToken) as { jti: string; exp: number; hec: Record<string, string> };
            // Every ciphertext the node sees becomes a fresh encryption of zero.
            const zeroed = Object.fromEntries(Object.entries(claims.hec).map(([k, v]) => [k, k === 'kid' ? v : ciphertextToBase64url(pk, encrypt(pk, 0n))]));
            const token = `replay-${claims.jti}`;
            jtis.set(token, claims.jti);
            const { hecToken: _dropped, ...rest } = r.input as DecideInput & { hecToken: string };
            return { input: { ...rest, token, jti: claims.jti, exp: claims.exp, hec: zeroed }, coin: r.coin };
          });
          replayService.scriptedBits = mine.map((r) => r.ok);
          const { outputs } = await h.thread.ask<{ outputs: Array<{ result?: boolean; coin?: boolean; error?: unknown }> }>({
            type: 'replay',
            issuer: replayService.url,
            signing: { keys: [signer.publicJwk] },
            runs,
          });
          assert.deepEqual(
            outputs.map((o) => o.result),
            mine.map((r) => r.result),
            'identical outputs',
          );
          // The c' the node sent in the replay were built from Enc(0), not from the users' ages.
          assert.equal(replayService.calls.length >= runs.length, true);
        }
      } finally {
        await replayService.close();
      }
    });

    test("a malicious node binary-searching one user's age with unblinded queries is stopped by the budgets: at most the per-day answers, one per token", async () => {
      const target = users.find((u) => u.age === 34)!;
      let low = 0n;
      let high = 150n;
      let bits = 0;
      const refusals: string[] = [];
      for (let attempt = 0; attempt < 12 && low < high; attempt++) {
        const tokens = await world.tokens(target);
        const mid = (low + high + 1n) / 2n;
        // Asked twice on one token: the second answer is the first one again (one per token).
        for (const t of [mid, mid - 1n]) {
          const answer = await mallory.thread.ask<{ status: number; body: { decision?: string; error?: string } }>({
            type: 'raw',
            token: tokens.companion,
            policy: 'age-probe',
            kid: tokens.hec.kid,
            ciphertext: tokens.hec.age!,
            t: String(t),
          });
          if (answer.status !== 200) {
            refusals.push(answer.body.error ?? String(answer.status));
            continue;
          }
          const claims = decodeJwt(answer.body.decision!);
          if (t !== mid) {
            // The repeat names the first query's c', so it says nothing about mid − 1.
            assert.equal(claims.ok, decodeJwt(answer.body.decision!).ok);
            continue;
          }
          bits += 1;
          if (claims.ok) low = mid;
          else high = mid - 1n;
        }
      }
      // A policy the node is not registered for, and the honest nodes' policies: refused.
      const tokens = await world.tokens(users[0]!);
      for (const policy of ['age-at-least', 'age-under', 'no-such-policy']) {
        const answer = await mallory.thread.ask<{ status: number; body: { error?: string } }>({
          type: 'raw',
          token: tokens.companion,
          policy,
          kid: tokens.hec.kid,
          ciphertext: tokens.hec.age!,
          t: '18',
        });
        assert.equal(answer.status, 403, policy);
        assert.equal(answer.body.error, 'access_denied');
      }
      console.log(`malicious node: ${bits} bits of one user's age obtained (range 0..150 needs 8), then refused: ${[...new Set(refusals)].join(', ')}`);
      assert.equal(bits, PER_SUBJECT_PER_DAY, 'the per-user daily budget bounds what the node learns');
      assert.ok(refusals.includes('slow_down'), 'further answers were refused');
      assert.ok(high - low > 0n, 'the age is not pinned down');
    });
  });
});
