/**
 * `POST /he/aggregate` (issue 10): a node registered for an aggregation policy sends users'
 * companion tokens; Veil verifies each, checks each live, multiplies their ciphertexts itself
 * and answers a signed total only for at least k distinct users (HE_AGGREGATE_MIN_SUBJECTS),
 * each user counted at most once per node and claim within the window (so overlapping totals
 * cannot be subtracted), with optional discrete Laplace noise. Refusals record nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ciphertextFromBase64url, ciphertextToBase64url, encrypt } from '@veil/resource-server/paillier';
import { revoke } from '../helpers/resource-servers.js';
import { HeWorld, type IssuedTokens, type Node } from '../helpers/he-decisions.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const TOTAL = 'he-total+jwt';
type Audit = { events: Array<{ type: string; details: Record<string, unknown> }> };

describe('POST /he/aggregate (PostgreSQL, Redis; k = 10)', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let world: HeWorld;
  let analytics: Node;
  let gate: Node;
  const people: Array<{ age: number; tokens: IssuedTokens }> = [];

  const aggregates = async () => (await veil.admin<Audit>('GET', '/admin/audit?since=1h&type=he.aggregated')).body.events;
  const tokensOf = (from: number, to: number) => people.slice(from, to).map((p) => p.tokens.companion);
  /** A fresh token of person i (the rotated refresh token is kept). */
  const refresh = async (i: number) => (people[i]!.tokens = await world.refreshed(people[i]!.tokens));
  const ageSum = (from: number, to: number) => people.slice(from, to).reduce((s, p) => s + p.age, 0);

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores, { HE_KEY_BITS: '2048' });
    world = await HeWorld.create(veil);
    analytics = await world.node('analytics');
    gate = await world.node('gate');
    await world.policy(analytics, { id: 'age-sum', claim: 'age', op: 'sum', kind: 'aggregate' });
    await world.policy(gate, { id: 'age-gate', claim: 'age', op: 'gte' });
    for (let i = 0; i < 24; i++) {
      const age = 18 + ((i * 7) % 50);
      people.push({ age, tokens: await world.tokens(await world.user({ age })) });
    }
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  test('fewer than k distinct users: refused, nothing recorded; k users: the signed total is right', async () => {
    const nine = await world.aggregate(analytics, { policy: 'age-sum', claim: 'age', tokens: tokensOf(0, 9) });
    assert.equal(nine.status, 403, JSON.stringify(nine.body));
    assert.equal(nine.body.error, 'access_denied');
    assert.match(nine.body.error_description!, /at least 10 distinct users/);
    // Nine tokens and a second token of one of them: still nine users.
    const twice = await world.aggregate(analytics, { policy: 'age-sum', claim: 'age', tokens: [...tokensOf(0, 9), (await refresh(0)).companion] });
    assert.equal(twice.status, 400, JSON.stringify(twice.body));
    assert.match(twice.body.error_description!, /second token of one user/);
    assert.equal((await aggregates()).length, 0);

    const ten = await world.aggregate(analytics, { policy: 'age-sum', claim: 'age', tokens: tokensOf(0, 10) });
    assert.equal(ten.status, 200, JSON.stringify(ten.body));
    assert.deepEqual(Object.keys(ten.body), ['total']);
    const claims = await world.verify(ten.body.total!, TOTAL);
    assert.equal(claims.total, String(ageSum(0, 10)));
    assert.deepEqual(
      { node: claims.node, policy: claims.policy, claim: claims.claim, count: claims.count, noise: claims.noise },
      { node: analytics.clientId, policy: 'age-sum', claim: 'age', count: 10, noise: undefined },
    );
    assert.ok(typeof claims.exp === 'number' && claims.exp - Math.floor(Date.now() / 1000) <= 300);
    const events = await aggregates();
    assert.equal(events.length, 1);
    assert.deepEqual(events[0]!.details, { policy: 'age-sum', claim: 'age', count: 10 });
  });

  test('overlapping sets cannot be subtracted: a set with any user already counted is refused and records nothing', async () => {
    // sum(S ∪ {v}) − sum(S) would be v's age: with S = people[10..19] and v = people[0] (counted above).
    const overlapping = await world.aggregate(analytics, { policy: 'age-sum', claim: 'age', tokens: [...tokensOf(10, 19), (await refresh(0)).companion] });
    assert.equal(overlapping.status, 403, JSON.stringify(overlapping.body));
    assert.match(overlapping.body.error_description!, /already counted/);
    // people[10..19] were not recorded by the refusal: they still make a total.
    const fresh = await world.aggregate(analytics, { policy: 'age-sum', claim: 'age', tokens: tokensOf(10, 20) });
    assert.equal(fresh.status, 200, JSON.stringify(fresh.body));
    assert.equal((await world.verify(fresh.body.total!, TOTAL)).total, String(ageSum(10, 20)));
    // And now S without v again is refused too.
    const again = await world.aggregate(analytics, { policy: 'age-sum', claim: 'age', tokens: tokensOf(10, 20) });
    assert.equal(again.status, 403);
  });

  test('authorization: only the node with the aggregation policy, for its claim', async () => {
    const body = { policy: 'age-sum', claim: 'age', tokens: tokensOf(20, 24) };
    const publicClient = await veil.admin<{ client: { client_id: string } }>('POST', '/admin/clients', {
      client_name: 'spa',
      public: true,
      redirect_uris: ['https://spa.he.test/cb'],
    });
    const cases: Array<[string, Promise<{ status: number; body: { error?: string } }>, number, string]> = [
      ['no credentials', world.aggregate(undefined, body), 401, 'invalid_client'],
      ['a wrong secret', world.aggregate({ clientId: analytics.clientId, secret: 'wrong' }, body), 401, 'invalid_client'],
      ['a public client', world.aggregate(undefined, { ...body, client_id: publicClient.body.client.client_id }), 401, 'invalid_client'],
      ['another node', world.aggregate(gate, body), 403, 'access_denied'],
      ['a decision policy', world.aggregate(gate, { ...body, policy: 'age-gate' }), 403, 'access_denied'],
      ['another claim than the policy', world.aggregate(analytics, { ...body, claim: 'spend_headroom' }), 400, 'invalid_request'],
      ['no tokens', world.aggregate(analytics, { ...body, tokens: [] }), 400, 'invalid_request'],
    ];
    for (const [what, call, status, error] of cases) {
      const res = await call;
      assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error, error, what);
    }
    assert.equal((await aggregates()).length, 2, 'only the two totals above');
  });

  test("Veil sums the tokens' own ciphertexts: a tampered, sealed, revoked or garbage token is refused; nothing is recorded", async () => {
    const extra: Array<{ age: number; tokens: IssuedTokens }> = [];
    for (let i = 0; i < 6; i++) extra.push({ age: 30 + i, tokens: await world.tokens(await world.user({ age: 30 + i })) });
    const good = [...people.slice(20, 24), ...extra];
    const base = good.map((p) => p.tokens.companion);
    // A node that swaps a ciphertext for Enc(1000) breaks Veil's signature on the companion.
    const [h, p, s] = people[20]!.tokens.companion.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as { hec: Record<string, string> };
    claims.hec.age = ciphertextToBase64url(world.pk, encrypt(world.pk, 1000n));
    const tampered = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
    ciphertextFromBase64url(world.pk, claims.hec.age);
    const revokedTokens = await world.tokens(await world.user({ age: 44 }));
    assert.equal((await revoke(veil.issuer, { id: world.web.clientId, secret: world.web.clientSecret! }, revokedTokens.access)).status, 200);
    for (const [what, bad] of [
      ['tampered', tampered],
      ['sealed', people[21]!.tokens.access],
      ['revoked', revokedTokens.companion],
      ['garbage', 'x.y.z'],
    ] as const) {
      const res = await world.aggregate(analytics, { policy: 'age-sum', claim: 'age', tokens: [...base.slice(1), bad] });
      assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error, 'invalid_token', what);
      assert.ok(!('total' in res.body), what);
    }
    assert.equal((await aggregates()).length, 2);
    // None of those users was recorded: the ten together still make a total, and it is theirs.
    const res = await world.aggregate(analytics, { policy: 'age-sum', claim: 'age', tokens: base });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal((await world.verify(res.body.total!, TOTAL)).total, String(good.reduce((sum, p) => sum + p.age, 0)));
  });
});

