/**
 * Brute force against the login page, over real HTTP with real PostgreSQL and Redis: after the
 * configured number of failures the account (or the address) is locked, a correct password is
 * then refused with exactly the answer a wrong one gets, and the lock lifts after its time.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { postLogin, startLoginInteraction } from '../helpers/http-flow.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const PASSWORD = 'the right password';
const LOCK_SECONDS = 2;

function errorMessage(body: string) {
  return body.match(/role="alert"[^>]*>([\s\S]*?)<\//)?.[1]?.replace(/<[^>]+>/g, '').trim();
}

/** The page with what differs per attempt anyway (the interaction id in the form actions) removed. */
function normalised(body: string, interactionPath: string) {
  return body.replaceAll(interactionPath, '/interaction/UID');
}

async function setUp(env: Record<string, string>) {
  const stores = await createTestStores();
  const veil = await startTestVeil(stores, { LOGIN_LOCK_SECONDS: String(LOCK_SECONDS), ...env });
  const c = await veil.admin<{ client: { client_id: string } }>('POST', '/admin/clients', {
    client_name: 'Brute force',
    redirect_uris: ['https://app.example/cb'],
    public: true,
  });
  const attempt = async (email: string, password: string) => {
    const interaction = await startLoginInteraction(veil.issuer, c.body.client.client_id, 'https://app.example/cb');
    const res = await postLogin(veil.issuer, interaction, email, password);
    return { ...res, page: normalised(res.body, interaction.path) };
  };
  return { stores, veil, attempt };
}

/** Every string and list value under the test prefix, with its key. */
async function redisContents(stores: TestStores): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await stores.redis.scan(cursor, 'MATCH', `${stores.keyPrefix}*`, 'COUNT', 500);
    for (const key of keys) {
      const type = await stores.redis.type(key);
      if (type === 'string') out.push(key, (await stores.redis.get(key)) ?? '');
      else if (type === 'list') out.push(key, ...(await stores.redis.lrange(key, 0, -1)));
      else out.push(key);
    }
    cursor = next;
  } while (cursor !== '0');
  return out;
}

