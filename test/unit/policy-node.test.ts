/**
 * The SDK's policy node (packages/resource-server/src/policy-node.ts) against a stand-in of
 * Veil's decision endpoint that holds the Paillier secret key (test/helpers/he-stand-in.ts):
 * every op (gte, lte, gt, lt) on both sides of the threshold, equality, zero, negative values and
 * the largest threshold, with the private coin on and off; what goes to Veil (no threshold, a
 * commitment the node can open); an answer is used only when it is about exactly the query sent
 * (node, policy, jti, ct_hash, commitment, signature, expiry); refusals and outages are typed;
 * bad input never reaches Veil; answers are remembered per question.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import { createPolicyNode, PolicyNodeError, type PolicyNode, type PolicyNodeErrorCode, type PolicyOp } from '@veil/resource-server';
import { ciphertextToBase64url, encrypt, generateKeyPair, type PaillierPublicKey, type PaillierSecretKey } from '@veil/resource-server/paillier';
import { startHeStandIn, type HeStandIn } from '../helpers/he-stand-in.js';
import { generateSigner, type Signer } from '../helpers/sealed-tokens.js';

const NODE = { clientId: 'gate-node', clientSecret: 'node secret, not logged' };
const MAX = 2n ** 62n - 2n;

let signer: Signer;
let pk: PaillierPublicKey;
let sk: PaillierSecretKey;
let veil: HeStandIn;
let serial = 0;

/** A fresh "token" (its jti is its text) carrying Enc(x). */
function subject(x: bigint, key: PaillierPublicKey = pk) {
  const jti = `${key.kid}/jti-${++serial}`;
  return { token: jti, jti, exp: Math.floor(Date.now() / 1000) + 300, hec: { kid: key.kid, age: ciphertextToBase64url(key, encrypt(key, x)) } };
}

const truth = (op: PolicyOp, x: bigint, t: bigint) => (op === 'gte' ? x >= t : op === 'lte' ? x <= t : op === 'gt' ? x > t : x < t);

