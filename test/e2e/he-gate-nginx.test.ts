/**
 * Issue 10, acceptance 5: confidential-claim route rules end to end, through Debian's nginx
 * (docs/gateway/nginx.conf itself) and Veil Gate in front of an upstream that echoes what it
 * receives, with a real Veil (PostgreSQL, Redis) issuing tokens whose `hec` claim carries the
 * users' age and spending headroom encrypted under Veil's Paillier key.
 *
 * A route requiring `age >= 18` admits a 34-year-old's token and refuses a 16-year-old's with 403;
 * the gate (which opens the token with the API's key), the upstream and every log (the gate's,
 * nginx's access and error logs, Veil's) never carry either age. A spending route admits an
 * amount within the user's headroom (from a header, or from a query parameter) and refuses one
 * above it; a missing or malformed amount is the gate's 400 (nginx turns any answer but 2xx, 401
 * and 403 into its 503); a revoked token is 401; Veil unreachable is 503 (fail closed).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { exportJWK } from 'jose';
import { HE_API, HeWorld, type IssuedTokens, type Node } from '../helpers/he-decisions.js';
import { startEchoUpstream, type EchoUpstream } from '../helpers/echo-upstream.js';
import { gatewayCheck, startTestGate, writeSecret, type TestGate } from '../helpers/gate.js';
import { startGatewayNginx, type RunningNginx } from '../helpers/nginx.js';
import { openSealed, revoke } from '../helpers/resource-servers.js';
import { rememberSecret } from '../helpers/secrets.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const HOST = 'shop.he.test';
const ADULT_AGE = 34;
const TEEN_AGE = 16;
/** The adult's spend_limit and spend_this_month: headroom 3,800 (minor units). */
const LIMIT = 5000;
const SPENT = 1200;
const HEADROOM = LIMIT - SPENT;

interface Answer {
  status: number;
  body: string;
}