describe('per-account lockout', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let attempt: Awaited<ReturnType<typeof setUp>>['attempt'];

  before(async () => {
    ({ stores, veil, attempt } = await setUp({ LOGIN_MAX_FAILURES_PER_ACCOUNT: '3', LOGIN_MAX_FAILURES_PER_IP: '1000' }));
    await veil.admin('POST', '/admin/users', { email: 'victim@example.com', password: PASSWORD });
    await veil.admin('POST', '/admin/users', { email: 'bystander@example.com', password: PASSWORD });
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  test('after 3 failures the right password gets exactly the wrong-password answer, until the lock lifts', async () => {
    const wrong = await attempt('victim@example.com', 'guess 1');
    assert.equal(wrong.status, 401);
    assert.equal(errorMessage(wrong.body), 'Invalid email or password.');
    await attempt('victim@example.com', 'guess 2');
    await attempt('victim@example.com', 'guess 3');

    const locked = await attempt('victim@example.com', PASSWORD);
    assert.equal(locked.status, wrong.status);
    assert.equal(locked.page, wrong.page);
    // Still locked on the next try, and only this account is.
    assert.equal((await attempt('victim@example.com', PASSWORD)).page, wrong.page);
    assert.equal((await attempt('bystander@example.com', PASSWORD)).status, 303);

    const lines = veil.logs.filter((l) => l.includes('"login.throttled"'));
    assert.ok(lines.length >= 2, 'throttled attempts are logged');
    for (const l of lines) assert.doesNotMatch(l, /victim/);

    await sleep(LOCK_SECONDS * 1000 + 300);
    assert.equal((await attempt('victim@example.com', PASSWORD)).status, 303);
  });

  test('an unknown email is counted and locked the same way', async () => {
    const throttledBefore = veil.logs.filter((l) => l.includes('"login.throttled"')).length;
    const wrong = await attempt('nobody@example.com', 'guess');
    await attempt('nobody@example.com', 'guess');
    await attempt('nobody@example.com', 'guess');
    const locked = await attempt('nobody@example.com', 'guess');
    assert.equal(locked.status, 401);
    assert.equal(locked.page, wrong.page);
    // Same answer, but it was the lock that answered (the page alone cannot tell).
    assert.equal(veil.logs.filter((l) => l.includes('"login.throttled"')).length, throttledBefore + 1);
  });

  test('a success resets the account count', async () => {
    await attempt('bystander@example.com', 'guess');
    await attempt('bystander@example.com', 'guess');
    assert.equal((await attempt('bystander@example.com', PASSWORD)).status, 303);
    await attempt('bystander@example.com', 'guess');
    await attempt('bystander@example.com', 'guess');
    assert.equal((await attempt('bystander@example.com', PASSWORD)).status, 303);
  });

  test('nothing in Redis contains an email in clear', async () => {
    await attempt('Clear.Text@Example.com', 'guess');
    const contents = await redisContents(stores);
    assert.ok(contents.some((c) => c.startsWith(`${stores.keyPrefix}throttle:login-account:`)), 'the throttle writes under the prefix');
    for (const c of contents) assert.doesNotMatch(c, /victim|nobody|bystander|clear\.text/i);
  });
});

describe('per-address lockout', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let attempt: Awaited<ReturnType<typeof setUp>>['attempt'];

  before(async () => {
    ({ stores, veil, attempt } = await setUp({ LOGIN_MAX_FAILURES_PER_ACCOUNT: '100', LOGIN_MAX_FAILURES_PER_IP: '4' }));
    await veil.admin('POST', '/admin/users', { email: 'fresh@example.com', password: PASSWORD });
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  test('failures across different accounts lock the address, then the lock lifts', async () => {
    let wrong: Awaited<ReturnType<typeof attempt>> | undefined;
    for (let i = 0; i < 4; i++) wrong = await attempt(`spray-${i}@example.com`, 'Password1');
    const locked = await attempt('fresh@example.com', PASSWORD);
    assert.equal(locked.status, 401);
    assert.equal(errorMessage(locked.body), errorMessage(wrong!.body));

    await sleep(LOCK_SECONDS * 1000 + 300);
    assert.equal((await attempt('fresh@example.com', PASSWORD)).status, 303);
  });
});

describe('lockout per account and address, progressive delay per account', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let clientId: string;

  before(async () => {
    stores = await createTestStores();
    // Behind a proxy, so the test can speak from several addresses (X-Forwarded-For).
    veil = await startTestVeil(stores, {
      TRUST_PROXY: 'true',
      LOGIN_LOCK_SECONDS: '60',
      LOGIN_MAX_FAILURES_PER_ACCOUNT: '3',
      LOGIN_MAX_FAILURES_PER_IP: '1000',
      LOGIN_ACCOUNT_DELAY_AFTER: '6',
      LOGIN_ACCOUNT_MAX_DELAY_SECONDS: '2',
    });
    const c = await veil.admin<{ client: { client_id: string } }>('POST', '/admin/clients', {
      client_name: 'Addresses',
      redirect_uris: ['https://app.example/cb'],
      public: true,
    });
    clientId = c.body.client.client_id;
    await veil.admin('POST', '/admin/users', { email: 'target@example.com', password: PASSWORD });
    await veil.admin('POST', '/admin/users', { email: 'sprayed@example.com', password: PASSWORD });
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  const from = async (ip: string, email: string, password: string) => {
    const interaction = await startLoginInteraction(veil.issuer, clientId, 'https://app.example/cb');
    const res = await fetch(`${veil.issuer}${interaction.path}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: interaction.cookie, 'x-forwarded-for': ip },
      body: new URLSearchParams({ email, password }).toString(),
      redirect: 'manual',
    });
    const body = await res.text();
    return { status: res.status, page: normalised(body, interaction.path) };
  };

  test('failures from one address lock that address out of the account; the real user elsewhere still signs in', async () => {
    const wrong = await from('203.0.113.66', 'target@example.com', 'guess 1');
    assert.equal(wrong.status, 401);
    await from('203.0.113.66', 'target@example.com', 'guess 2');
    await from('203.0.113.66', 'target@example.com', 'guess 3');
    // The attacker's address is locked for this account: even the right password gets the wrong-password page.
    const locked = await from('203.0.113.66', 'target@example.com', PASSWORD);
    assert.equal(locked.status, wrong.status);
    assert.equal(locked.page, wrong.page);
    // The owner, from their own address, is not locked out.
    assert.equal((await from('198.51.100.20', 'target@example.com', PASSWORD)).status, 303);
  });

  test('failures spread over many addresses slow the account down (same page), without locking it for good', async () => {
    let wrong: Awaited<ReturnType<typeof from>> | undefined;
    // Six failures from six addresses: none reaches the per-address lock, the account's count reaches its threshold.
    for (let i = 0; i < 6; i++) wrong = await from(`192.0.2.${10 + i}`, 'sprayed@example.com', `guess ${i}`);
    // The seventh is let through (and fails), after which each further attempt must wait.
    assert.equal((await from('192.0.2.30', 'sprayed@example.com', 'guess 7')).status, 401);
    const delayed = await from('198.51.100.21', 'sprayed@example.com', PASSWORD);
    assert.equal(delayed.status, wrong!.status, 'an attempt inside the delay is refused');
    assert.equal(delayed.page, wrong!.page, 'with exactly the wrong-password page');
    const throttled = veil.logs.filter((l) => l.includes('"login.throttled"'));
    assert.ok(throttled.length >= 1 && throttled.every((l) => !/sprayed/.test(l)));
    // Once the (capped) delay has passed, the right password works again.
    await sleep(2300);
    assert.equal((await from('198.51.100.21', 'sprayed@example.com', PASSWORD)).status, 303);
  });
});
