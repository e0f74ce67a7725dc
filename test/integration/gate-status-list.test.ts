/**
 * Veil Gate and Token Status Lists: a gate that verifies locally only (no introspection) refuses
 * a revoked token once Veil's list says so, within STATUS_LIST_TTL_SECONDS plus the SDK's
 * one-second minimum cache, with the same 401 and `revoked` metric as an introspected
 * revocation; another token of the same client still passes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { gateDir, gatewayCheck, metricValue, startTestGate, writeDecryptionKey, type TestGate } from '../helpers/gate.js';
import { tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { registerResourceServer, revoke, type TestResourceServer } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const HOST = 'api.example.com';
const TTL_SECONDS = 1;
const BOUND_MS = TTL_SECONDS * 1000 + 1000 + 400;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('veil gate: token status lists without introspection', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let api: TestResourceServer;
  let worker: HttpFlowClient;
  let gate: TestGate;

  const token = async () => {
    const res = await tokenRequest(worker, { grant_type: 'client_credentials', resource: api.identifier, scope: 'read' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.access_token!;
  };
  const check = (bearer: string) => gatewayCheck(gate, 'nginx', { uri: '/items', host: HOST, authorization: `Bearer ${bearer}` });

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores, { STATUS_LIST_TTL_SECONDS: String(TTL_SECONDS), STATUS_LIST_EXP_SECONDS: '30' });
    api = await registerResourceServer(veil, { identifier: 'https://items.example/api', scopes: ['read'] });
    const c = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'worker',
      grant_types: ['client_credentials'],
      resources: [api.identifier],
      resource_scopes: { [api.identifier]: ['read'] },
    });
    worker = { issuer: veil.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret, redirectUri: 'http://127.0.0.1/unused' };
    const dir = await gateDir();
    gate = await startTestGate(dir, {
      issuer: veil.issuer,
      audiences: [{ identifier: api.identifier, decryptionKeys: [await writeDecryptionKey(dir, 'api.jwk.json', api.privateKey, api.publicJwk.kid!)] }],
      routes: [{ name: 'api', host: HOST, audience: api.identifier, scopes: { all: ['read'] }, headers: { sub: 'X-User' } }],
    });
  });

  after(async () => {
    await gate?.stop();
    await veil?.stop();
    await stores?.cleanup();
  });

  test('a revoked token is refused within the ttl; another token of the client still passes', async () => {
    const bearer = await token();
    const other = await token();
    assert.equal((await check(bearer)).status, 200);
    assert.equal((await revoke(veil.issuer, { id: worker.clientId, secret: worker.clientSecret! }, bearer)).status, 200);
    const revokedAt = Date.now();
    let answer = await check(bearer);
    while (answer.status === 200 && Date.now() - revokedAt <= BOUND_MS + 3000) {
      await sleep(25);
      answer = await check(bearer);
    }
    const latency = Date.now() - revokedAt;
    console.log(`gate, local verification only: revoked token refused after ${latency} ms (STATUS_LIST_TTL_SECONDS=${TTL_SECONDS})`);
    assert.equal(answer.status, 401);
    assert.equal(answer.headers['www-authenticate'], `Bearer realm="${api.identifier}", error="invalid_token", error_description="the token is not active"`);
    assert.equal(answer.headers['x-user'], undefined);
    assert.ok(latency <= BOUND_MS, `refused after ${latency} ms, more than ${BOUND_MS}`);
    assert.equal((await check(other)).status, 200);
    const text = await (await fetch(`${gate.url}/metrics`)).text();
    assert.ok(metricValue(text, 'veil_gate_decisions_total', { outcome: 'deny', reason: 'revoked', route: 'api' }) >= 1);
  });
});
