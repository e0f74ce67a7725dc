/**
 * Brute force against the login page, over real HTTP with real PostgreSQL and Redis: after the
 * configured number of failures the account (or the address) is locked, a correct password is
 * then refused with exactly the answer a wrong one gets, and the lock lifts after its time.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import { postLogin, startLoginInteraction } from '../helpers/http-flow.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const PASSWORD = 'the right password';
const LOCK_SECONDS = 2;

function errorMessage(body: string) {
  return body
    .match(/role="alert"[^>]*>([\s\S]*?)<\//)?.[1]
    ?.replace(/<[^>]+>/g, '')
    .trim();
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
    assert.ok(
      contents.some((c) => c.startsWith(`${stores.keyPrefix}throttle:login-account:`)),
      'the throttle writes under the prefix',
    );
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

describe('device cookies against an attacker who keeps the account delay busy', () => {
  const DEVICE = 'veil.device';
  const MAX_DELAY_SECONDS = 2;
  let stores: TestStores;
  let veil: TestVeil;
  let clientId: string;
  let nextAttacker = 0;
  /** Alice's device cookie from a sign-in before the attack (test a). */
  let aliceDevice: string;

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores, {
      TRUST_PROXY: 'true',
      LOGIN_LOCK_SECONDS: '30',
      LOGIN_MAX_FAILURES_PER_ACCOUNT: '3',
      LOGIN_MAX_FAILURES_PER_IP: '1000',
      LOGIN_ACCOUNT_DELAY_AFTER: '3',
      LOGIN_ACCOUNT_MAX_DELAY_SECONDS: String(MAX_DELAY_SECONDS),
    });
    const c = await veil.admin<{ client: { client_id: string } }>('POST', '/admin/clients', {
      client_name: 'Devices',
      redirect_uris: ['https://app.example/cb'],
      public: true,
    });
    clientId = c.body.client.client_id;
    await veil.admin('POST', '/admin/users', { email: 'alice@example.com', password: PASSWORD });
    await veil.admin('POST', '/admin/users', { email: 'bob@example.com', password: PASSWORD });
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  const open = () => startLoginInteraction(veil.issuer, clientId, 'https://app.example/cb');

  /** Posts a login from `ip`, with a device cookie or none; returns the answer and any new device cookie. */
  const login = async (ip: string, email: string, password: string, device?: string, interaction?: { path: string; cookie: string }) => {
    const i = interaction ?? (await open());
    const res = await fetch(`${veil.issuer}${i.path}/login`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        cookie: [i.cookie, ...(device === undefined ? [] : [`${DEVICE}=${device}`])].join('; '),
        'x-forwarded-for': ip,
      },
      body: new URLSearchParams({ email, password }).toString(),
      redirect: 'manual',
    });
    const body = await res.text();
    const set = res.headers.getSetCookie().find((c) => c.startsWith(`${DEVICE}=`));
    return { status: res.status, page: normalised(body, i.path), set, device: set?.split(';')[0]!.slice(DEVICE.length + 1) };
  };

  /** A new attacker address per two attempts: never near the per-address locks. */
  const attackerAddress = () => `10.${Math.floor(nextAttacker / 512) % 256}.${Math.floor(nextAttacker / 2) % 256}.${nextAttacker++ % 2 === 0 ? 1 : 2}`;
  const attackOnce = () => login(attackerAddress(), 'alice@example.com', `guess ${nextAttacker}`);
  const delayed = () => veil.logs.filter((l) => l.includes('"login.throttled"') && l.includes('"delayed"')).length;

  /** The attacker is past the threshold and takes the (free) delay slot; then `owner` tries at once, inside the delay. */
  async function insideTheDelay<T>(owner: (interaction: { path: string; cookie: string }) => Promise<T>): Promise<T> {
    const interaction = await open();
    for (let i = 0; i < 3; i++) await attackOnce();
    await sleep(MAX_DELAY_SECONDS * 1000 + 200);
    const a = await attackOnce();
    assert.equal(a.status, 401);
    return owner(interaction);
  }

  test('(a) with a device cookie from an earlier sign-in, the owner gets in while an attacker rotating addresses keeps the delay busy', async () => {
    const first = await login('198.51.100.10', 'alice@example.com', PASSWORD);
    assert.equal(first.status, 303);
    assert.ok(first.set && first.device, 'a successful sign-in sets the device cookie');
    assert.match(first.set, /; path=\/interaction(;|$)/i);
    assert.match(first.set, /; httponly(;|$)/i);
    assert.match(first.set, /; samesite=lax(;|$)/i);
    assert.doesNotMatch(first.set, /; secure/i, 'not Secure on an http issuer');
    const expires = Date.parse(/; expires=([^;]+)/i.exec(first.set)?.[1] ?? '');
    assert.ok(expires > Date.now() + 364 * 86_400_000, 'kept for a year');
    assert.doesNotMatch(decodeURIComponent(first.device), /alice|example/i);
    assert.doesNotMatch(Buffer.from(first.device.split('.')[1] ?? '', 'base64url').toString(), /alice|example/i);
    aliceDevice = first.device!;

    // The attack: a wrong password every 0.1 s, two per address.
    let attacking = true;
    const attacker = (async () => {
      while (attacking) {
        await attackOnce();
        await sleep(100);
      }
    })();
    try {
      while (delayed() === 0) await sleep(50);
      const delayedBefore = delayed();
      for (let i = 0; i < 6; i++) {
        const owner = await login('198.51.100.10', 'alice@example.com', PASSWORD, aliceDevice);
        assert.equal(owner.status, 303, `sign-in ${i} with the device cookie during the attack`);
        await sleep(400);
      }
      assert.ok(delayed() > delayedBefore + 5, 'the attacker was being delayed meanwhile');
    } finally {
      attacking = false;
      await attacker;
    }
  });

  test('(b) without a device cookie the owner may be delayed, but those refusals do not lock her address', async () => {
    const throttledBefore = delayed();
    for (let round = 0; round < 4; round++) {
      const refused = await insideTheDelay((i) => login('198.51.100.20', 'alice@example.com', PASSWORD, undefined, i));
      assert.equal(refused.status, 401, `round ${round}: refused inside the delay`);
      assert.equal(refused.set, undefined, 'a refusal sets no device cookie');
    }
    assert.ok(delayed() >= throttledBefore + 4);
    // The attack stops; once the delay has passed, her address is not locked.
    await sleep(MAX_DELAY_SECONDS * 1000 + 300);
    const after = await login('198.51.100.20', 'alice@example.com', PASSWORD);
    assert.equal(after.status, 303);
  });

  test('(c) a device cookie of another account, or a forged or garbled one, gives no exemption; one cookie serves several accounts', async () => {
    const bob = await login('198.51.100.30', 'bob@example.com', PASSWORD);
    assert.equal(bob.status, 303);
    const [h, p, s] = aliceDevice.split('.') as [string, string, string];
    const forged = await new SignJWT(decodeJwt(aliceDevice)).setProtectedHeader(decodeProtectedHeader(aliceDevice) as { alg: string }).sign(randomBytes(32));
    const candidates = {
      "bob's": bob.device!,
      tampered: `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`,
      forged,
      garbled: '%%%not-a-cookie',
    };
    let refusal: string | undefined;
    for (const [name, cookie] of Object.entries(candidates)) {
      const res = await insideTheDelay((i) => login('198.51.100.31', 'alice@example.com', PASSWORD, cookie, i));
      assert.equal(res.status, 401, `${name} cookie: refused inside the delay`);
      assert.equal(res.set, undefined);
      refusal ??= res.page;
      assert.equal(res.page, refusal, 'every refusal is the same page');
    }
    // Bob signs in in Alice's browser: its cookie now serves both.
    const both = await login('198.51.100.32', 'bob@example.com', PASSWORD, aliceDevice);
    assert.equal(both.status, 303);
    const res = await insideTheDelay((i) => login('198.51.100.31', 'alice@example.com', PASSWORD, both.device, i));
    assert.equal(res.status, 303, "the shared browser's cookie still exempts Alice");
    aliceDevice = both.device!;
  });

  test('(d) wrong passwords with a valid device cookie lock that device, not the account', async () => {
    let wrong: Awaited<ReturnType<typeof login>> | undefined;
    for (let i = 0; i < 3; i++) {
      wrong = await login(`198.51.100.${40 + i}`, 'alice@example.com', `typo ${i}`, aliceDevice);
      assert.equal(wrong.status, 401);
      assert.equal(wrong.set, undefined);
    }
    const throttled = veil.logs.filter((l) => l.includes('"login.throttled"')).length;
    const locked = await login('198.51.100.45', 'alice@example.com', PASSWORD, aliceDevice);
    assert.equal(locked.status, 401, 'the locked device is refused, even with the right password');
    assert.equal(locked.page, wrong!.page, 'with the wrong-password page');
    assert.equal(locked.set, undefined);
    const lines = veil.logs.filter((l) => l.includes('"login.throttled"'));
    assert.equal(lines.length, throttled + 1);
    assert.match(lines.at(-1)!, /"scope":"device"/);
    // Another browser of Alice's, and Alice without a cookie once the delay has passed, still sign in.
    await sleep(MAX_DELAY_SECONDS * 1000 + 300);
    const elsewhere = await login('198.51.100.46', 'alice@example.com', PASSWORD);
    assert.equal(elsewhere.status, 303);
    assert.equal((await login('198.51.100.47', 'alice@example.com', PASSWORD, elsewhere.device)).status, 303);
    assert.equal((await login('198.51.100.48', 'alice@example.com', PASSWORD, aliceDevice)).status, 401, 'still locked');
  });
});
