/**
 * Issue 10, acceptance 1 at the arithmetic level: 10,000 random (x, t, op) cases, both
 * directions, with equality, zero, the largest values and negative differences. Two honest policy
 * nodes run in worker threads whose only inputs are Veil's public HE key set, a public signing
 * JWKS, the issuer URL and their own client credentials (checked: their workerData is exactly
 * that, with no private key member anywhere, and their environment is empty). They build c'
 * (the SDK's prepareQuery: op reduction, blinding, private coin) from Enc(x); this thread holds
 * the secret key, decrypts c' and hands back only the bit "c' >= 0"; the nodes un-flip it.
 * 10,000 calls through Veil's HTTP endpoint would be slow and are refused by design past the
 * per-user budgets, so the bulk runs here; he-partial-trust.test.ts runs decisions end to end.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { describe, test } from 'node:test';
import type { PolicyOp } from '@veil/resource-server';
import { ciphertextFromBase64url, ciphertextToBase64url, decrypt, encrypt, generateKeyPair, publicJwk, randomFactorShort, shortExponentBase } from '@veil/resource-server/paillier';
import { assertOnlyPublicInputs, NodeThread } from '../helpers/he-node-thread.js';
import { generateSigner } from '../helpers/sealed-tokens.js';

const OPS: readonly PolicyOp[] = ['gte', 'lte', 'gt', 'lt'];
/** The largest |x| and |t| the comparison takes (paillier.ts PLAINTEXT_BOUND, less the op's ±1). */
const MAX = 2n ** 62n - 2n;
const PAIRS = 10_000;

const truth = (op: PolicyOp, x: bigint, t: bigint) => (op === 'gte' ? x >= t : op === 'lte' ? x <= t : op === 'gt' ? x > t : x < t);

/** x or t: mostly small (ages, amounts), some at the extremes, some anywhere in range. */
function randomValue(): bigint {
  const pick = randomInt(10);
  if (pick < 5) return BigInt(randomInt(-200, 201));
  if (pick < 7) return [0n, MAX, -MAX, MAX - 1n, -MAX + 1n, 1n, -1n][randomInt(7)]!;
  const big = (BigInt(randomInt(2 ** 31)) << 31n) | BigInt(randomInt(2 ** 31));
  return randomInt(2) ? big : -big;
}

/** The arithmetic-level cases: a quarter equalities, differences of ±1, the rest random; every op. */
function arithmeticCases(count: number): Array<{ x: bigint; t: bigint; op: PolicyOp }> {
  const cases: Array<{ x: bigint; t: bigint; op: PolicyOp }> = [];
  // The corners first, each op: equality at zero and at both extremes, and the widest differences.
  for (const op of OPS) {
    for (const [x, t] of [
      [0n, 0n],
      [MAX, MAX],
      [-MAX, -MAX],
      [MAX, -MAX],
      [-MAX, MAX],
      [0n, 1n],
      [1n, 0n],
    ] as Array<[bigint, bigint]>) {
      if ((op === 'gt' && t === MAX) || (op === 'lt' && t === -MAX)) continue;
      cases.push({ x, t, op });
    }
  }
  while (cases.length < count) {
    const op = OPS[randomInt(4)]!;
    const x = randomValue();
    const kind = randomInt(4);
    let t = kind === 0 ? x : kind === 1 ? x + BigInt(randomInt(2) ? 1 : -1) : randomValue();
    if (t > MAX) t = MAX;
    if (t < -MAX) t = -MAX;
    if ((op === 'gt' && t === MAX) || (op === 'lt' && t === -MAX)) continue;
    cases.push({ x, t, op });
  }
  return cases;
}

describe('confidential claims, partial trust: nodes in worker threads with public keys and their own credentials only', () => {
  test(`arithmetic level: ${PAIRS} random (x, t, op) cases, both directions, equality, zero, extremes, negative differences, decided right by two honest nodes`, async () => {
    // The issuer thread (this one) holds the secret key; the nodes get the public half only.
    const { publicKey: pk, secretKey: sk } = generateKeyPair(2048, 'arith-he');
    const issuerBase = shortExponentBase(pk);
    const signer = await generateSigner('ES256');
    const credentials = [
      { clientId: 'node-a', secret: 'node a secret' },
      { clientId: 'node-b', secret: 'node b secret' },
    ];
    const nodes = credentials.map(
      (c) =>
        new NodeThread({
          issuer: 'https://issuer.invalid',
          credentials: { clientId: c.clientId, clientSecret: c.secret },
          heJwks: { keys: [publicJwk(pk)] },
          jwks: { keys: [signer.publicJwk] },
        }),
    );
    try {
      for (const [i, node] of nodes.entries()) assertOnlyPublicInputs(await node.ask({ type: 'inputs' }), credentials[i]!);
      const cases = arithmeticCases(PAIRS);
      const counts = { equal: 0, zero: 0, extreme: 0, negativeDifference: 0, yes: 0, no: 0 };
      let bitsSeenTrue = 0;
      const BATCH = 250;
      await Promise.all(
        nodes.map(async (node, n) => {
          for (let start = n * BATCH; start < cases.length; start += nodes.length * BATCH) {
            const batch = cases.slice(start, start + BATCH);
            const built = await node.ask<{ batch: number; ciphertexts: string[] }>({
              type: 'build',
              // The issuer encrypts as Veil's pool does with HE_RANDOMNESS=short-exponent.
              items: batch.map(({ x, t, op }) => ({ c: ciphertextToBase64url(pk, encrypt(pk, x, randomFactorShort(pk, issuerBase))), op, t: String(t) })),
            });
            // What the decrypting side sees: c' only, and it answers the sign bit only.
            const bits = built.ciphertexts.map((c) => decrypt(sk, ciphertextFromBase64url(pk, c)) >= 0n);
            bitsSeenTrue += bits.filter(Boolean).length;
            const { results } = await node.ask<{ results: boolean[] }>({ type: 'read', batch: built.batch, bits });
            batch.forEach(({ x, t, op }, i) => {
              assert.equal(results[i], truth(op, x, t), `${op}(${x}, ${t})`);
              if (x === t) counts.equal += 1;
              if (x === 0n || t === 0n) counts.zero += 1;
              if ([x, t].some((v) => v === MAX || v === -MAX)) counts.extreme += 1;
              if (x < t) counts.negativeDifference += 1;
              if (results[i]) counts.yes += 1;
              else counts.no += 1;
            });
          }
        }),
      );
      assert.equal(counts.yes + counts.no, PAIRS);
      // Both directions and every edge were exercised in numbers, not once.
      for (const [name, count] of Object.entries(counts)) assert.ok(count >= 100, `${name}: ${count}`);
      // The coin makes the bits the decrypting side sees balanced whatever the answers are.
      assert.ok(Math.abs(bitsSeenTrue / PAIRS - 0.5) < 0.03, `bits seen true: ${bitsSeenTrue} of ${PAIRS}`);
    } finally {
      await Promise.all(nodes.map((n) => n.stop()));
    }
  });
});
