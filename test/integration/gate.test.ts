/**
 * Veil Gate against a real Veil (PostgreSQL, Redis): each gateway dialect with the headers that
 * gateway sends, the 200 answer with exactly the configured headers, refusals (401 with the RFC
 * 6750 challenge, 403 for scopes, unmatched routes and methods), 400 for a gateway that says
 * nothing about the original request, the metrics, and logs without tokens or claim values.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { compactDecrypt, createRemoteJWKSet, generateKeyPair, importJWK, jwtVerify, SignJWT, type CryptoKey, type JWK } from 'jose';
import { decisionHeaders, gateDir, gatewayCheck, metricValue, rawRequest, startTestGate, writeDecryptionKey, type TestGate } from '../helpers/gate.js';
import { tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { openSealed, registerResourceServer, type TestResourceServer } from '../helpers/resource-servers.js';
import { seal } from '../helpers/sealed-tokens.js';
import { rememberSecret } from '../helpers/secrets.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

interface CreatedClient {
  client: { client_id: string };
  client_secret?: string;
}

const DIALECTS = ['nginx', 'traefik', 'envoy'] as const;
const API_HOST = 'api.example.com';

describe('veil gate', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let orders: TestResourceServer;
  let billing: TestResourceServer;
  let other: TestResourceServer;
  let short: TestResourceServer;
  let gate: TestGate;
  let worker: HttpFlowClient;
  let reader: HttpFlowClient;
  let shortToken: { token: string; exp: number };

  const client = async (name: string, scopes: Record<string, string[]>): Promise<HttpFlowClient> => {
    const res = await veil.admin<CreatedClient>('POST', '/admin/clients', {
      client_name: name,
      grant_types: ['client_credentials'],
      resources: Object.keys(scopes),
      resource_scopes: scopes,
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return { issuer: veil.issuer, clientId: res.body.client.client_id, clientSecret: res.body.client_secret!, redirectUri: 'http://127.0.0.1/unused' };
  };
  const tokenFor = async (who: HttpFlowClient, resource: string, scope: string) => {
    const res = await tokenRequest(who, { grant_type: 'client_credentials', resource, scope });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.access_token!;
  };

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    orders = await registerResourceServer(veil, { identifier: 'https://orders.example/api', scopes: ['orders:read', 'orders:write', 'admin'] });
    billing = await registerResourceServer(veil, { identifier: 'https://billing.example/api', scopes: ['read'] });
    other = await registerResourceServer(veil, { identifier: 'https://other.example/api', scopes: ['read'] });
    short = await registerResourceServer(veil, { identifier: 'https://short.example/api', scopes: ['read'], ttl: 1 });
    worker = await client('worker', {
      [orders.identifier]: ['orders:read', 'orders:write'],
      [billing.identifier]: ['read'],
      [other.identifier]: ['read'],
      [short.identifier]: ['read'],
    });
    reader = await client('reader', { [orders.identifier]: ['orders:read'] });

    const dir = await gateDir();
    gate = await startTestGate(dir, {
      issuer: veil.issuer,
      audiences: [
        { identifier: orders.identifier, decryptionKeys: [await writeDecryptionKey(dir, 'orders.jwk.json', orders.privateKey, orders.publicJwk.kid!)] },
        { identifier: billing.identifier, decryptionKeys: [await writeDecryptionKey(dir, 'billing.jwk.json', billing.privateKey, billing.publicJwk.kid!)] },
        { identifier: short.identifier, decryptionKeys: [await writeDecryptionKey(dir, 'short.jwk.json', short.privateKey, short.publicJwk.kid!)] },
      ],
      routes: [
        {
          name: 'orders-read',
          host: API_HOST,
          path: '/orders',
          methods: ['GET', 'HEAD'],
          audience: orders.identifier,
          scopes: { all: ['orders:read'] },
          headers: { sub: 'X-User', scope: 'X-Scope', client_id: 'X-Client' },
        },
        {
          name: 'orders-write',
          host: API_HOST,
          path: '/orders',
          methods: ['POST'],
          audience: orders.identifier,
          scopes: { all: ['orders:read', 'orders:write'] },
          headers: { sub: 'X-User', email: 'X-Email' },
        },
        { name: 'admin', host: API_HOST, pattern: '/admin/[a-z]+', audience: orders.identifier, scopes: { any: ['admin', 'orders:write'] }, headers: { sub: 'X-User' } },
        { name: 'public', host: API_HOST, path: '/public/', public: true },
        {
          name: 'billing',
          host: '*.billing.example',
          path: '/invoices',
          audience: billing.identifier,
          scopes: { all: ['read'] },
          headers: { sub: 'X-User' },
          keepAuthorization: true,
        },
        { name: 'short', host: 'short.example.com', audience: short.identifier },
      ],
    });
    // Lifetimes are whole seconds: the token is expired (past the SDK's 5 s tolerance) by the time the expiry test runs.
    const token = await tokenFor(worker, short.identifier, 'read');
    shortToken = { token, exp: (await openSealed(token, short.privateKey, veil.issuer, short.identifier)).payload.exp! };
  });

  after(async () => {
    await gate?.stop();
    await veil?.stop();
    await stores?.cleanup();
  });

  for (const dialect of DIALECTS) {
    test(`${dialect}: a token with the scope gets 200 with exactly the configured headers, claim values from the token, no token`, async () => {
      const token = await tokenFor(worker, orders.identifier, 'orders:read orders:write');
      const { payload } = await openSealed(token, orders.privateKey, veil.issuer, orders.identifier);
      const answer = await gatewayCheck(gate, dialect, { uri: '/orders/17?expand=lines', host: API_HOST, authorization: `Bearer ${token}` });
      assert.equal(answer.status, 200, answer.body);
      assert.equal(answer.body, '');
      const expected: Record<string, string> = { 'x-user': String(payload.sub), 'x-scope': 'orders:read orders:write', 'x-client': worker.clientId };
      // Envoy keeps the client's Authorization unless told to remove it; nginx and Traefik remove it when no X-Veil-Authorization / Authorization comes back.
      if (dialect === 'envoy') expected['x-envoy-auth-headers-to-remove'] = 'authorization';
      assert.deepEqual(decisionHeaders(answer), expected);
      assert.equal(answer.headers['cache-control'], 'no-store');
      for (const value of Object.values(answer.headers)) assert.ok(!String(value).includes(token.split('.')[1]!), 'no part of the token in the answer');
    });

    test(`${dialect}: the original method picks the route (POST needs orders:write; a claim the token lacks is not sent)`, async () => {
      const token = await tokenFor(worker, orders.identifier, 'orders:read orders:write');
      const answer = await gatewayCheck(gate, dialect, { method: 'POST', uri: '/orders', host: API_HOST, authorization: `Bearer ${token}` });
      assert.equal(answer.status, 200, answer.body);
      const expected: Record<string, string> = { 'x-user': worker.clientId };
      // No email in a client credentials token: X-Email is not answered, and Envoy is told to remove the client's copy.
      if (dialect === 'envoy') expected['x-envoy-auth-headers-to-remove'] = 'x-email, authorization';
      assert.deepEqual(decisionHeaders(answer), expected);

      const readOnly = await tokenFor(reader, orders.identifier, 'orders:read');
      const refused = await gatewayCheck(gate, dialect, { method: 'POST', uri: '/orders', host: API_HOST, authorization: `Bearer ${readOnly}` });
      assert.equal(refused.status, 403);
      assert.equal(
        refused.headers['www-authenticate'],
        `Bearer realm="${orders.identifier}", error="insufficient_scope", error_description="requires the scopes: orders:read orders:write", scope="orders:read orders:write"`,
      );
      assert.deepEqual(refused.json(), { error: 'insufficient_scope', error_description: 'requires the scopes: orders:read orders:write' });
      assert.equal(refused.headers['x-user'], undefined);
    });

    test(`${dialect}: a route that keeps Authorization passes the incoming one back`, async () => {
      const token = await tokenFor(worker, billing.identifier, 'read');
      const answer = await gatewayCheck(gate, dialect, { uri: '/invoices/2024', host: 'eu.billing.example', authorization: `Bearer ${token}` });
      assert.equal(answer.status, 200, answer.body);
      const expected: Record<string, string> = { 'x-user': worker.clientId, 'x-veil-authorization': `Bearer ${token}` };
      if (dialect === 'traefik') expected.authorization = `Bearer ${token}`;
      assert.deepEqual(decisionHeaders(answer), expected);
    });

    test(`${dialect}: missing, non-Bearer, garbage, several and oversized tokens get 401 with the RFC 6750 challenge`, async () => {
      const check = (authorization?: string) => gatewayCheck(gate, dialect, { uri: '/orders', host: API_HOST, ...(authorization !== undefined && { authorization }) });
      for (const missing of [undefined, 'Basic dXNlcjpwYXNz', '']) {
        const answer = await check(missing);
        assert.equal(answer.status, 401);
        // RFC 6750 §3.1: no error code when the request carried no token.
        assert.equal(answer.headers['www-authenticate'], `Bearer realm="${orders.identifier}"`);
      }
      const cases: Array<[string, string]> = [
        ['Bearer garbage', 'the token is malformed'],
        ['Bearer a.b.c.d.e', 'the token is malformed'],
        ['Bearer one two', 'the Authorization header must carry exactly one Bearer token'],
        [`Bearer ${'A'.repeat(9000)}`, 'the token is too large'],
      ];
      for (const [authorization, description] of cases) {
        const answer = await check(authorization);
        assert.equal(answer.status, 401, authorization.slice(0, 30));
        assert.equal(answer.headers['www-authenticate'], `Bearer realm="${orders.identifier}", error="invalid_token", error_description="${description}"`);
        assert.deepEqual(answer.json(), { error: 'invalid_token', error_description: description });
      }
    });
  }

  test('a token for another API is refused as wrong_audience, whether or not the gate holds that API key', async () => {
    for (const api of [billing, other]) {
      const token = await tokenFor(worker, api.identifier, 'read');
      const answer = await gatewayCheck(gate, 'nginx', { uri: '/orders', host: API_HOST, authorization: `Bearer ${token}` });
      assert.equal(answer.status, 401);
      assert.equal(answer.headers['www-authenticate'], `Bearer realm="${orders.identifier}", error="invalid_token", error_description="the token is not for this API"`);
    }
  });

  test("a token sealed to the API's key but signed by another key (Veil's kid) is refused as bad_signature", async () => {
    const veilKeys = (await (await fetch(`${veil.issuer}/jwks`)).json()) as { keys: JWK[] };
    const veilKid = veilKeys.keys.find((k) => k.alg === 'ES256')!.kid!;
    const forger = await generateKeyPair('ES256', { extractable: true });
    const now = Math.floor(Date.now() / 1000);
    const jws = await new SignJWT({ client_id: worker.clientId, scope: 'orders:read orders:write admin', jti: 'forged-1' })
      .setProtectedHeader({ alg: 'ES256', kid: veilKid, typ: 'at+jwt' })
      .setIssuer(veil.issuer)
      .setAudience(orders.identifier)
      .setSubject('admin')
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(forger.privateKey);
    // Veil's default key management for an EC key without alg.
    const alg = 'ECDH-ES+A256KW';
    const publicKey = (await importJWK(orders.publicJwk, alg)) as CryptoKey;
    const token = await seal(jws, { kid: orders.publicJwk.kid!, alg, publicKey });
    rememberSecret(token, 'forged token');
    // The forged token's signature really does not verify against Veil's published keys.
    const inner = new TextDecoder().decode((await compactDecrypt(token, orders.privateKey)).plaintext);
    await assert.rejects(jwtVerify(inner, createRemoteJWKSet(new URL(`${veil.issuer}/jwks`))));

    const answer = await gatewayCheck(gate, 'nginx', { uri: '/admin/users', host: API_HOST, authorization: `Bearer ${token}` });
    assert.equal(answer.status, 401);
    assert.match(String(answer.headers['www-authenticate']), /error="invalid_token", error_description="the token signature is invalid"$/);
    assert.equal(answer.headers['x-user'], undefined);
  });

  test('scopes: "any" needs one of its scopes; the 403 names them', async () => {
    const writer = await tokenFor(worker, orders.identifier, 'orders:write');
    assert.equal((await gatewayCheck(gate, 'traefik', { uri: '/admin/users', host: API_HOST, authorization: `Bearer ${writer}` })).status, 200);
    const readOnly = await tokenFor(reader, orders.identifier, 'orders:read');
    const refused = await gatewayCheck(gate, 'traefik', { uri: '/admin/users', host: API_HOST, authorization: `Bearer ${readOnly}` });
    assert.equal(refused.status, 403);
    assert.equal(
      refused.headers['www-authenticate'],
      `Bearer realm="${orders.identifier}", error="insufficient_scope", error_description="requires one of the scopes: admin orders:write", scope="admin orders:write"`,
    );
  });

  test('requests no route allows are refused with 403: unknown path, other host, pattern mismatch, method not allowed, ambiguous path', async () => {
    const token = await tokenFor(worker, orders.identifier, 'orders:read orders:write');
    const bearer = `Bearer ${token}`;
    const cases: Array<{ method?: string; uri: string; host: string; description: string }> = [
      { uri: '/invoices', host: API_HOST, description: 'no route allows this request' },
      { uri: '/orders', host: 'api.example.org', description: 'no route allows this request' },
      { uri: '/orders', host: 'billing.example', description: 'no route allows this request' }, // *.billing.example needs a label before it
      { uri: '/admin/users/1', host: API_HOST, description: 'no route allows this request' },
      { method: 'DELETE', uri: '/orders/1', host: API_HOST, description: 'no route allows this method here' },
      { uri: '/public/..%2forders', host: API_HOST, description: 'the request path is ambiguous' },
      { uri: '/public/%252e%252e/orders', host: API_HOST, description: 'the request path is ambiguous' },
      { uri: '/../orders', host: API_HOST, description: 'the request path is ambiguous' },
    ];
    for (const dialect of DIALECTS) {
      for (const c of cases) {
        const answer = await gatewayCheck(gate, dialect, { ...c, authorization: bearer });
        assert.equal(answer.status, 403, `${dialect} ${c.method ?? 'GET'} ${c.host}${c.uri}`);
        assert.deepEqual(answer.json(), { error: 'access_denied', error_description: c.description });
        assert.equal(answer.headers['www-authenticate'], undefined);
        assert.equal(answer.headers['x-user'], undefined);
      }
    }
  });

  test('paths are matched in normal form; dot segments are refused, never resolved (the upstream may resolve them another way)', async () => {
    // An upstream resolving as RFC 3986 reads /public//../orders as /public/orders; merging slashes first would read /orders.
    for (const uri of ['/public/../orders', '/public//../orders', '/orders/b///../../..', '/public/./logo.svg', '/public/%2e%2e/orders']) {
      const answer = await gatewayCheck(gate, 'nginx', { uri, host: API_HOST });
      assert.equal(answer.status, 403, uri);
      assert.equal(answer.headers['x-user'], undefined, uri);
    }
    const viaSlashes = await gatewayCheck(gate, 'nginx', { uri: '//orders', host: API_HOST });
    assert.equal(viaSlashes.status, 401);
    const encoded = await gatewayCheck(gate, 'nginx', { uri: '/%6frders', host: API_HOST });
    assert.equal(encoded.status, 401);
  });

  test('a public route lets requests through without a token, passing nothing on and removing any Authorization', async () => {
    for (const dialect of DIALECTS) {
      const anonymous = await gatewayCheck(gate, dialect, { uri: '/public/logo.svg', host: API_HOST });
      assert.equal(anonymous.status, 200);
      const withToken = await gatewayCheck(gate, dialect, { uri: '/public/logo.svg', host: API_HOST, authorization: 'Bearer whatever-the-client-sent' });
      assert.equal(withToken.status, 200);
      assert.deepEqual(decisionHeaders(withToken), dialect === 'envoy' ? { 'x-envoy-auth-headers-to-remove': 'authorization' } : {});
    }
  });

  test('an expired token is refused with invalid_token', async () => {
    const wait = (shortToken.exp + 6) * 1000 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const answer = await gatewayCheck(gate, 'envoy', { uri: '/anything', host: 'short.example.com', authorization: `Bearer ${shortToken.token}` });
    assert.equal(answer.status, 401);
    assert.equal(answer.headers['www-authenticate'], `Bearer realm="${short.identifier}", error="invalid_token", error_description="the token has expired"`);
    // A fresh token of the same API still passes: the refusal was the expiry.
    const fresh = await tokenFor(worker, short.identifier, 'read');
    assert.equal((await gatewayCheck(gate, 'envoy', { uri: '/anything', host: 'short.example.com', authorization: `Bearer ${fresh}` })).status, 200);
  });

  test('a gateway that does not say where the request went gets 400 naming the missing header', async () => {
    const base = { host: new URL(gate.url).host, authorization: 'Bearer x' };
    const cases: Array<[string, Record<string, string>, string]> = [
      ['/check', { 'x-original-uri': '/orders', 'x-original-host': API_HOST }, 'the gateway sent no X-Original-Method header'],
      ['/check', { 'x-original-method': 'GET', 'x-original-host': API_HOST }, 'the gateway sent no X-Original-URI header'],
      ['/check', { 'x-original-method': 'GET', 'x-original-uri': '/orders' }, 'the gateway sent no X-Original-Host header'],
      ['/check', { 'x-original-method': 'GET /x', 'x-original-uri': '/orders', 'x-original-host': API_HOST }, 'X-Original-Method is not an HTTP method'],
      ['/check/traefik', { 'x-forwarded-method': 'GET', 'x-forwarded-host': API_HOST }, 'the gateway sent no X-Forwarded-Uri header'],
      ['/check/traefik', { 'x-forwarded-uri': '/orders', 'x-forwarded-host': API_HOST }, 'the gateway sent no X-Forwarded-Method header'],
      ['/check/traefik', { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/orders', 'x-forwarded-host': 'a.example, b.example' }, 'X-Forwarded-Host must name one host'],
    ];
    for (const [path, headers, description] of cases) {
      const answer = await rawRequest(gate.url, 'GET', path, { ...base, ...headers });
      assert.equal(answer.status, 400, description);
      assert.deepEqual(answer.json(), { error: 'invalid_request', error_description: description });
    }
    // The nginx endpoint does not read Traefik's headers (a client could send those through nginx).
    const mixed = await rawRequest(gate.url, 'GET', '/check', { ...base, 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/public/x', 'x-forwarded-host': API_HOST });
    assert.equal(mixed.status, 400);
  });

  test('health, metrics (decisions by outcome, reason and route; cache hits) and unknown endpoints', async () => {
    const health = await fetch(`${gate.url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
    assert.equal((await fetch(`${gate.url}/nope`)).status, 404);

    const token = await tokenFor(worker, orders.identifier, 'orders:read');
    for (let i = 0; i < 3; i++) assert.equal((await gatewayCheck(gate, 'nginx', { uri: '/orders', host: API_HOST, authorization: `Bearer ${token}` })).status, 200);
    const text = await (await fetch(`${gate.url}/metrics`)).text();
    const decisions = (outcome: string, reason: string, route: string) => metricValue(text, 'veil_gate_decisions_total', { outcome, reason, route });
    assert.ok(decisions('allow', 'ok', 'orders-read') >= 6);
    assert.ok(decisions('allow', 'public', 'public') >= 6);
    assert.ok(decisions('deny', 'missing', 'orders-read') >= 9);
    assert.ok(decisions('deny', 'malformed', 'orders-read') >= 9);
    assert.ok(decisions('deny', 'oversized', 'orders-read') >= 3);
    assert.ok(decisions('deny', 'wrong_audience', 'orders-read') >= 2);
    assert.ok(decisions('deny', 'bad_signature', 'admin') >= 1);
    assert.ok(decisions('deny', 'expired', 'short') >= 1);
    assert.ok(decisions('deny', 'insufficient_scope', 'orders-write') >= 3);
    assert.ok(decisions('deny', 'no_route', 'none') >= 12);
    assert.ok(decisions('deny', 'method_not_allowed', 'none') >= 3);
    assert.ok(decisions('deny', 'ambiguous_path', 'none') >= 9);
    assert.ok(decisions('error', 'bad_request', 'none') >= 8);
    assert.ok(metricValue(text, 'veil_gate_verified_token_cache_total', { result: 'hit' }) >= 2);
    assert.ok(metricValue(text, 'veil_gate_verified_token_cache_total', { result: 'miss' }) >= 1);
    assert.ok(metricValue(text, 'veil_gate_decision_duration_seconds_count', { dialect: 'nginx', outcome: 'allow' }) >= 3);
  });

  test('the logs name decisions by route and reason, never a token or a claim value', async () => {
    const lines = gate.logs.flatMap((chunk) => chunk.split('\n')).filter(Boolean);
    const decisions = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'decision');
    assert.ok(decisions.some((l) => l.reason === 'bad_signature' && l.route === 'admin'));
    assert.ok(decisions.some((l) => l.reason === 'ok' && l.route === 'orders-read'));
    const all = lines.join('\n');
    // Claim values (the client id is the sub of these tokens) and tokens: stop() checks every token the helpers saw.
    assert.ok(!all.includes(worker.clientId) && !all.includes(reader.clientId));
    assert.ok(!all.includes('orders:read orders:write'));
  });
});
