/**
 * Veil Gate and revocation: with `introspect.enabled` a revoked token is refused once the
 * introspection cache has expired (at once with `cacheSeconds: 0`); without it the gate verifies
 * locally and learns nothing. When Veil cannot be reached (introspection, JWKS, token exchange)
 * the gate fails closed with 503 and says so in its logs.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { gateDir, gatewayCheck, metricValue, startTestGate, writeDecryptionKey, writeSecret, type TestGate } from '../helpers/gate.js';
import { tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { startTcpProxy } from '../helpers/net.js';
import { registerResourceServer, revoke, type TestResourceServer } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

interface CreatedClient {
  client: { client_id: string };
  client_secret?: string;
}

const HOST = 'api.example.com';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('veil gate: revocation and Veil outages', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let api: TestResourceServer;
  let worker: HttpFlowClient;
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
  const gates: TestGate[] = [];

  const startGate = async (extra: Record<string, unknown>, options: { introspection?: boolean; routes?: unknown[]; env?: NodeJS.ProcessEnv } = {}) => {
    const dir = await gateDir();
    const audience = {
      identifier: api.identifier,
      decryptionKeys: [await writeDecryptionKey(dir, 'api.jwk.json', api.privateKey, api.publicJwk.kid!)],
      ...(options.introspection !== false && { introspection: { clientId: api.clientId, secretFile: await writeSecret(dir, 'introspection.secret', api.clientSecret) } }),
    };
    const gate = await startTestGate(
      dir,
      {
        issuer: veil.issuer,
        audiences: [audience],
        routes: options.routes ?? [{ name: 'api', host: HOST, audience: api.identifier, scopes: { all: ['read'] }, headers: { sub: 'X-User' } }],
        ...extra,
      },
      { env: options.env ?? {} },
    );
    gates.push(gate);
    return gate;
  };
  const token = async () => {
    const res = await tokenRequest(worker, { grant_type: 'client_credentials', resource: api.identifier, scope: 'read' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.access_token!;
  };
  const check = (gate: TestGate, bearer: string) => gatewayCheck(gate, 'nginx', { uri: '/items', host: HOST, authorization: `Bearer ${bearer}` });
  const viaProxy = (path: string) => `http://127.0.0.1:${proxy.port}${path}`;

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    api = await registerResourceServer(veil, { identifier: 'https://items.example/api', scopes: ['read'] });
    const c = await veil.admin<CreatedClient>('POST', '/admin/clients', {
      client_name: 'worker',
      grant_types: ['client_credentials'],
      resources: [api.identifier],
      resource_scopes: { [api.identifier]: ['read'] },
    });
    worker = { issuer: veil.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret!, redirectUri: 'http://127.0.0.1/unused' };
    const port = Number(new URL(veil.issuer).port);
    proxy = await startTcpProxy('127.0.0.1', port);
  });

  after(async () => {
    for (const gate of gates) await gate.stop();
    await proxy?.close();
    await veil?.stop();
    await stores?.cleanup();
  });

  test('a revoked token: refused at once with cacheSeconds 0, after cacheSeconds with a cache, never with local verification only', async () => {
    const live = await startGate({ introspect: { enabled: true, cacheSeconds: 0 } });
    const cached = await startGate({ introspect: { enabled: true, cacheSeconds: 2 } });
    const local = await startGate({}, { introspection: false });
    const bearer = await token();
    for (const gate of [live, cached, local]) assert.equal((await check(gate, bearer)).status, 200);

    assert.equal((await revoke(veil.issuer, { id: worker.clientId, secret: worker.clientSecret! }, bearer)).status, 200);
    const revokedAt = Date.now();
    const refused = await check(live, bearer);
    assert.equal(refused.status, 401);
    assert.equal(refused.headers['www-authenticate'], `Bearer realm="${api.identifier}", error="invalid_token", error_description="the token is not active"`);
    // Within cacheSeconds the cached "active" answer stands; afterwards Veil is asked again.
    const stillCached = await check(cached, bearer);
    assert.ok(Date.now() - revokedAt < 2000, 'checked within the cache window');
    assert.equal(stillCached.status, 200);
    await sleep(2000 - (Date.now() - revokedAt) + 200);
    assert.equal((await check(cached, bearer)).status, 401);
    // Local verification cannot know: the token verifies until it expires (docs: What's next).
    assert.equal((await check(local, bearer)).status, 200);

    // Another token of the same client is still fine: only the revoked one is refused.
    assert.equal((await check(live, await token())).status, 200);

    const text = await (await fetch(`${live.url}/metrics`)).text();
    assert.equal(metricValue(text, 'veil_gate_decisions_total', { outcome: 'deny', reason: 'revoked', route: 'api' }), 1);
    assert.ok(metricValue(text, 'veil_gate_introspection_calls_total', { audience: api.identifier, outcome: 'inactive' }) >= 1);
    assert.ok(metricValue(text, 'veil_gate_introspection_calls_total', { audience: api.identifier, outcome: 'active' }) >= 2);
  });

  test('Veil unreachable during introspection: 503, logged; back to 200 when Veil is', async () => {
    const gate = await startGate({ introspect: { enabled: true, cacheSeconds: 0 }, introspectionEndpoint: viaProxy('/token/introspection') });
    const bearer = await token();
    assert.equal((await check(gate, bearer)).status, 200);
    proxy.cut();
    try {
      for (const dialect of ['nginx', 'traefik', 'envoy'] as const) {
        const answer = await gatewayCheck(gate, dialect, { uri: '/items', host: HOST, authorization: `Bearer ${bearer}` });
        assert.equal(answer.status, 503, dialect);
        assert.deepEqual(answer.json(), { error: 'temporarily_unavailable', error_description: 'the authorization server cannot be reached' });
        assert.equal(answer.headers['x-user'], undefined);
      }
    } finally {
      proxy.restore();
    }
    assert.equal((await check(gate, bearer)).status, 200);
    const logged = gate.logs
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(logged.some((l) => l.level === 50 && l.reason === 'introspection_unavailable' && String(l.msg).startsWith('Veil unreachable, request refused (503)')));
    const text = await (await fetch(`${gate.url}/metrics`)).text();
    assert.equal(metricValue(text, 'veil_gate_decisions_total', { outcome: 'error', reason: 'introspection_unavailable', route: 'api' }), 3);
    assert.equal(metricValue(text, 'veil_gate_introspection_calls_total', { audience: api.identifier, outcome: 'failed' }), 3);
  });

  test("Veil's JWKS unreachable: 503 for a token the gate has not verified yet", async () => {
    const gate = await startGate({ jwksUri: viaProxy('/jwks') }, { introspection: false });
    proxy.cut();
    try {
      const answer = await check(gate, await token());
      assert.equal(answer.status, 503);
    } finally {
      proxy.restore();
    }
    assert.equal((await check(gate, await token())).status, 200);
  });

  test('graceful shutdown: close() stops accepting, lets the check in flight finish (Veil answering late), then resolves', async () => {
    // In front of Veil's real introspection endpoint: holds each call until the test lets it through.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let arrived!: () => void;
    const held = new Promise<void>((resolve) => (arrived = resolve));
    const hold = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        arrived();
        void released.then(async () => {
          const upstream = await fetch(`${veil.issuer}/token/introspection`, {
            method: 'POST',
            headers: { authorization: req.headers.authorization!, 'content-type': req.headers['content-type']! },
            body: Buffer.concat(chunks),
          });
          res.writeHead(upstream.status, { 'content-type': 'application/json' }).end(await upstream.text());
        });
      });
    });
    await new Promise<void>((resolve) => hold.listen(0, '127.0.0.1', resolve));
    try {
      const gate = await startGate({ introspect: { enabled: true, cacheSeconds: 0 }, introspectionEndpoint: `http://127.0.0.1:${(hold.address() as AddressInfo).port}/` });
      const inFlight = check(gate, await token());
      await held;
      let closed = false;
      const closing = gate.close().then(() => (closed = true));
      await sleep(200);
      assert.equal(closed, false, 'close() waits for the check in flight');
      await assert.rejects(fetch(`${gate.url}/healthz`), 'no new connections while draining');
      release();
      assert.equal((await inFlight).status, 200);
      await closing;
      assert.match(gate.logs.join(''), /"msg":"veil gate stopped"/);
    } finally {
      release();
      hold.closeAllConnections();
      await new Promise<void>((resolve) => hold.close(() => resolve()));
    }
  });

  test('Veil unreachable during token exchange: 503, logged, nothing passed upstream', async () => {
    const gate = await startGate(
      { client: { id: 'gate-client' }, tokenEndpoint: viaProxy('/token') },
      {
        introspection: false,
        env: { GATE_CLIENT_SECRET: 'gate-client-secret-for-the-outage-test' },
        routes: [{ name: 'exchange', host: HOST, audience: api.identifier, scopes: { all: ['read'] }, exchange: { resource: 'https://internal.example/api', scope: 'read' } }],
      },
    );
    proxy.cut();
    try {
      const answer = await check(gate, await token());
      assert.equal(answer.status, 503);
      assert.equal(answer.headers['x-veil-authorization'], undefined);
    } finally {
      proxy.restore();
    }
    const logged = gate.logs.join('');
    assert.match(logged, /Veil unreachable, request refused \(503\): token exchange failed: unavailable \(token endpoint unreachable/);
    const text = await (await fetch(`${gate.url}/metrics`)).text();
    assert.equal(metricValue(text, 'veil_gate_token_exchanges_total', { outcome: 'unavailable' }), 1);
    assert.equal(metricValue(text, 'veil_gate_decisions_total', { outcome: 'error', reason: 'exchange_unavailable', route: 'exchange' }), 1);
  });
});
