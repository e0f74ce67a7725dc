/**
 * Operations endpoints on the admin listener, without the admin token: /healthz, /readyz
 * (turns unready while Redis is unreachable and ready again when it returns) and /metrics
 * (logins, token issuance by grant type and audience, request latency; nothing identifying).
 * Redis sits behind a TCP proxy so the outage is real.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { httpAuthorizationCodeFlow, postLogin, startLoginInteraction, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { startTcpProxy } from '../helpers/net.js';
import { registerResourceServer } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const ADMIN_TOKEN = 'operations-test-admin-token-0123456789';
const RESOURCE = 'https://api.example.com/orders';
const user = { email: 'ops-user@example.com', password: 'operations are fun 123' };

async function eventually(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(200);
  }
  assert.fail('condition not reached in time');
}

/** The value of one sample line, e.g. `veil_logins_total{outcome="success"}`; undefined if absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('operations endpoints', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let redisProxy: Awaited<ReturnType<typeof startTcpProxy>>;
  let client: HttpFlowClient;

  // No admin token on these requests: probes and scrapers do not carry one.
  const get = (path: string) => fetch(`${veil.adminUrl}${path}`);
  const readyz = async () => {
    const res = await get('/readyz');
    return { status: res.status, body: (await res.json()) as { status: string; checks: Record<string, string> } };
  };

  before(async () => {
    stores = await createTestStores();
    redisProxy = await startTcpProxy('127.0.0.1', Number(new URL(stores.redisUrl).port || 6379));
    veil = await startTestVeil(stores, { REDIS_URL: `redis://127.0.0.1:${redisProxy.port}`, ADMIN_TOKEN });
    assert.equal((await veil.admin('POST', '/admin/users', user)).status, 201);
    await registerResourceServer(veil, { identifier: RESOURCE, scopes: ['orders:read'] });
    const c = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'ops',
      redirect_uris: ['https://app.example/cb'],
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      scope: 'openid offline_access orders:read',
      resources: [RESOURCE],
    });
    assert.equal(c.status, 201);
    client = { issuer: veil.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret, redirectUri: 'https://app.example/cb' };
  });

  after(async () => {
    await veil?.stop();
    await redisProxy?.close();
    await stores?.cleanup();
  });

  test('/healthz answers 200 without the admin token', async () => {
    const res = await get('/healthz');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok' });
  });

  test('/readyz answers 200 with every check up', async () => {
    const res = await readyz();
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { status: 'ready', checks: { postgres: 'up', redis: 'up', keys: 'loaded' } });
  });

  test('the rest of the admin API still requires the token', async () => {
    assert.equal((await get('/admin/users')).status, 401);
  });

  test('/metrics counts logins and issued tokens, times requests, and identifies no one', async () => {
    const interaction = await startLoginInteraction(veil.issuer, client.clientId, client.redirectUri);
    const failed = await postLogin(veil.issuer, interaction, user.email, 'not the password at all');
    assert.equal(failed.status, 401);

    const tokens = await httpAuthorizationCodeFlow(client, user);
    const refreshed = await tokenRequest(client, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
    assert.equal(refreshed.status, 200);
    const machine = await tokenRequest(client, { grant_type: 'client_credentials', resource: RESOURCE, scope: 'orders:read' });
    assert.equal(machine.status, 200);

    const res = await get('/metrics');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();

    assert.equal(sample(text, 'veil_logins_total{outcome="success"}'), 1);
    assert.equal(sample(text, 'veil_logins_total{outcome="failure"}'), 1);
    assert.equal(sample(text, 'veil_tokens_issued_total{grant_type="authorization_code",audience="userinfo"}'), 1);
    assert.equal(sample(text, 'veil_tokens_issued_total{grant_type="refresh_token",audience="userinfo"}'), 1);
    assert.equal(sample(text, `veil_tokens_issued_total{grant_type="client_credentials",audience="${RESOURCE}"}`), 1);

    // Latency: oidc-provider route names and router patterns, never raw paths.
    const tokenCount = sample(text, 'veil_http_request_duration_seconds_count{listener="public",method="POST",route="token",status="200"}');
    assert.ok(tokenCount !== undefined && tokenCount >= 3, `token requests timed: ${tokenCount}`);
    assert.ok((sample(text, 'veil_http_request_duration_seconds_count{listener="public",method="POST",route="/interaction/:uid/login",status="401"}') ?? 0) >= 1);
    assert.ok((sample(text, 'veil_http_request_duration_seconds_count{listener="public",method="GET",route="authorization",status="303"}') ?? 0) >= 1);
    assert.ok((sample(text, 'veil_http_request_duration_seconds_count{listener="admin",method="POST",route="/admin/clients",status="201"}') ?? 0) >= 1);
    assert.match(text, /^veil_http_request_duration_seconds_bucket\{le="0\.1",listener="public",method="POST",route="token",status="200"\} \d+$/m);
    assert.equal(sample(text, 'veil_store_up{store="postgres"}'), 1);
    assert.equal(sample(text, 'veil_store_up{store="redis"}'), 1);
    assert.match(text, /^process_resident_memory_bytes /m);

    const uid = interaction.path.split('/').pop()!;
    for (const secret of [
      tokens.access_token,
      tokens.refresh_token,
      tokens.id_token,
      refreshed.body.access_token!,
      machine.body.access_token!,
      client.clientSecret!,
      user.email,
      uid,
      ADMIN_TOKEN,
    ]) {
      assert.ok(!text.includes(secret), `metrics leak ${secret.slice(0, 12)}…`);
    }
    assert.doesNotMatch(text, /\/interaction\/(?!:uid)/, 'no raw interaction path');
  });

  test('/readyz turns 503 while Redis is unreachable and 200 again when it returns', async () => {
    redisProxy.cut();
    try {
      await eventually(async () => (await readyz()).status === 503);
      const down = await readyz();
      assert.deepEqual(down.body, { status: 'unready', checks: { postgres: 'up', redis: 'down', keys: 'loaded' } });
      assert.equal(sample(await (await get('/metrics')).text(), 'veil_store_up{store="redis"}'), 0);
    } finally {
      redisProxy.restore();
    }
    await eventually(async () => (await readyz()).status === 200);
    assert.equal(sample(await (await get('/metrics')).text(), 'veil_store_up{store="redis"}'), 1);
  });
});