describe('POST /he/aggregate with noise (embedded stores; k = 3, scale 2)', () => {
  let veil: TestVeil;
  let world: HeWorld;

  before(async () => {
    veil = await startTestVeil(undefined, { HE_KEY_BITS: '2048', HE_AGGREGATE_MIN_SUBJECTS: '3', HE_AGGREGATE_NOISE_SCALE: '2' });
    world = await HeWorld.create(veil);
  });

  after(async () => {
    await veil?.stop();
  });

  test('the total carries the mechanism and scale (never the noise drawn) and is within a few scales of the true sum', async () => {
    const node = await world.node('analytics');
    await world.policy(node, { id: 'headroom-sum', claim: 'spend_headroom', op: 'sum', kind: 'aggregate' });
    const tokens: string[] = [];
    let sum = 0;
    for (const [limit, spent] of [
      [5000, 1200],
      [800, 900],
      [10000, 0],
    ]) {
      tokens.push((await world.tokens(await world.user({ spend_limit: limit!, spend_this_month: spent! }))).companion);
      sum += limit! - spent!;
    }
    const res = await world.aggregate(node, { policy: 'headroom-sum', claim: 'spend_headroom', tokens });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const claims = await world.verify(res.body.total!, TOTAL);
    assert.deepEqual(claims.noise, { mechanism: 'discrete-laplace', scale: 2 });
    // P(|noise| > 60) at scale 2 is about e^-30.
    assert.ok(Math.abs(Number(claims.total) - sum) <= 60, `${String(claims.total)} vs ${sum}`);
    assert.equal(claims.count, 3);
  });
});
