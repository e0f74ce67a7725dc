/**
 * `POST /he/decide` (issue 10): a node registered for a decision policy sends c', the blinded
 * difference between a token's encrypted claim and its private threshold, and gets back only a
 * signed bit. Checked against real PostgreSQL and Redis, and in embedded mode (budgets in memory):
 *   - authorization: only the node with the policy is answered; another client, a public client,
 *     a resource server, no or wrong credentials, a node with a policy for another claim or kind
 *     are refused, and a refusal spends no budget and leaves no trace;
 *   - bad input: garbage base64, ciphertexts outside Z*_{n²}, unknown kid, revoked, expired or
 *     other-audience tokens: the protocol's error, never a 500, never a value;
 *   - budgets: one answer per (token, node, policy) (a repeat with another c' gets the first
 *     answer), a few per (user, claim, node) a day, a per-node rate; two concurrent requests
 *     for the last unit: exactly one wins;
 *   - the malicious node's binary search for an age is stopped by the budget (bits obtained stated);
 *   - Veil's view: no threshold in the request, identical (x, t) give different c', and with
 *     the private coin the bits Veil decrypts are balanced.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { blindedDifference, decrypt, encrypt, generateKeyPair } from '@veil/resource-server/paillier';
import { openSealed, revoke } from '../helpers/resource-servers.js';
import { ctHash, HeWorld, type IssuedTokens, type Node } from '../helpers/he-decisions.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const DECISION = 'he-decision+jwt';
type Audit = { events: Array<{ type: string; client_id: string | null; account_id: string | null; details: Record<string, unknown> }> };

for (const mode of ['redis', 'memory'] as const) {
  describe(`POST /he/decide (PostgreSQL, ${mode === 'redis' ? 'Redis' : 'in-process store'})`, () => {
    let stores: TestStores | undefined;
    let veil: TestVeil;
    let world: HeWorld;
    let gate: Node;
    let spender: Node;
    let stranger: Node;
    let alice: { email: string; password: string; id: string };
    let bob: { email: string; password: string; id: string };
    let carol: { email: string; password: string; id: string };

    const decisions = async () => (await veil.admin<Audit>('GET', '/admin/audit?since=1h&type=he.decided&limit=1000')).body.events;

    before(async () => {
      stores = mode === 'redis' ? await createTestStores() : undefined;
      veil = await startTestVeil(stores, { HE_DECISIONS_PER_SUBJECT_PER_DAY: '3', HE_KEY_BITS: '2048' });
      world = await HeWorld.create(veil);
      gate = await world.node('age gate');
      spender = await world.node('payments');
      stranger = await world.node('no policy');
      await world.policy(gate, { id: 'age-gate', claim: 'age', op: 'gte' });
      await world.policy(gate, { id: 'age-sum', claim: 'age', op: 'sum', kind: 'aggregate' });
      await world.policy(spender, { id: 'spend-check', claim: 'spend_headroom', op: 'gte' });
      alice = await world.user({ age: 34, spend_limit: 5000, spend_this_month: 1200 });
      bob = await world.user({ age: 16 });
      carol = await world.user({ age: 18 });
    });

    after(async () => {
      await veil?.stop();
      await stores?.cleanup();
    });

    async function ask(node: Node, tokens: IssuedTokens, t: number, extra: Record<string, unknown> = {}) {
      const ciphertext = world.query(tokens, 'age', BigInt(t));
      const res = await world.decide(node, { token: tokens.companion, policy: 'age-gate', ciphertext, ...extra });
      return { ...res, ciphertext };
    }

    test('the registered node gets a signed bit: 34 >= 18 yes, 16 >= 18 no, 18 >= 18 yes; nothing else in the answer', async () => {
      for (const [user, expected] of [
        [alice, true],
        [bob, false],
        [carol, true],
      ] as const) {
        const tokens = await world.tokens(user);
        const res = await ask(gate, tokens, 18, { commitment: 'c29tZS1jb21taXRtZW50' });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.deepEqual(Object.keys(res.body), ['decision']);
        const claims = await world.verify(res.body.decision!, DECISION);
        assert.deepEqual(
          { ...claims, iat: undefined },
          {
            iss: veil.issuer,
            iat: undefined,
            exp: tokens.exp,
            jti: tokens.jti,
            node: gate.clientId,
            policy: 'age-gate',
            ct_hash: ctHash(res.ciphertext),
            ok: expected,
            commitment: 'c29tZS1jb21taXRtZW50',
          },
        );
      }
    });

    test('the sealed access token (with its kid) and the inner JWS the API holds work as well as the companion', async () => {
      const tokens = await world.tokens(alice);
      const sealed = await world.decide(gate, { token: tokens.access, kid: tokens.hec.kid, policy: 'age-gate', ciphertext: world.query(tokens, 'age', 35n) });
      assert.equal(sealed.status, 200, JSON.stringify(sealed.body));
      assert.equal((await world.verify(sealed.body.decision!, DECISION)).ok, false);
      const other = await world.tokens(carol);
      const { inner } = await openSealed(other.access, world.rs.privateKey, veil.issuer, world.rs.identifier);
      const res = await world.decide(gate, { token: inner, policy: 'age-gate', ciphertext: world.query(other, 'age', 18n) });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal((await world.verify(res.body.decision!, DECISION)).ok, true);
    });

    test('authorization: every other party is refused, and a refusal spends nothing and records nothing', async () => {
      const tokens = await world.tokens(alice);
      const before = (await decisions()).length;
      const ciphertext = world.query(tokens, 'age', 18n);
      const body = { token: tokens.companion, policy: 'age-gate', ciphertext };
      const publicClient = await veil.admin<{ client: { client_id: string } }>('POST', '/admin/clients', {
        client_name: 'spa',
        public: true,
        redirect_uris: ['https://spa.he.test/cb'],
      });
      const refusals: Array<[string, () => Promise<{ status: number; body: { error?: string } }>, number, string]> = [
        ['no credentials', () => world.decide(undefined, body), 401, 'invalid_client'],
        ['a wrong secret', () => world.decide({ clientId: gate.clientId, secret: 'not-the-secret' }, body), 401, 'invalid_client'],
        ['the secret in the body, wrong', () => world.decide(undefined, { ...body, client_id: gate.clientId, client_secret: 'nope' }), 401, 'invalid_client'],
        ['a public client', () => world.decide(undefined, { ...body, client_id: publicClient.body.client.client_id }), 401, 'invalid_client'],
        ["the API's introspection credentials", () => world.decide({ clientId: world.rs.clientId, secret: world.rs.clientSecret }, body), 401, 'invalid_client'],
        ['a client without the policy', () => world.decide(stranger, body), 403, 'access_denied'],
        ["another node's policy", () => world.decide(spender, body), 403, 'access_denied'],
        ['an unknown policy', () => world.decide(gate, { ...body, policy: 'no-such-policy' }), 403, 'access_denied'],
        ['an aggregate policy at /he/decide', () => world.decide(gate, { ...body, policy: 'age-sum' }), 403, 'access_denied'],
        [
          'a policy for another claim (the token has no spend_headroom for bob)',
          async () => world.decide(spender, { ...body, token: (await world.tokens(bob)).companion, policy: 'spend-check' }),
          400,
          'invalid_token',
        ],
      ];
      for (const [what, call, status, error] of refusals) {
        const res = await call();
        assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.error, error, what);
        assert.ok(!('decision' in res.body), what);
      }
      assert.equal((await decisions()).length, before, 'no he.decided event for a refusal');
      // Nothing was spent: the token still gets its one answer, and alice's day still has its budget.
      const res = await ask(gate, tokens, 18);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal((await world.verify(res.body.decision!, DECISION)).ok, true);
    });

    test('bad input gets the protocol error, never a 500 and never a value', async () => {
      const tokens = await world.tokens(bob);
      const width = Math.ceil((world.pk.n2.toString(16).length + 1) / 2);
      const asCiphertext = (v: bigint) => Buffer.from(v.toString(16).padStart(width * 2, '0'), 'hex').toString('base64url');
      const good = world.query(tokens, 'age', 18n);
      const plain = await world.tokens(alice);
      const cases: Array<[string, Record<string, unknown>, number, string, string?]> = [
        ['garbage base64', { token: tokens.companion, policy: 'age-gate', ciphertext: '!!!not base64!!!' }, 400, 'invalid_request'],
        ['a short ciphertext', { token: tokens.companion, policy: 'age-gate', ciphertext: 'AAAA' }, 400, 'invalid_request'],
        ['zero', { token: tokens.companion, policy: 'age-gate', ciphertext: asCiphertext(0n) }, 400, 'invalid_request'],
        ['a multiple of n (not a unit)', { token: tokens.companion, policy: 'age-gate', ciphertext: asCiphertext(world.pk.n * 7n) }, 400, 'invalid_request'],
        ['n² − 1 + 1 = n² (out of range)', { token: tokens.companion, policy: 'age-gate', ciphertext: asCiphertext(world.pk.n2) }, 400, 'invalid_request'],
        ['all ones (above n²)', { token: tokens.companion, policy: 'age-gate', ciphertext: Buffer.alloc(width, 0xff).toString('base64url') }, 400, 'invalid_request'],
        ['an unknown kid', { token: tokens.access, kid: 'no-such-kid', policy: 'age-gate', ciphertext: good }, 400, 'invalid_request'],
        ['a kid that is not the companion’s', { token: tokens.companion, kid: 'other', policy: 'age-gate', ciphertext: good }, 400, 'invalid_request'],
        ['a forged companion', { token: `${tokens.companion.slice(0, -4)}AAAA`, policy: 'age-gate', ciphertext: good }, 400, 'invalid_token'],
        ['not a token', { token: 'hello', policy: 'age-gate', ciphertext: good }, 400, 'invalid_token'],
        ['a refresh token', { token: plain.refresh, policy: 'age-gate', ciphertext: good }, 400, 'invalid_token'],
        ['no ciphertext', { token: tokens.companion, policy: 'age-gate' }, 400, 'invalid_request'],
        ['a number as token', { token: 42, policy: 'age-gate', ciphertext: good }, 400, 'invalid_request'],
      ];
      for (const [what, body, status, error] of cases) {
        const res = await world.decide(gate, body);
        assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.error, error, what);
        assert.doesNotMatch(JSON.stringify(res.body), /\b16\b|\b34\b/, `${what}: no value in the answer`);
      }
      for (const raw of ['{not json', '[]', '"string"']) {
        const res = await world.decide(gate, {}, { raw });
        assert.equal(res.status === 400 || res.status === 401, true, `${raw}: ${res.status}`);
      }
      const form = await fetch(`${veil.issuer}/he/decide`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=x' });
      assert.equal(form.status, 400);
      assert.equal(((await form.json()) as { error: string }).error, 'invalid_request');
      const get = await fetch(`${veil.issuer}/he/decide`);
      assert.equal(get.status, 405);

      // Revoked by its client: no longer active.
      const revoked = await world.tokens(carol);
      assert.equal((await revoke(veil.issuer, { id: world.web.clientId, secret: world.web.clientSecret! }, revoked.access)).status, 200);
      const afterRevoke = await world.decide(gate, { token: revoked.companion, policy: 'age-gate', ciphertext: world.query(revoked, 'age', 18n) });
      assert.equal(afterRevoke.status, 400, JSON.stringify(afterRevoke.body));
      assert.equal(afterRevoke.body.error, 'invalid_token');
      // The good query still works after all of that (nothing was spent on bob's token).
      const ok = await world.decide(gate, { token: tokens.companion, policy: 'age-gate', ciphertext: good });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.ok(!veil.logs.join('\n').includes(good.slice(0, 40)), 'ciphertexts are not logged');
    });

    test('a token for an API without confidential claims, and an expired token, are refused', async () => {
      const short = 'https://short.he.test/api';
      const plainApi = 'https://plain.he.test/api';
      const { registerResourceServer } = await import('../helpers/resource-servers.js');
      await registerResourceServer(veil, { identifier: short, scopes: ['read'], ttl: 2, extra: { he_claims: ['age'] } });
      await registerResourceServer(veil, { identifier: plainApi, scopes: ['read'] });
      assert.equal(
        (
          await veil.admin('PATCH', `/admin/clients/${world.web.clientId}`, {
            resources: [world.rs.identifier, short, plainApi],
            resource_scopes: { [world.rs.identifier]: ['read'], [short]: ['read'], [plainApi]: ['read'] },
          })
        ).status,
        200,
      );
      const { httpAuthorizationCodeFlow } = await import('../helpers/http-flow.js');
      const plainTokens = await httpAuthorizationCodeFlow(world.web, alice, 'openid offline_access read', { resource: plainApi });
      const fake = world.query(await world.tokens(alice), 'age', 18n);
      const other = await world.decide(gate, { token: plainTokens.access_token, policy: 'age-gate', ciphertext: fake });
      assert.equal(other.status, 400, JSON.stringify(other.body));
      assert.equal(other.body.error, 'invalid_token');

      const body = (await httpAuthorizationCodeFlow(world.web, carol, 'openid offline_access read', { resource: short })) as unknown as Record<string, string>;
      assert.ok(body.hec_token);
      await new Promise((resolve) => setTimeout(resolve, 3100));
      const expired = await world.decide(gate, { token: body.hec_token, policy: 'age-gate', ciphertext: fake });
      assert.equal(expired.status, 400, JSON.stringify(expired.body));
      assert.equal(expired.body.error, 'invalid_token');
    });

    test('one answer per (token, node, policy): a repeat, with the same or another c′, gets the first answer', async () => {
      const tokens = await world.tokens(carol);
      const first = await ask(gate, tokens, 18);
      assert.equal(first.status, 200);
      const same = await world.decide(gate, { token: tokens.companion, policy: 'age-gate', ciphertext: first.ciphertext });
      assert.equal(same.body.decision, first.body.decision);
      // Another threshold (19: "no") gets the first answer back: its ct_hash names the first c′.
      const probe = await ask(gate, tokens, 19);
      assert.equal(probe.status, 200);
      assert.equal(probe.body.decision, first.body.decision);
      const claims = await world.verify(probe.body.decision!, DECISION);
      assert.equal(claims.ct_hash, ctHash(first.ciphertext));
      assert.notEqual(claims.ct_hash, ctHash(probe.ciphertext));
      assert.equal(claims.ok, true);
      const recorded = (await decisions()).filter((e) => e.account_id === carol.id && e.details.cached === true);
      assert.ok(recorded.length >= 2);
      assert.ok(recorded.every((e) => JSON.stringify(Object.keys(e.details).sort()) === '["cached","claim","policy"]'));
    });

    test('the daily budget per (user, claim, node): the fourth token of the day is refused; concurrent requests for the last unit: exactly one wins', async () => {
      const dave = await world.user({ age: 41 });
      let tokens = await world.tokens(dave);
      for (let i = 0; i < 2; i++) {
        assert.equal((await ask(gate, tokens, 18)).status, 200);
        tokens = await world.refreshed(tokens);
      }
      // One unit left; two different tokens of dave ask at once.
      const other = await world.refreshed(tokens);
      const raced = await Promise.all([ask(gate, tokens, 18), ask(gate, other, 18)]);
      assert.deepEqual(raced.map((r) => r.status).sort(), [200, 429], JSON.stringify(raced.map((r) => r.body)));
      const loser = raced.find((r) => r.status === 429)!;
      assert.equal(loser.body.error, 'slow_down');
      assert.ok(Number(loser.retryAfter) > 0 && Number(loser.retryAfter) <= 86400);
      const fourth = await ask(gate, await world.refreshed(other), 18);
      assert.equal(fourth.status, 429);
      // The budget is the node's: another node's policy over another claim is not affected.
      const spending = await world.tokens({ email: alice.email, password: alice.password });
      const spend = await world.decide(spender, { token: spending.companion, policy: 'spend-check', ciphertext: world.query(spending, 'spend_headroom', 3000n) });
      assert.equal(spend.status, 200, JSON.stringify(spend.body));
      assert.equal((await world.verify(spend.body.decision!, DECISION)).ok, true); // 5000 − 1200 >= 3000

      // The same token asked at once with two c′: one decryption, both get the same answer.
      const erin = await world.user({ age: 20 });
      const t = await world.tokens(erin);
      const both = await Promise.all([ask(gate, t, 18), ask(gate, t, 25)]);
      assert.deepEqual(
        both.map((r) => r.status),
        [200, 200],
        JSON.stringify(both.map((r) => r.body)),
      );
      assert.equal(both[0].body.decision, both[1].body.decision);
    });

    test("a malicious node's binary search for bob's age is stopped by the budget: 3 bits", async () => {
      // The node holds as many of bob's tokens as it likes (it is handed one per request) and
      // asks "age >= mid" to halve the interval [0, 150] each time.
      const victim = await world.user({ age: 16 });
      let tokens = await world.tokens(victim);
      let lo = 0;
      let hi = 150;
      let answered = 0;
      let refused = 0;
      while (lo < hi && refused < 5) {
        const mid = Math.ceil((lo + hi) / 2);
        const res = await ask(gate, tokens, mid);
        tokens = await world.refreshed(tokens);
        if (res.status !== 200) {
          assert.equal(res.status, 429);
          refused++;
          continue;
        }
        answered++;
        if ((await world.verify(res.body.decision!, DECISION)).ok) lo = mid;
        else hi = mid - 1;
      }
      const bits = Math.log2(151 / (hi - lo + 1));
      assert.equal(answered, 3, 'the budget allows exactly HE_DECISIONS_PER_SUBJECT_PER_DAY answers');
      assert.ok(lo <= 16 && 16 <= hi);
      assert.ok(hi - lo + 1 >= 18, `after 3 answers the age is known only to within ${hi - lo + 1} values`);
      assert.ok(bits <= 3.1, `${bits.toFixed(2)} bits`);
      console.log(`# malicious node: ${answered} answers, interval [${lo}, ${hi}] (${hi - lo + 1} of 151 values): ${bits.toFixed(2)} bits of the age obtained`);
    });

    test("Veil's view: no threshold in the request, identical (x, t) give different c′, and with the coin the bits are balanced", async () => {
      const tokens = await world.tokens(alice);
      const a = world.query(tokens, 'age', 18n);
      const b = world.query(tokens, 'age', 18n);
      assert.notEqual(a, b);
      // What the node sends: these fields, none of them the threshold.
      const body = { token: tokens.companion, policy: 'age-gate', ciphertext: a, commitment: 'AAAA' };
      assert.deepEqual(Object.keys(body).sort(), ['ciphertext', 'commitment', 'policy', 'token']);
      assert.ok(!JSON.stringify(body).includes('"18"') && !/[^A-Za-z0-9_-]18[^0-9]/.test(JSON.stringify(body)));

      // Veil's side, simulated with a key of our own (Veil decrypts and sees the sign): without
      // the coin the bit is the answer; with a fair private coin it is balanced whatever x and t.
      const { publicKey, secretKey } = generateKeyPair(2048, 'sim');
      const c = encrypt(publicKey, 34n);
      const rounds = 400;
      let plainYes = 0;
      let coinYes = 0;
      for (let i = 0; i < rounds; i++) {
        if (decrypt(secretKey, blindedDifference(publicKey, c, 18n)) >= 0n) plainYes++;
        const coin = Math.random() < 0.5;
        if (decrypt(secretKey, blindedDifference(publicKey, c, 18n, { negate: coin })) >= 0n) coinYes++;
      }
      assert.equal(plainYes, rounds);
      // Binomial(400, 1/2): mean 200, σ 10; 4σ either side.
      assert.ok(Math.abs(coinYes - rounds / 2) <= 40, `with the coin, Veil saw ${coinYes} of ${rounds} yes`);
      // And the decrypted magnitudes of identical (x, t) differ too (fresh r and s each time).
      const seen = new Set<bigint>();
      for (let i = 0; i < 20; i++) seen.add(decrypt(secretKey, blindedDifference(publicKey, c, 18n)));
      assert.equal(seen.size, 20);
    });
  });
}

describe('POST /he/decide: the per-node rate (embedded stores, 2 a minute)', () => {
  let veil: TestVeil;
  let world: HeWorld;

  before(async () => {
    veil = await startTestVeil(undefined, { HE_KEY_BITS: '2048', HE_DECISIONS_PER_NODE_PER_MINUTE: '2' });
    world = await HeWorld.create(veil);
  });

  after(async () => {
    await veil?.stop();
  });

  test('a node past its rate gets 429 slow_down (whatever the users); another node is served', async () => {
    const busy = await world.node('busy');
    const calm = await world.node('calm');
    await world.policy(busy, { id: 'busy-gate', claim: 'age', op: 'gte' });
    await world.policy(calm, { id: 'calm-gate', claim: 'age', op: 'gte' });
    const users = [await world.user({ age: 30 }), await world.user({ age: 31 }), await world.user({ age: 32 })];
    const tokens = await Promise.all(users.map((u) => world.tokens(u)));
    const ask = (node: Node, policy: string, t: IssuedTokens) => world.decide(node, { token: t.companion, policy, ciphertext: world.query(t, 'age', 18n) });
    assert.equal((await ask(busy, 'busy-gate', tokens[0]!)).status, 200);
    assert.equal((await ask(busy, 'busy-gate', tokens[1]!)).status, 200);
    const third = await ask(busy, 'busy-gate', tokens[2]!);
    assert.equal(third.status, 429, JSON.stringify(third.body));
    assert.equal(third.body.error, 'slow_down');
    assert.match(third.body.error_description!, /too many requests/);
    assert.ok(Number(third.retryAfter) >= 1 && Number(third.retryAfter) <= 60);
    const served = await ask(calm, 'calm-gate', tokens[2]!);
    assert.equal(served.status, 200, JSON.stringify(served.body));
  });
});
