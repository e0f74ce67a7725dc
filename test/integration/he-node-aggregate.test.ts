/**
 * The SDK node's `aggregate()` against a real Veil (POST /he/aggregate): with at least k distinct
 * users' companion tokens the node gets the signed total (verified with jose: he-total+jwt, this
 * node, policy and claim) and it is right; with fewer than k, with a node that has no aggregation
 * policy, or with wrong credentials, the node gets a typed refusal and no total.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createPolicyNode, PolicyNodeError, type PolicyNode } from '@veil/resource-server';
import { HeWorld, type Node } from '../helpers/he-decisions.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const K = 3;
const LIMITS = [1200, 3400, 560, 78];

describe('policy node: aggregate through Veil', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let world: HeWorld;
  let analytics: Node;
  let stranger: Node;
  const companions: string[] = [];
  const nodeFor = (n: Node): PolicyNode => createPolicyNode({ issuer: veil.issuer, credentials: { clientId: n.clientId, clientSecret: n.secret } });

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores, { HE_KEY_BITS: '2048', HE_AGGREGATE_MIN_SUBJECTS: String(K) });
    world = await HeWorld.create(veil);
    analytics = await world.node('analytics job');
    stranger = await world.node('another node');
    await world.policy(analytics, { id: 'headroom-total', claim: 'spend_headroom', op: 'sum', kind: 'aggregate' });
    for (const limit of LIMITS) companions.push((await world.tokens(await world.user({ age: 30, spend_limit: limit }))).companion);
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  async function refusal(promise: Promise<unknown>): Promise<PolicyNodeError> {
    try {
      await promise;
    } catch (err) {
      assert.ok(err instanceof PolicyNodeError, String(err));
      return err;
    }
    assert.fail('expected a refusal');
  }

  test('fewer than k users: refused (access_denied), no total', async () => {
    const err = await refusal(nodeFor(analytics).aggregate({ policy: 'headroom-total', claim: 'spend_headroom', tokens: companions.slice(0, K - 1) }));
    assert.equal(err.code, 'refused');
    assert.equal(err.oauthError, 'access_denied');
  });

  test('a node without the aggregation policy, or with a wrong secret: refused', async () => {
    const other = await refusal(nodeFor(stranger).aggregate({ policy: 'headroom-total', claim: 'spend_headroom', tokens: companions }));
    assert.equal(other.oauthError, 'access_denied');
    const wrong = await refusal(
      createPolicyNode({ issuer: veil.issuer, credentials: { clientId: analytics.clientId, clientSecret: 'not the secret' } }).aggregate({
        policy: 'headroom-total',
        claim: 'spend_headroom',
        tokens: companions,
      }),
    );
    assert.equal(wrong.oauthError, 'invalid_client');
    const bad = await refusal(nodeFor(analytics).aggregate({ policy: 'headroom-total', claim: 'spend_headroom', tokens: ['', 'x'] }));
    assert.equal(bad.code, 'invalid_input');
  });

  test('k or more users: the signed total is right', async () => {
    const result = await nodeFor(analytics).aggregate({ policy: 'headroom-total', claim: 'spend_headroom', tokens: companions });
    assert.equal(result.count, LIMITS.length);
    assert.equal(result.total, BigInt(LIMITS.reduce((a, b) => a + b, 0)));
    assert.equal(typeof result.totalJwt, 'string');
  });
});
