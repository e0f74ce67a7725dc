/**
 * Veil Gate and DPoP-bound tokens (RFC 9449), against a real Veil: `Authorization: DPoP` with the
 * original request's `DPoP` header is accepted when the proof (checked by the SDK) names the
 * original method and URL, the token and its key, once; a bound token sent as Bearer, a replayed
 * proof, another key's proof, the wrong method or URL are refused with a DPoP challenge, in every
 * gateway dialect. A bound token is never exchanged.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { dpopKey, dpopProof, type DPoPKey } from '../helpers/dpop.js';
import { decisionHeaders, gateDir, gatewayCheck, metricValue, startTestGate, writeDecryptionKey, writeSecret, type TestGate } from '../helpers/gate.js';
import type { HttpFlowClient } from '../helpers/http-flow.js';
import { registerResourceServer, type TestResourceServer } from '../helpers/resource-servers.js';
import { rememberSecret, rememberTokens } from '../helpers/secrets.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const API = 'https://api.dpop-gate.example/v1';
const INTERNAL = 'https://orders.dpop-gate.internal';
const HOST = 'api.dpop-gate.example';
const DIALECTS = ['nginx', 'traefik', 'envoy'] as const;

type Created = { client: { client_id: string }; client_secret?: string };

describe('veil gate: DPoP-bound tokens', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let api: TestResourceServer;
  let worker: HttpFlowClient;
  let gate: TestGate;
  let key: DPoPKey;
  let otherKey: DPoPKey;

  const client = async (body: Record<string, unknown>): Promise<HttpFlowClient> => {
    const res = await veil.admin<Created>('POST', '/admin/clients', body);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return { issuer: veil.issuer, clientId: res.body.client.client_id, clientSecret: res.body.client_secret!, redirectUri: 'https://unused.example/cb' };
  };

  /** A client credentials token for the API, bound to `bindTo` when given. */
  async function accessToken(bindTo?: DPoPKey): Promise<string> {
    rememberSecret(worker.clientSecret, 'client secret');
    const res = await fetch(`${veil.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${worker.clientId}:${worker.clientSecret}`).toString('base64')}`,
        ...(bindTo ? { dpop: await dpopProof(bindTo, { htm: 'POST', htu: `${veil.issuer}/token` }) } : {}),
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: API, scope: 'orders:read' }).toString(),
    });
    const body = (await res.json()) as Record<string, string>;
    rememberTokens(body);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.token_type, bindTo ? 'DPoP' : 'Bearer');
    return body.access_token!;
  }

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    api = await registerResourceServer(veil, { identifier: API, scopes: ['orders:read'] });
    await registerResourceServer(veil, { identifier: INTERNAL, scopes: ['orders:read'] });
    worker = await client({ client_name: 'worker', grant_types: ['client_credentials'], resources: [API], resource_scopes: { [API]: ['orders:read'] } });
    const gateClient = await client({
      client_name: 'gate',
      grant_types: [TOKEN_EXCHANGE],
      resources: [INTERNAL],
      resource_scopes: { [INTERNAL]: ['orders:read'] },
      exchange_from: [API],
    });
    [key, otherKey] = await Promise.all([dpopKey('ES256'), dpopKey('ES256')]);

    const dir = await gateDir();
    gate = await startTestGate(dir, {
      issuer: veil.issuer,
      audiences: [{ identifier: API, decryptionKeys: [await writeDecryptionKey(dir, 'api.jwk.json', api.privateKey, api.publicJwk.kid!)] }],
      client: { id: gateClient.clientId, secretFile: await writeSecret(dir, 'gate-client.secret', gateClient.clientSecret!) },
      routes: [
        { name: 'orders', host: HOST, path: '/orders', methods: ['GET', 'POST'], audience: API, scopes: { all: ['orders:read'] }, headers: { sub: 'X-User' } },
        { name: 'exchanged', host: HOST, path: '/exchanged', audience: API, exchange: { resource: INTERNAL, scope: 'orders:read' } },
      ],
    });
  });

  after(async () => {
    await gate?.stop();
    await veil?.stop();
    await stores?.cleanup();
  });

  /** The proof a client makes for the original request (the gateways in these tests say https, or nothing). */
  const proofFor = (token: string, k: DPoPKey = key, htm = 'GET', htu = `https://${HOST}/orders/17`) => dpopProof(k, { htm, htu, accessToken: token });

  for (const dialect of DIALECTS) {
    test(`${dialect}: a bound token with its proof passes once; as Bearer, replayed, another key, wrong method or URL: 401 with a DPoP challenge`, async () => {
      const token = await accessToken(key);
      const check = (authorization: string, dpop?: string, method = 'GET') =>
        gatewayCheck(gate, dialect, { method, uri: '/orders/17?page=2', host: HOST, authorization, ...(dpop !== undefined && { extra: { dpop } }) });

      const proof = await proofFor(token);
      const ok = await check(`DPoP ${token}`, proof);
      assert.equal(ok.status, 200, ok.body);
      assert.equal(decisionHeaders(ok)['x-user'], worker.clientId);

      const replayed = await check(`DPoP ${token}`, proof);
      assert.equal(replayed.status, 401);
      assert.equal(replayed.headers['www-authenticate'], `DPoP realm="${API}", error="invalid_dpop_proof", error_description="dpop_replay"`);
      assert.deepEqual(replayed.json(), { error: 'invalid_dpop_proof', error_description: 'dpop_replay' });

      const bearer = await check(`Bearer ${token}`);
      assert.equal(bearer.status, 401);
      assert.match(String(bearer.headers['www-authenticate']), /^DPoP realm="[^"]+", error="invalid_token", error_description="the token is DPoP-bound/);

      const cases: Array<[string, Promise<string>, string, string]> = [
        ['another key', proofFor(token, otherKey), 'GET', 'dpop_key_mismatch'],
        ['wrong method', proofFor(token, key, 'GET'), 'POST', 'dpop_htm_mismatch'],
        ['wrong URL', proofFor(token, key, 'GET', `https://${HOST}/orders/18`), 'GET', 'dpop_htu_mismatch'],
        ['wrong scheme', proofFor(token, key, 'GET', `http://${HOST}/orders/17`), 'GET', 'dpop_htu_mismatch'],
        ['no proof', Promise.resolve(''), 'GET', 'invalid_dpop_proof'],
      ];
      for (const [label, made, method, code] of cases) {
        const proofValue = await made;
        const answer = await check(`DPoP ${token}`, proofValue || undefined, method);
        assert.equal(answer.status, 401, `${label}: ${answer.body}`);
        assert.deepEqual(answer.json(), { error: 'invalid_dpop_proof', error_description: code }, label);
        assert.equal(decisionHeaders(answer)['x-user'], undefined);
      }
    });
  }

  test('an unbound token sent as DPoP is refused; as Bearer it still passes', async () => {
    const token = await accessToken();
    const asDpop = await gatewayCheck(gate, 'nginx', { uri: '/orders', host: HOST, authorization: `DPoP ${token}`, extra: { dpop: await proofFor(token) } });
    assert.equal(asDpop.status, 401);
    assert.equal(asDpop.json().error, 'invalid_token');
    const asBearer = await gatewayCheck(gate, 'nginx', { uri: '/orders', host: HOST, authorization: `Bearer ${token}` });
    assert.equal(asBearer.status, 200, asBearer.body);
  });

  test('nginx: X-Original-Proto names the scheme the proof must use', async () => {
    const token = await accessToken(key);
    const http = await gatewayCheck(gate, 'nginx', {
      uri: '/orders/17',
      host: HOST,
      authorization: `DPoP ${token}`,
      extra: { dpop: await proofFor(token, key, 'GET', `http://${HOST}/orders/17`), 'x-original-proto': 'http' },
    });
    assert.equal(http.status, 200, http.body);
    const https = await gatewayCheck(gate, 'nginx', {
      uri: '/orders/17',
      host: HOST,
      authorization: `DPoP ${token}`,
      extra: { dpop: await proofFor(token), 'x-original-proto': 'http' },
    });
    assert.equal(https.json().error_description, 'dpop_htu_mismatch');
  });

  test('a bound token is never exchanged: 401, no exchange attempted; refusals are counted as bad_dpop_proof', async () => {
    const metrics = async () => (await fetch(`${gate.url}/metrics`)).text();
    const before = await metrics();
    const token = await accessToken(key);
    const answer = await gatewayCheck(gate, 'nginx', {
      uri: '/exchanged',
      host: HOST,
      authorization: `DPoP ${token}`,
      extra: { dpop: await proofFor(token, key, 'GET', `https://${HOST}/exchanged`) },
    });
    assert.equal(answer.status, 401, answer.body);
    assert.deepEqual(answer.json(), { error: 'invalid_token', error_description: 'a DPoP-bound token cannot be exchanged' });
    assert.equal(decisionHeaders(answer)['x-veil-authorization'], undefined);
    const after = await metrics();
    for (const outcome of ['issued', 'subject_refused', 'failed']) {
      assert.equal(metricValue(after, 'veil_gate_token_exchanges_total', { outcome }), metricValue(before, 'veil_gate_token_exchanges_total', { outcome }), outcome);
    }
    assert.ok(metricValue(after, 'veil_gate_decisions_total', { outcome: 'deny', reason: 'bad_dpop_proof', route: 'orders' }) >= 15);
  });
});
