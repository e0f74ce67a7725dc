/**
 * Acceptance 5 of sealed tokens, end to end: the demo API (the SDK's Koa middleware) registered
 * with a real Veil through its jwks_uri accepts a sealed token Veil issued, and, with
 * introspection on, refuses it once it has been revoked.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startDemoApi, type DemoApi } from '../../src/demo-api/app.js';
import { tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { revoke } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

describe('demo API protected by the resource-server SDK', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let plain: DemoApi;
  let checked: DemoApi;
  let worker: HttpFlowClient;
  const identifier = 'http://demo-api.example/api';

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    const keyFile = path.join(veil.tmpDir, 'demo-api-key.json');
    plain = await startDemoApi({ port: 0, host: '127.0.0.1', issuer: veil.issuer, identifier, keyFile, log: () => {} });
    const created = await veil.admin<{ introspection_client_id: string; introspection_client_secret: string }>('POST', '/admin/resources', {
      identifier,
      name: 'Demo API',
      scopes: ['read'],
      jwks_uri: plain.jwksUri,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    // The same key, with introspection on: catches revocations.
    checked = await startDemoApi({
      port: 0,
      host: '127.0.0.1',
      issuer: veil.issuer,
      identifier,
      keyFile,
      introspection: { clientId: created.body.introspection_client_id, clientSecret: created.body.introspection_client_secret },
      log: () => {},
    });
    const w = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'demo-caller',
      grant_types: ['client_credentials'],
      scope: 'read',
      resources: [identifier],
    });
    worker = { issuer: veil.issuer, clientId: w.body.client.client_id, clientSecret: w.body.client_secret, redirectUri: 'x' };
  });

  after(async () => {
    await checked?.close();
    await plain?.close();
    await veil?.stop();
    await stores?.cleanup();
  });

  const hello = (api: DemoApi, token?: string) => fetch(`${api.url}/api/hello`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  test('a sealed token is accepted; after revocation the introspecting API refuses it', async () => {
    const { body } = await tokenRequest(worker, { grant_type: 'client_credentials', resource: identifier, scope: 'read' });
    const token = body.access_token!;
    for (const api of [plain, checked]) {
      const res = await hello(api, token);
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(((await res.json()) as { client_id: string }).client_id, worker.clientId);
    }
    const missing = await hello(checked);
    assert.equal(missing.status, 401);
    assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer realm=/);

    assert.equal((await revoke(veil.issuer, { id: worker.clientId, secret: worker.clientSecret! }, token)).status, 200);
    const refused = await hello(checked, token);
    assert.equal(refused.status, 401);
    assert.match(refused.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    // Without introspection, a revoked token stays valid until it expires: the trade-off to know.
    assert.equal((await hello(plain, token)).status, 200);
  });
});
