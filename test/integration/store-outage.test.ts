/**
 * When PostgreSQL or Redis goes away, Veil answers 503 temporarily_unavailable (JSON for API
 * callers, the error page for browsers) and recovers by itself when the service returns.
 * The services are real; a TCP proxy between Veil and each one simulates the outage.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTcpProxy } from '../helpers/net.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

type Proxy = Awaited<ReturnType<typeof startTcpProxy>>;

async function eventually(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(250);
  }
  assert.fail('condition not reached in time');
}

describe('store outages', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let pgProxy: Proxy;
  let redisProxy: Proxy;
  let basic: string;
  /** A client never used before the PostgreSQL outage, so no process has it cached. */
  let uncachedBasic: string;

  before(async () => {
    stores = await createTestStores();
    pgProxy = await startTcpProxy('127.0.0.1', Number(new URL(stores.databaseUrl).port || 5432));
    redisProxy = await startTcpProxy('127.0.0.1', Number(new URL(stores.redisUrl).port || 6379));
    const dbUrl = new URL(stores.databaseUrl);
    dbUrl.port = String(pgProxy.port);
    veil = await startTestVeil(undefined, {
      DATABASE_URL: dbUrl.toString(),
      REDIS_URL: `redis://127.0.0.1:${redisProxy.port}`,
      REDIS_KEY_PREFIX: stores.keyPrefix,
    });
    const c = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', { client_name: 'svc' });
    basic = `Basic ${Buffer.from(`${c.body.client.client_id}:${c.body.client_secret}`).toString('base64')}`;
    const u = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', { client_name: 'svc2' });
    uncachedBasic = `Basic ${Buffer.from(`${u.body.client.client_id}:${u.body.client_secret}`).toString('base64')}`;
  });

  after(async () => {
    await veil?.stop();
    await pgProxy?.close();
    await redisProxy?.close();
    await stores?.cleanup();
  });

  const tokenRequest = (authorization = basic) =>
    fetch(`${veil.issuer}/token`, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });

  test('Redis down: 503 temporarily_unavailable, then recovery', async () => {
    assert.equal((await tokenRequest()).status, 200);
    redisProxy.cut();

    const res = await tokenRequest();
    assert.equal(res.status, 503);
    const body = (await res.json()) as { error: string };
    assert.equal(body.error, 'temporarily_unavailable');

    const page = await fetch(`${veil.issuer}/interaction/anything`, { headers: { accept: 'text/html', cookie: '_interaction=x' } });
    assert.ok(page.status === 503 || page.status === 400, `interaction page status ${page.status}`);

    redisProxy.restore();
    await eventually(async () => (await tokenRequest()).status === 200);
  });

  test('PostgreSQL down: 503 on the token endpoint, the admin API and the browser pages, then recovery', async () => {
    pgProxy.cut();

    // Clients are cached (bounded, invalidated across processes); one not yet loaded needs PostgreSQL.
    const res = await tokenRequest(uncachedBasic);
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as { error: string }).error, 'temporarily_unavailable');

    const admin = await veil.admin<{ error: string }>('GET', '/admin/users');
    assert.equal(admin.status, 503);
    assert.equal(admin.body.error, 'temporarily_unavailable');

    const authorize = await fetch(`${veil.issuer}/auth?client_id=any&response_type=code&scope=openid`, { headers: { accept: 'text/html' }, redirect: 'manual' });
    assert.equal(authorize.status, 503);
    assert.match(await authorize.text(), /Temporarily unavailable/);

    pgProxy.restore();
    await eventually(async () => (await tokenRequest(uncachedBasic)).status === 200);
    assert.equal((await veil.admin('GET', '/admin/users')).status, 200);
  });
});
