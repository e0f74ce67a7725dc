/**
 * The gate's `require` rules (src/gate/policy-rules.ts) in its configuration: the two shapes load
 * (a fixed `value`, an `amountFrom` header or query parameter); every mistake is named by its JSON
 * path (both or neither of value and amountFrom, an unknown op, a bad policy id or claim, a public
 * route, no gate client or secret); and the amount a request carries is read strictly.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseGateConfig } from '../../src/gate/config.js';
import { amountOf, type RequireRule } from '../../src/gate/policy-rules.js';

const API = 'https://api.example.com';
const base = (route: Record<string, unknown>, extra: Record<string, unknown> = { client: { id: 'gate', secretFile: 'gate.secret' } }) => ({
  issuer: 'https://id.example.com',
  audiences: [{ identifier: API, decryptionKeys: ['api.jwk.json'] }],
  routes: [{ path: '/adults', audience: API, ...route }],
  ...extra,
});
// GATE_CLIENT_SECRET stands in for the secret file (the file is not read when the variable is set).
const parse = (raw: unknown, env: NodeJS.ProcessEnv = { GATE_CLIENT_SECRET: 'gate secret' }) => parseGateConfig(raw, { name: 'gate.json', dir: '/nonexistent', env });

async function refused(raw: unknown, message: string, env?: NodeJS.ProcessEnv) {
  await assert.rejects(parse(raw, env), (err: Error) => {
    assert.ok(err.message.includes(message), err.message);
    return true;
  });
}

describe('gate configuration: require rules', () => {
  test('a fixed threshold and an amount from a header or a query parameter load as written', async () => {
    const config = await parse({
      ...base({ require: [{ policy: 'age-gate', claim: 'age', op: 'gte', value: 18 }] }),
      routes: [
        { path: '/adults', audience: API, require: [{ policy: 'age-gate', claim: 'age', op: 'gte', value: 18 }] },
        { path: '/pay', audience: API, require: [{ policy: 'spend', claim: 'spend_headroom', op: 'gte', amountFrom: { header: 'x-amount' } }] },
        { path: '/checkout', audience: API, require: [{ policy: 'spend', claim: 'spend_headroom', op: 'gte', amountFrom: { query: 'amount' } }] },
      ],
    });
    assert.deepEqual(config.routes[0]!.require, [{ policy: 'age-gate', claim: 'age', op: 'gte', value: 18 }]);
    assert.deepEqual(config.routes[1]!.require![0]!.amountFrom, { header: 'x-amount' });
    assert.deepEqual(config.routes[2]!.require![0]!.amountFrom, { query: 'amount' });
    assert.deepEqual(config.client, { id: 'gate', secret: 'gate secret' });
  });

  test('every mistake names its path', async () => {
    const rule = { policy: 'age-gate', claim: 'age', op: 'gte' };
    await refused(base({ require: [rule] }), 'gate.json: routes[0].require[0]: give either value or amountFrom, not both');
    await refused(base({ require: [{ ...rule, value: 18, amountFrom: { header: 'x-amount' } }] }), 'routes[0].require[0]: give either value or amountFrom, not both');
    await refused(base({ require: [{ ...rule, op: 'eq', value: 18 }] }), 'routes[0].require[0].op: expected one of gte, lte, gt, lt');
    await refused(base({ require: [{ ...rule, value: 18.5 }] }), 'routes[0].require[0].value: expected an integer');
    await refused(base({ require: [{ ...rule, policy: 'Age Gate', value: 18 }] }), 'routes[0].require[0].policy: expected a policy id');
    await refused(base({ require: [{ ...rule, claim: 'Age', value: 18 }] }), 'routes[0].require[0].claim: expected a claim name');
    await refused(base({ require: [{ ...rule, amountFrom: { cookie: 'amount' } }] }), 'routes[0].require[0].amountFrom');
    await refused(base({ require: [{ ...rule, amountFrom: { header: 'bad header' } }] }), 'routes[0].require[0].amountFrom');
    await refused(base({ require: [{ ...rule, value: 18 }], extra: true }), 'routes[0]');
    await refused(base({ require: [] }), 'routes[0].require: expected at least one policy rule');
    await refused(
      base({ require: [{ ...rule, value: 18 }], public: true, audience: undefined }),
      'routes[0].require: a public route takes no token, so it cannot require a policy',
    );
    await refused(base({ require: [{ ...rule, value: 18 }] }, {}), "gate.json: client: required by a route's require rules");
    await refused(base({ require: [{ ...rule, value: 18 }] }, { client: { id: 'gate' } }), "client.secretFile: required by a route's require rules", {});
  });
});

describe('the amount a request carries', () => {
  const header: RequireRule = { policy: 'spend', claim: 'spend_headroom', op: 'gte', amountFrom: { header: 'X-Amount' } };
  const query: RequireRule = { policy: 'spend', claim: 'spend_headroom', op: 'gte', amountFrom: { query: 'amount' } };
  const request = (uri: string, headers: Record<string, string | string[]> = {}) => ({ uri, header: (name: string) => headers[name] });

  test('a non-negative integer, given once, from the named header (any case) or query parameter', () => {
    assert.equal(amountOf(header, request('/pay', { 'x-amount': '2500' })), 2500n);
    assert.equal(amountOf(header, request('/pay', { 'x-amount': ' 0 ' })), 0n);
    assert.equal(amountOf(query, request('/checkout?x=1&amount=3800')), 3800n);
    assert.equal(amountOf(query, request('/checkout?amount=999999999999999')), 999_999_999_999_999n);
  });

  test('missing, repeated, signed, fractional, exponent, leading-zero or oversized amounts are refused, naming the source only', () => {
    const bad: Array<[RequireRule, ReturnType<typeof request>]> = [
      [header, request('/pay')],
      [header, request('/pay', { 'x-amount': '' })],
      [header, request('/pay', { 'x-amount': ['1', '2'] })],
      [header, request('/pay', { 'x-amount': '-5' })],
      [header, request('/pay', { 'x-amount': '+5' })],
      [header, request('/pay', { 'x-amount': '12.5' })],
      [header, request('/pay', { 'x-amount': '1e3' })],
      [header, request('/pay', { 'x-amount': '007' })],
      [header, request('/pay', { 'x-amount': '1000000000000000' })],
      [query, request('/checkout')],
      [query, request('/checkout?amount=1&amount=2')],
      [query, request('/checkout?amount=0x10')],
    ];
    for (const [rule, req] of bad) {
      const result = amountOf(rule, req);
      assert.equal(typeof result, 'object', JSON.stringify(req.uri));
      assert.match((result as { problem: string }).problem, /^the (X-Amount header|amount query parameter) /);
    }
  });
});