function call(base: string, target: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${target}`, { agent: false, headers: { host: HOST, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/**
 * Where an age could show up in captured text: as a JSON value (number or string) of any key, a
 * `key=value` or `key: value` pair, or a header value on its own. Digits inside longer numbers
 * (timestamps, ports, lengths such as 134 or 1600) do not match.
 */
function ageMentions(text: string, ages: readonly number[]): string[] {
  const hits: string[] = [];
  for (const age of ages) {
    // After a key (a letter, `_`, a quote or `]` then `:` or `=`), so "22:13:16" in a timestamp is not one.
    const re = new RegExp(`(?<=[A-Za-z_"'\\]])\\s*[:=]\\s*\\[?\\s*"?${age}(?![\\d.])|\\bage\\b[^\\n]{0,12}?\\b${age}\\b`, 'g');
    for (const m of text.matchAll(re)) hits.push(text.slice(Math.max(0, m.index - 40), m.index + m[0].length + 10));
  }
  return hits;
}

describe('confidential claims through nginx and Veil Gate: age and spending rules decided on encrypted claims', () => {
  let stores: TestStores;
  let veil: TestVeil | undefined;
  let world: HeWorld;
  let gateNode: Node;
  let gate: TestGate;
  let nginx: RunningNginx;
  let upstream: EchoUpstream;
  let dir: string;
  let adult: { email: string; password: string; id: string };
  let teen: { email: string; password: string; id: string };
  /** Headroom 1,000: for the one-amount-per-token case. */
  let spender: { email: string; password: string; id: string };

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores, { HE_KEY_BITS: '2048' });
    world = await HeWorld.create(veil);
    adult = await world.user({ age: ADULT_AGE, spend_limit: LIMIT, spend_this_month: SPENT });
    teen = await world.user({ age: TEEN_AGE, spend_limit: 100 });
    spender = await world.user({ age: 40, spend_limit: 1000 });
    // The gate's own client at Veil: the node the policies are registered for.
    gateNode = await world.node('veil gate');
    await world.policy(gateNode, { id: 'age-gate', claim: 'age', op: 'gte' });
    await world.policy(gateNode, { id: 'spend', claim: 'spend_headroom', op: 'gte' });

    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-he-gate-'));
    const privateJwk = { ...(await exportJWK(world.rs.privateKey)), kid: world.rs.publicJwk.kid, use: 'enc' };
    rememberSecret(privateJwk.d, 'API private key');
    await fs.writeFile(path.join(dir, 'api-enc.private.jwk.json'), JSON.stringify(privateJwk), { mode: 0o600 });
    await writeSecret(dir, 'gate-client.secret', gateNode.secret);
    upstream = await startEchoUpstream();
    gate = await startTestGate(dir, {
      issuer: veil.issuer,
      audiences: [{ identifier: HE_API, decryptionKeys: ['api-enc.private.jwk.json'] }],
      client: { id: gateNode.clientId, secretFile: 'gate-client.secret' },
      routes: [
        { name: 'adults', host: HOST, path: '/adults', audience: HE_API, headers: { sub: 'X-User' }, require: [{ policy: 'age-gate', claim: 'age', op: 'gte', value: 18 }] },
        {
          name: 'pay',
          host: HOST,
          path: '/pay',
          methods: ['GET', 'POST'],
          audience: HE_API,
          headers: { sub: 'X-User' },
          require: [{ policy: 'spend', claim: 'spend_headroom', op: 'gte', amountFrom: { header: 'x-amount' } }],
        },
        { name: 'checkout', host: HOST, path: '/checkout', audience: HE_API, require: [{ policy: 'spend', claim: 'spend_headroom', op: 'gte', amountFrom: { query: 'amount' } }] },
      ],
    });
    nginx = await startGatewayNginx({ gatePort: gate.port, upstreamPort: upstream.port });
  });

  after(async () => {
    await nginx?.close();
    await gate?.stop();
    await upstream?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
    await veil?.stop();
    await stores?.cleanup();
  });

  const tokensOf = (user: { email: string; password: string }): Promise<IssuedTokens> => world.tokens(user);

  test('the token carries the ages encrypted only: the gate opens it and finds ciphertexts, no age', async () => {
    const tokens = await tokensOf(adult);
    const { payload } = await openSealed(tokens.access, world.rs.privateKey, veil!.issuer, HE_API);
    assert.equal(payload.age, undefined);
    const hec = payload.hec as Record<string, string>;
    assert.deepEqual(Object.keys(hec).sort(), ['age', 'kid', 'spend_headroom']);
    assert.match(hec.age!, /^[A-Za-z0-9_-]{600,}$/);
    assert.deepEqual(ageMentions(JSON.stringify(payload), [ADULT_AGE]), []);
  });

  test('age >= 18: the 34-year-old is admitted, the 16-year-old refused with 403 before the upstream; the same token again is answered without asking Veil', async () => {
    const adultTokens = await tokensOf(adult);
    const before = upstream.requests.length;
    const admitted = await call(nginx.url, '/adults/welcome', bearer(adultTokens.access));
    assert.equal(admitted.status, 200, admitted.body);
    assert.equal(upstream.requests.length, before + 1);
    const seen = upstream.requests.at(-1)!;
    assert.deepEqual(Object.keys(seen.headers).sort(), ['host', 'x-user']);

    const teenTokens = await tokensOf(teen);
    const refused = await call(nginx.url, '/adults/welcome', bearer(teenTokens.access));
    assert.equal(refused.status, 403);
    assert.equal(upstream.requests.length, before + 1, 'the refused request never reached the upstream');
    // Directly at the gate: the refusal names the policy, not a value.
    const direct = await gatewayCheck(gate, 'nginx', { uri: '/adults/welcome', host: HOST, authorization: `Bearer ${teenTokens.access}` });
    assert.equal(direct.status, 403);
    assert.deepEqual(direct.json(), { error: 'access_denied', error_description: 'the request does not satisfy the policy age-gate' });

    // Veil answers once per (token, node, policy); the gate keeps the answer for the token's life.
    const again = await call(nginx.url, '/adults/again', bearer(adultTokens.access));
    assert.equal(again.status, 200, again.body);
  });

  test('spending: an amount within the headroom is admitted, one above it refused (header and query); past the daily budget 503; one amount per token', async () => {
    const before = upstream.requests.length;
    const within = await call(nginx.url, '/pay', { ...bearer((await tokensOf(adult)).access), 'x-amount': String(HEADROOM - 1) });
    assert.equal(within.status, 200, within.body);
    const exact = await call(nginx.url, `/checkout?amount=${HEADROOM}`, bearer((await tokensOf(adult)).access));
    assert.equal(exact.status, 200, exact.body);
    const above = await call(nginx.url, '/pay', { ...bearer((await tokensOf(adult)).access), 'x-amount': String(HEADROOM + 1) });
    assert.equal(above.status, 403);
    // The gate's fourth question today about this user's headroom: Veil's budget (3) is spent and
    // Veil answers 429 slow_down; the gate fails closed (503), the upstream is not reached.
    const overBudget = await call(nginx.url, `/checkout?amount=1`, bearer((await tokensOf(adult)).access));
    assert.equal(overBudget.status, 503);
    assert.equal(upstream.requests.length, before + 2, 'only the two admitted requests reached the upstream');
    assert.ok(gate.logs.some((l) => l.includes('slow_down')));

    // Another user, one token, a second amount: Veil's one answer per (token, node, policy) is spent.
    const once = await tokensOf(spender);
    assert.equal((await call(nginx.url, '/checkout?amount=10', bearer(once.access))).status, 200);
    assert.equal((await call(nginx.url, '/checkout?amount=10', bearer(once.access))).status, 200, 'the same question: the remembered answer');
    const second = await call(nginx.url, '/checkout?amount=20', bearer(once.access));
    assert.equal(second.status, 403);
    const refusal = await gatewayCheck(gate, 'nginx', { uri: '/checkout?amount=20', host: HOST, authorization: `Bearer ${once.access}` });
    assert.match(refusal.json().error_description!, /already decided for this token/);
  });

  test('a missing, repeated or malformed amount is 400 at the gate (503 through nginx), and Veil is not asked', async () => {
    const token = (await tokensOf(spender)).access;
    for (const extra of [
      {} as Record<string, string>,
      { 'x-amount': '' },
      { 'x-amount': '12.5' },
      { 'x-amount': '-3' },
      { 'x-amount': '1e3' },
      { 'x-amount': '99999999999999999999' },
    ]) {
      const direct = await gatewayCheck(gate, 'nginx', { uri: '/pay', host: HOST, authorization: `Bearer ${token}`, extra });
      assert.equal(direct.status, 400, JSON.stringify(extra));
      assert.equal(direct.json().error, 'invalid_request');
    }
    const twice = await gatewayCheck(gate, 'nginx', { uri: '/checkout?amount=1&amount=2', host: HOST, authorization: `Bearer ${token}` });
    assert.equal(twice.status, 400);
    const count = upstream.requests.length;
    const viaNginx = await call(nginx.url, '/pay', bearer(token));
    assert.equal(viaNginx.status, 503, 'nginx answers 503 for any gate answer but 2xx, 401 and 403');
    assert.equal(upstream.requests.length, count);
    // Nothing was asked of Veil for this token: its one answer is still to be had.
    const valid = await call(nginx.url, '/checkout?amount=5', bearer(token));
    assert.equal(valid.status, 200, valid.body);
  });

  test('a revoked token is refused with 401 by Veil at decision time', async () => {
    const tokens = await tokensOf(adult);
    const res = await revoke(veil!.issuer, { id: world.web.clientId, secret: world.web.clientSecret! }, tokens.access);
    assert.equal(res.status, 200);
    const refused = await call(nginx.url, '/adults', bearer(tokens.access));
    assert.equal(refused.status, 401);
  });

  test('neither age reaches the gate, the upstream or any log (gate, nginx access and error, Veil)', async () => {
    const ages = [ADULT_AGE, TEEN_AGE];
    const captured: Record<string, string> = {
      gate: gate.logs.join(''),
      upstream: JSON.stringify(upstream.requests),
      'nginx access log': await nginx.accessLog(),
      'nginx error log': await nginx.errorLog(),
      veil: veil!.logs.join('\n'),
    };
    for (const [where, text] of Object.entries(captured)) {
      assert.ok(text.length > 0 || where === 'nginx error log', `${where} captured something`);
      assert.deepEqual(ageMentions(text, ages), [], `${where} mentions an age`);
    }
    // The check is precise enough to find an age where one is.
    assert.equal(ageMentions('{"age":34}', ages).length, 1);
    assert.equal(ageMentions('x-age: 16\n', ages).length, 1);
    assert.equal(ageMentions('"time":1765034161234,"port":34160', ages).length, 0);
    assert.equal(ageMentions('2026/12/06 22:13:16 [notice] 16643#16643: start', ages).length, 0);
    assert.equal(ageMentions('X-Age=16; {"v": [34]}', ages).length, 2);
  });

  test('Veil unreachable: the gate fails closed with 503', async () => {
    const tokens = await tokensOf(adult);
    // The gate has Veil's keys already; only the decision endpoint is gone.
    await veil!.stop();
    veil = undefined;
    const count = upstream.requests.length;
    const res = await call(nginx.url, '/adults', bearer(tokens.access));
    assert.equal(res.status, 503);
    assert.equal(upstream.requests.length, count);
    const direct = await gatewayCheck(gate, 'nginx', { uri: '/adults', host: HOST, authorization: `Bearer ${tokens.access}` });
    assert.equal(direct.status, 503);
    assert.ok(gate.logs.some((l) => l.includes('policy_unavailable')));
  });
});
