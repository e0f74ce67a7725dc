/**
 * Veil Gate's exchange routes against a real Veil: the gate trades the user's token (sealed to
 * the public API) for one sealed to the internal service through RFC 8693 token exchange, and
 * answers it as X-Veil-Authorization (plus the dialect's own Authorization handling). Only the
 * internal service's key opens it; it names the gate as actor, has the narrowed scope and lives no
 * longer than the original; revoking the original ends it at introspection. A warm cache makes no
 * call to Veil; Veil's refusals become 401 (subject no good), 403 (scope) or 503 (the gate's own
 * credentials), each counted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { compactDecrypt } from 'jose';
import { decisionHeaders, gateDir, gatewayCheck, metricValue, startTestGate, writeDecryptionKey, writeSecret, type TestGate } from '../helpers/gate.js';
import { httpAuthorizationCodeFlow, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { introspect, openSealed, registerResourceServer, revoke, type TestResourceServer } from '../helpers/resource-servers.js';
import { rememberSecret } from '../helpers/secrets.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const API = 'https://api.example.com/v1';
const INTERNAL = 'https://orders.internal';
const HOST = 'api.example.com';
const REDIRECT = 'https://app.example.com/cb';

type Created = { client: { client_id: string }; client_secret?: string };

describe('veil gate: exchange routes', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let api: TestResourceServer;
  let internal: TestResourceServer;
  let web: HttpFlowClient;
  let gateClient: HttpFlowClient;
  let gate: TestGate;
  let users = 0;

  const client = async (body: Record<string, unknown>): Promise<HttpFlowClient> => {
    const res = await veil.admin<Created>('POST', '/admin/clients', body);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return { issuer: veil.issuer, clientId: res.body.client.client_id, clientSecret: res.body.client_secret!, redirectUri: REDIRECT };
  };
  /** A new user signs in to the web app for the public API. */
  const userTokens = async (scope = 'orders:read orders:write') => {
    const user = { email: `gate-exchange-${++users}@example.com`, password: 'exchange at the gate 123' };
    const created = await veil.admin<{ user: { id: string } }>('POST', '/admin/users', { ...user, name: 'Gate User' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const tokens = await httpAuthorizationCodeFlow(web, user, `openid offline_access ${scope}`, { resource: API });
    assert.ok(tokens.access_token, JSON.stringify(tokens));
    return { accessToken: tokens.access_token, refreshToken: tokens.refresh_token, accountId: created.body.user.id };
  };
  const exchanged = (answer: { headers: Record<string, unknown> }) => {
    const value = String(answer.headers['x-veil-authorization']);
    assert.match(value, /^Bearer [\w-]+\.[\w-]*\.[\w-]+\.[\w-]+\.[\w-]+$/);
    const token = value.slice('Bearer '.length);
    rememberSecret(token, 'exchanged token');
    return token;
  };
  const metrics = async (g: TestGate) => (await fetch(`${g.url}/metrics`)).text();

  const exchangeGate = async (options: { secret?: string; introspect?: boolean } = {}) => {
    const dir = await gateDir();
    return startTestGate(
      dir,
      {
        issuer: veil.issuer,
        audiences: [{ identifier: API, decryptionKeys: [await writeDecryptionKey(dir, 'api.jwk.json', api.privateKey, api.publicJwk.kid!)] }],
        client: { id: gateClient.clientId, secretFile: await writeSecret(dir, 'gate-client.secret', options.secret ?? gateClient.clientSecret!) },
        introspect: { enabled: options.introspect ?? false, cacheSeconds: 0 },
        routes: [
          {
            name: 'orders',
            host: HOST,
            path: '/orders',
            audience: API,
            scopes: { all: ['orders:read'] },
            headers: { sub: 'X-User', scope: 'X-Scope' },
            exchange: { resource: INTERNAL, scope: 'orders:read' },
          },
          // No local scope rule: what the subject may have is Veil's to say.
          { name: 'loose', host: HOST, path: '/loose', audience: API, exchange: { resource: INTERNAL, scope: 'orders:read' } },
        ],
      },
      { env: {} },
    );
  };

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    // Public subjects: these tests follow the account id through the exchange (pairwise subjects
    // across an exchange: test/integration/pairwise-subjects.test.ts).
    api = await registerResourceServer(veil, { identifier: API, scopes: ['orders:read', 'orders:write'], ttl: 600, extra: { subject: 'public' } });
    internal = await registerResourceServer(veil, { identifier: INTERNAL, scopes: ['orders:read', 'orders:write'], ttl: 120, extra: { subject: 'public' } });
    web = await client({
      client_name: 'web app',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      scope: 'openid offline_access',
      resource_scopes: { [API]: ['orders:read', 'orders:write'] },
    });
    // Registered through the admin API as the issue describes: the grant, the internal service as resource, the public API as exchange_from.
    gateClient = await client({
      client_name: 'veil gate',
      grant_types: [TOKEN_EXCHANGE],
      resources: [INTERNAL],
      resource_scopes: { [INTERNAL]: ['orders:read'] },
      exchange_from: [API],
    });
    gate = await exchangeGate();
  });

  after(async () => {
    await gate?.stop();
    await veil?.stop();
    await stores?.cleanup();
  });

  for (const dialect of ['nginx', 'traefik', 'envoy'] as const) {
    test(`${dialect}: the upstream gets a token only the internal service opens, with act, the narrowed scope and no longer life`, async () => {
      const user = await userTokens();
      const subject = await openSealed(user.accessToken, api.privateKey, veil.issuer, API);
      const answer = await gatewayCheck(gate, dialect, { uri: '/orders/42', host: HOST, authorization: `Bearer ${user.accessToken}` });
      assert.equal(answer.status, 200, answer.body);
      const token = exchanged(answer);
      assert.notEqual(token, user.accessToken);

      const expected: Record<string, string> = { 'x-user': user.accountId, 'x-scope': 'orders:read orders:write', 'x-veil-authorization': `Bearer ${token}` };
      if (dialect === 'traefik') expected.authorization = `Bearer ${token}`;
      if (dialect === 'envoy') expected.authorization = `Bearer ${token}`;
      assert.deepEqual(decisionHeaders(answer), expected);

      const { payload } = await openSealed(token, internal.privateKey, veil.issuer, INTERNAL);
      assert.equal(payload.aud, INTERNAL);
      assert.equal(payload.sub, user.accountId);
      assert.deepEqual(payload.act, { sub: gateClient.clientId });
      assert.equal(payload.scope, 'orders:read');
      assert.ok(payload.exp! <= subject.payload.exp!, 'no longer than the original');
      // The public API's key (the one the gate holds) does not open it.
      await assert.rejects(compactDecrypt(token, api.privateKey));

      const active = await introspect(veil.issuer, { id: internal.clientId, secret: internal.clientSecret }, token);
      assert.equal(active.body.active, true);
      assert.deepEqual(active.body.act, { sub: gateClient.clientId });
    });
  }

  test('a warm cache makes no call: the same subject on the same route gets the same token; concurrent checks share one exchange', async () => {
    const user = await userTokens();
    const issuedBefore = metricValue(await metrics(gate), 'veil_gate_token_exchanges_total', { outcome: 'issued' });
    const first = exchanged(await gatewayCheck(gate, 'nginx', { uri: '/orders', host: HOST, authorization: `Bearer ${user.accessToken}` }));
    for (let i = 0; i < 3; i++) {
      assert.equal(exchanged(await gatewayCheck(gate, 'nginx', { uri: '/orders', host: HOST, authorization: `Bearer ${user.accessToken}` })), first);
    }
    let text = await metrics(gate);
    assert.equal(metricValue(text, 'veil_gate_token_exchanges_total', { outcome: 'issued' }), issuedBefore + 1);
    assert.ok(metricValue(text, 'veil_gate_token_exchanges_total', { outcome: 'cached' }) >= 3);

    const other = await userTokens();
    const answers = await Promise.all(Array.from({ length: 5 }, () => gatewayCheck(gate, 'envoy', { uri: '/orders', host: HOST, authorization: `Bearer ${other.accessToken}` })));
    assert.equal(new Set(answers.map(exchanged)).size, 1);
    text = await metrics(gate);
    assert.equal(metricValue(text, 'veil_gate_token_exchanges_total', { outcome: 'issued' }), issuedBefore + 2);
  });

  test('revoking the original makes the exchanged token inactive at introspection', async () => {
    const user = await userTokens();
    const token = exchanged(await gatewayCheck(gate, 'nginx', { uri: '/orders', host: HOST, authorization: `Bearer ${user.accessToken}` }));
    const rs = { id: internal.clientId, secret: internal.clientSecret };
    assert.equal((await introspect(veil.issuer, rs, token)).body.active, true);
    assert.equal((await revoke(veil.issuer, { id: web.clientId, secret: web.clientSecret! }, user.accessToken)).status, 200);
    assert.deepEqual((await introspect(veil.issuer, rs, token)).body, { active: false });
  });

  test('a subject Veil will not exchange (revoked) is 401 invalid_token; nothing passed on', async () => {
    const user = await userTokens();
    assert.equal((await revoke(veil.issuer, { id: web.clientId, secret: web.clientSecret! }, user.refreshToken)).status, 200);
    // Local verification cannot know (introspection is off); Veil refuses the exchange.
    const answer = await gatewayCheck(gate, 'traefik', { uri: '/orders', host: HOST, authorization: `Bearer ${user.accessToken}` });
    assert.equal(answer.status, 401);
    assert.equal(answer.headers['www-authenticate'], `Bearer realm="${API}", error="invalid_token", error_description="the token is not active"`);
    assert.equal(answer.headers['x-veil-authorization'], undefined);
    assert.equal(answer.headers.authorization, undefined);
    assert.ok(metricValue(await metrics(gate), 'veil_gate_token_exchanges_total', { outcome: 'subject_refused' }) >= 1);
  });

  test("a subject without the route's exchange scope is 403 insufficient_scope naming it", async () => {
    const user = await userTokens('orders:write');
    const answer = await gatewayCheck(gate, 'nginx', { uri: '/loose', host: HOST, authorization: `Bearer ${user.accessToken}` });
    assert.equal(answer.status, 403);
    assert.equal(
      answer.headers['www-authenticate'],
      `Bearer realm="${API}", error="insufficient_scope", error_description="requires the scopes: orders:read", scope="orders:read"`,
    );
    assert.equal(answer.headers['x-veil-authorization'], undefined);
    assert.ok(metricValue(await metrics(gate), 'veil_gate_token_exchanges_total', { outcome: 'scope_refused' }) >= 1);
  });

  test("the gate's own credentials refused (a wrong secret) is 503, logged as misconfigured; the user's token is not blamed", async () => {
    const wrong = await exchangeGate({ secret: 'not-the-gate-client-secret' });
    try {
      const user = await userTokens();
      const answer = await gatewayCheck(wrong, 'nginx', { uri: '/orders', host: HOST, authorization: `Bearer ${user.accessToken}` });
      assert.equal(answer.status, 503);
      assert.equal(answer.headers['www-authenticate'], undefined);
      assert.match(wrong.logs.join(''), /token exchange failed: misconfigured \(invalid_client\)/);
      assert.equal(metricValue(await metrics(wrong), 'veil_gate_token_exchanges_total', { outcome: 'misconfigured' }), 1);
    } finally {
      await wrong.stop();
    }
  });

  test('with introspection on and no API credentials, the gate introspects as its client: a revoked token is refused at once', async () => {
    const introspecting = await exchangeGate({ introspect: true });
    try {
      const user = await userTokens();
      assert.equal((await gatewayCheck(introspecting, 'nginx', { uri: '/orders', host: HOST, authorization: `Bearer ${user.accessToken}` })).status, 200);
      assert.equal((await revoke(veil.issuer, { id: web.clientId, secret: web.clientSecret! }, user.accessToken)).status, 200);
      const answer = await gatewayCheck(introspecting, 'nginx', { uri: '/orders', host: HOST, authorization: `Bearer ${user.accessToken}` });
      assert.equal(answer.status, 401);
      const text = await metrics(introspecting);
      assert.equal(metricValue(text, 'veil_gate_introspection_calls_total', { audience: API, outcome: 'inactive' }), 1);
      assert.equal(metricValue(text, 'veil_gate_decisions_total', { outcome: 'deny', reason: 'revoked', route: 'orders' }), 1);
    } finally {
      await introspecting.stop();
    }
  });

  test('clients that may not exchange get nothing from Veil for the same subject (the gate client alone can)', async () => {
    const user = await userTokens();
    const params = { grant_type: TOKEN_EXCHANGE, subject_token: user.accessToken, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', resource: INTERNAL };
    const refusedWeb = await tokenRequest(web, params);
    assert.equal(refusedWeb.status, 400);
    assert.equal(refusedWeb.body.access_token, undefined);
    const allowed = await tokenRequest(gateClient, params);
    assert.equal(allowed.status, 200, JSON.stringify(allowed.body));
  });
});