async function rejects(promise: Promise<unknown>, code: PolicyNodeErrorCode): Promise<PolicyNodeError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof PolicyNodeError, `expected a PolicyNodeError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

before(async () => {
  signer = await generateSigner('ES256');
  ({ publicKey: pk, secretKey: sk } = generateKeyPair(2048, 'he-test-1'));
  veil = await startHeStandIn({ signer, secretKeys: [sk], jtiOf: (token) => token });
  veil.clients.set(NODE.clientId, NODE.clientSecret);
});

after(() => veil.close());

const node = (extra: Partial<Parameters<typeof createPolicyNode>[0]> = {}): PolicyNode => createPolicyNode({ issuer: veil.url, credentials: NODE, ...extra });

describe('policy node: decisions', () => {
  test('every op on both sides of the threshold, equality, zero, negatives and the largest threshold, coin on and off', async () => {
    const pairs: Array<[bigint, bigint]> = [
      [34n, 18n],
      [16n, 18n],
      [18n, 18n],
      [0n, 0n],
      [0n, 1n],
      [-5n, -5n],
      [-7n, 3n],
      [MAX, MAX],
      [MAX - 1n, MAX],
      [-MAX, MAX],
      [MAX, -MAX],
    ];
    for (const coin of [false, true]) {
      const n = node({ coin: () => coin });
      for (const op of ['gte', 'lte', 'gt', 'lt'] as const) {
        for (const [x, t] of pairs) {
          // gt/lt move the threshold by one: keep it inside the accepted range.
          if ((op === 'gt' && t === MAX) || (op === 'lt' && t === -MAX)) continue;
          const proof = await n.decideWithProof({ ...subject(x), policy: 'age-gate', claim: 'age', op, threshold: t });
          assert.equal(proof.result, truth(op, x, t), `${op}(${x}, ${t}) with coin ${coin}`);
          assert.equal(proof.coin, coin);
          // What Veil decided is the blinded bit: the result itself only when the coin is off.
          assert.equal(veil.decrypted.at(-1)! >= 0n, coin ? !proof.result : proof.result);
        }
      }
    }
  });

  test("Veil gets the token, the policy, c' and a commitment: never the threshold; the node can open the commitment", async () => {
    const before = veil.calls.length;
    const s = subject(41n);
    const proof = await node().decideWithProof({ ...s, policy: 'age-gate', claim: 'age', op: 'gte', threshold: 987654 });
    assert.equal(proof.result, false);
    const call = veil.calls[before]!;
    assert.deepEqual(Object.keys(call.body).sort(), ['ciphertext', 'commitment', 'kid', 'policy', 'token']);
    assert.equal(call.body.kid, pk.kid);
    assert.equal(call.body.token, s.token);
    assert.ok(!JSON.stringify(call.body).includes('987654'));
    assert.notEqual(call.body.ciphertext, s.hec.age, "c' is a fresh ciphertext, not the token's");
    const opened = createHash('sha256')
      .update(Uint8Array.of(proof.coin ? 1 : 0))
      .update(Buffer.from(proof.nonce, 'base64url'))
      .digest('base64url');
    assert.equal(call.body.commitment, opened);
    assert.match(call.authorization ?? '', /^Basic /);
  });

  test('the same question twice (or at once) is one call to Veil; another threshold is another call', async () => {
    const n = node();
    const s = subject(20n);
    const before = veil.calls.length;
    const [a, b] = await Promise.all([
      n.decideWithProof({ ...s, policy: 'age-gate', claim: 'age', op: 'gte', threshold: 18 }),
      n.decideWithProof({ ...s, policy: 'age-gate', claim: 'age', op: 'gte', threshold: 18 }),
    ]);
    assert.equal(a.result, true);
    assert.equal(b.result, true);
    const again = await n.decideWithProof({ ...s, policy: 'age-gate', claim: 'age', op: 'gte', threshold: 18 });
    assert.equal(again.cached, true);
    assert.equal(veil.calls.length, before + 1);
    assert.equal(await n.decide({ ...s, policy: 'age-gate', claim: 'age', op: 'gte', threshold: 21 }), false);
    assert.equal(veil.calls.length, before + 2);
  });

  test("a companion hec+jwt token is verified against Veil's JWKS and its hec and jti used", async () => {
    const s = subject(70n);
    const companion = await new SignJWT({ jti: s.jti, hec: s.hec })
      .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: 'hec+jwt' })
      .setIssuer(veil.url)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(signer.privateKey);
    // The stand-in names the decision by the token's text: answer with the companion's jti.
    veil.tamper = (claims) => ({ ...claims, jti: s.jti });
    try {
      assert.equal(await node().decide({ hecToken: companion, policy: 'senior', claim: 'age', op: 'gte', threshold: 65 }), true);
    } finally {
      veil.tamper = undefined;
    }
    const notCompanion = await new SignJWT({ jti: s.jti, hec: s.hec })
      .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: 'at+jwt' })
      .setIssuer(veil.url)
      .setExpirationTime('5m')
      .sign(signer.privateKey);
    const before = veil.calls.length;
    await rejects(node().decide({ hecToken: notCompanion, policy: 'senior', claim: 'age', op: 'gte', threshold: 65 }), 'companion_invalid');
    const forged = await new SignJWT({ jti: s.jti, hec: s.hec })
      .setProtectedHeader({ alg: 'ES256', kid: signer.kid, typ: 'hec+jwt' })
      .setIssuer(veil.url)
      .setExpirationTime('5m')
      .sign((await generateSigner('ES256')).privateKey);
    await rejects(node().decide({ hecToken: forged, policy: 'senior', claim: 'age', op: 'gte', threshold: 65 }), 'companion_invalid');
    assert.equal(veil.calls.length, before, 'nothing was asked of Veil');
  });
});

describe('policy node: an answer is used only when it is about this query', () => {
  const cases: Array<[string, (c: Record<string, unknown>) => Record<string, unknown>]> = [
    ['another node', (c) => ({ ...c, node: 'someone-else' })],
    ['another policy', (c) => ({ ...c, policy: 'other' })],
    ['another token', (c) => ({ ...c, jti: 'jti-other' })],
    ['another ciphertext, for another node', (c) => ({ ...c, node: 'someone-else', ct_hash: createHash('sha256').update('x').digest('base64url') })],
    ['another commitment', (c) => ({ ...c, commitment: createHash('sha256').update('y').digest('base64url') })],
    ['no boolean ok', (c) => ({ ...c, ok: 'true' })],
    ['an expired answer', (c) => ({ ...c, exp: Math.floor(Date.now() / 1000) - 60 })],
  ];
  for (const [name, tamper] of cases) {
    test(name, async () => {
      veil.tamper = tamper;
      try {
        await rejects(node().decide({ ...subject(30n), policy: 'age-gate', claim: 'age', op: 'gte', threshold: 18 }), 'decision_invalid');
      } finally {
        veil.tamper = undefined;
      }
    });
  }

  test("Veil's earlier answer for this token and policy (another ciphertext) is already_decided, not read", async () => {
    veil.tamper = (c) => ({ ...c, ct_hash: createHash('sha256').update('the first query').digest('base64url') });
    try {
      await rejects(node().decide({ ...subject(30n), policy: 'spend', claim: 'age', op: 'gte', threshold: 18 }), 'already_decided');
    } finally {
      veil.tamper = undefined;
    }
  });

  test('signed by a key Veil does not publish', async () => {
    veil.signWith = await generateSigner('ES256');
    try {
      await rejects(node().decide({ ...subject(30n), policy: 'age-gate', claim: 'age', op: 'gte', threshold: 18 }), 'decision_invalid');
    } finally {
      veil.signWith = undefined;
    }
  });
});

describe('policy node: refusals, outages and bad input', () => {
  test("Veil's refusals keep its error code; 5xx and an unreachable Veil are unavailable", async () => {
    for (const [status, error] of [
      [401, 'invalid_token'],
      [403, 'access_denied'],
      [429, 'slow_down'],
    ] as const) {
      veil.override = { status, body: { error, error_description: 'x' } };
      try {
        const err = await rejects(node().decide({ ...subject(30n), policy: 'age-gate', claim: 'age', op: 'gte', threshold: 18 }), 'refused');
        assert.equal(err.oauthError, error);
        assert.equal(err.status, status);
        assert.equal(err.unavailable, false);
      } finally {
        veil.override = undefined;
      }
    }
    veil.override = { status: 503, body: { error: 'temporarily_unavailable' } };
    try {
      const err = await rejects(node().decide({ ...subject(30n), policy: 'age-gate', claim: 'age', op: 'gte', threshold: 18 }), 'veil_unavailable');
      assert.equal(err.unavailable, true);
    } finally {
      veil.override = undefined;
    }
    const wrong = createPolicyNode({ issuer: veil.url, credentials: { clientId: NODE.clientId, clientSecret: 'wrong' } });
    const err = await rejects(wrong.decide({ ...subject(30n), policy: 'age-gate', claim: 'age', op: 'gte', threshold: 18 }), 'refused');
    assert.equal(err.oauthError, 'invalid_client');
    const nowhere = createPolicyNode({ issuer: 'http://127.0.0.1:9', credentials: NODE });
    assert.equal((await rejects(nowhere.decide({ ...subject(30n), policy: 'age-gate', claim: 'age', op: 'gte', threshold: 18 }), 'discovery_failed')).unavailable, true);
    const keysGiven = createPolicyNode({ issuer: 'http://127.0.0.1:9', credentials: NODE, keys: { he: { keys: [] } } });
    await rejects(keysGiven.decide({ ...subject(30n), policy: 'age-gate', claim: 'age', op: 'gte', threshold: 18 }), 'he_key_unknown');
  });

  test('bad input is refused before anything is sent, and no message carries the threshold or the ciphertext', async () => {
    const n = node();
    const before = veil.calls.length;
    const s = subject(30n);
    const bad: Array<[Record<string, unknown>, PolicyNodeErrorCode]> = [
      [{ ...s, hec: { ...s.hec, age: `${s.hec.age.slice(0, -2)}` } }, 'invalid_input'],
      [{ ...s, hec: { ...s.hec, age: 'A'.repeat(s.hec.age.length) } }, 'invalid_input'],
      [{ ...s, hec: { kid: s.hec.kid } }, 'invalid_input'],
      [{ ...s, hec: { ...s.hec, kid: 'no-such-key' } }, 'he_key_unknown'],
      [{ ...s, threshold: 18.5 }, 'invalid_input'],
      [{ ...s, threshold: 2n ** 70n }, 'invalid_input'],
      [{ ...s, threshold: '18; drop' }, 'invalid_input'],
      [{ ...s, op: 'eq' }, 'invalid_input'],
      [{ ...s, jti: '' }, 'invalid_input'],
    ];
    for (const [input, code] of bad) {
      const err = await rejects(n.decide({ policy: 'age-gate', claim: 'age', op: 'gte', threshold: 424242, ...input } as never), code);
      assert.ok(!err.message.includes('424242') && !err.message.includes(s.hec.age.slice(0, 40)), err.message);
    }
    assert.equal(veil.calls.length, before);
  });

  test('an HE key set given to the node is used without fetching; a rotated key is fetched when a token names it', async () => {
    const { publicKey: pk2, secretKey: sk2 } = generateKeyPair(2048, 'he-test-2');
    const rotated = await startHeStandIn({ signer, secretKeys: [sk, sk2], jtiOf: (t) => t, kidOf: (t) => t.split('/')[0]! });
    rotated.clients.set(NODE.clientId, NODE.clientSecret);
    try {
      const n = createPolicyNode({ issuer: rotated.url, credentials: NODE });
      assert.equal(await n.decide({ ...subject(30n, pk), policy: 'p', claim: 'age', op: 'gte', threshold: 18 }), true);
      assert.equal(await n.decide({ ...subject(10n, pk2), policy: 'p', claim: 'age', op: 'gte', threshold: 18 }), false);
      assert.equal((await n.heKey('he-test-2')).n, pk2.n);
    } finally {
      await rotated.close();
    }
  });
});
