/**
 * LoginThrottle on both backends (in-process memory and a real Redis under a test prefix),
 * plus the address normalisation and the HTTP Basic client-id parsing the throttles key on.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { basicClientId } from '../../src/abuse/client-throttle.js';
import { addressKey, type RedisBackend } from '../../src/abuse/limiter.js';
import { LoginThrottle } from '../../src/abuse/login-throttle.js';
import { createRedisClient } from '../../src/store/redis-connection.js';
import { REDIS_TEST_URL } from '../helpers/stores.js';

const SECRET = 'a cookie key of at least thirty-two characters';
const LIMITS = { maxFailuresPerAccount: 3, maxFailuresPerIp: 5, lockSeconds: 1, accountDelayAfter: 100, accountMaxDelaySeconds: 1, secret: SECRET };
const email = () => `user-${randomBytes(4).toString('hex')}@example.com`;

/** Failed attempts as the login route makes them: counted by check(), then settled. */
async function fail(throttle: LoginThrottle, times: number, email: string, ip: string) {
  for (let i = 0; i < times; i++) {
    await throttle.check(email, ip);
    await throttle.recordFailure(email, ip);
  }
}

function behaviour(backend: () => RedisBackend | undefined) {
  const make = () => new LoginThrottle({ ...LIMITS, redis: backend() });

  test('locks the account for the failing address only, for the lock time', async () => {
    const t = make();
    const e = email();
    await fail(t, 2, e, '192.0.2.1');
    assert.deepEqual(await t.check(e, '192.0.2.1'), { allowed: true });
    assert.deepEqual(await t.recordFailure(e, '192.0.2.1'), ['account']);
    const locked = await t.check(e, '192.0.2.1');
    assert.ok(!locked.allowed && locked.scope === 'account' && locked.reason === 'locked' && locked.retryAfterSeconds >= 1);
    // The same email however it is written, from the same address.
    assert.equal((await t.check(`  ${e.toUpperCase()} `, '192.0.2.1')).allowed, false);
    // The owner elsewhere is not locked out.
    assert.deepEqual(await t.check(e, '192.0.2.2'), { allowed: true });
    await sleep(1100);
    assert.deepEqual(await t.check(e, '192.0.2.1'), { allowed: true });
  });

  test('parallel attempts cannot outrun the limit: each is counted before its password is checked', async () => {
    const t = make();
    const e = email();
    const decisions = await Promise.all(Array.from({ length: 10 }, () => t.check(e, '192.0.2.99')));
    assert.equal(decisions.filter((d) => d.allowed).length, LIMITS.maxFailuresPerAccount);
  });

  test('an attempt whose password was never judged (a store failed under it) gives its points back', async () => {
    const t = make();
    const e = email();
    // Far more attempts than any limit, each abandoned: a database outage must not lock anyone out.
    for (let i = 0; i < LIMITS.maxFailuresPerIp * 3; i++) {
      const decision = await t.check(e, '192.0.2.77');
      assert.equal(decision.allowed, true, `attempt ${i + 1} was refused`);
      await t.abandon(e, '192.0.2.77');
    }
  });

  test('parallel attempts on one account from many addresses: past the delay threshold, one per delay', async () => {
    const t = new LoginThrottle({ ...LIMITS, accountDelayAfter: 3, accountMaxDelaySeconds: 5, redis: backend() });
    const e = email();
    const decisions = await Promise.all(Array.from({ length: 10 }, (_, i) => t.check(e, `192.0.2.${100 + i}`)));
    assert.equal(decisions.filter((d) => d.allowed).length, 3 + 1);
    const refused = decisions.find((d) => !d.allowed);
    assert.ok(refused && !refused.allowed && refused.scope === 'account' && refused.reason === 'delayed');
  });

  test('failures from anywhere delay the account progressively, capped, and a success clears the delay', async () => {
    const t = new LoginThrottle({ ...LIMITS, lockSeconds: 30, accountDelayAfter: 2, accountMaxDelaySeconds: 2, redis: backend() });
    const e = email();
    for (let i = 0; i < 2; i++) await fail(t, 1, e, `198.51.100.${10 + i}`);
    // The third attempt holds the account's slot for 1 s, the fourth (after it) for 2 s: the cap.
    assert.deepEqual(await t.check(e, '198.51.100.20'), { allowed: true });
    await t.recordFailure(e, '198.51.100.20');
    const early = await t.check(e, '198.51.100.21');
    assert.ok(!early.allowed && early.reason === 'delayed' && early.retryAfterSeconds <= 1);
    await sleep(1100);
    assert.deepEqual(await t.check(e, '198.51.100.22'), { allowed: true });
    await t.recordFailure(e, '198.51.100.22');
    await sleep(1100);
    const capped = await t.check(e, '198.51.100.23');
    assert.ok(!capped.allowed && capped.reason === 'delayed', 'still inside the 2 s delay');
    await sleep(1000);
    assert.deepEqual(await t.check(e, '198.51.100.24'), { allowed: true });
    await t.recordSuccess(e, '198.51.100.24');
    assert.deepEqual(await t.check(e, '198.51.100.25'), { allowed: true }, 'a success clears the delay');
  });

  test('a success clears the account count (failures must be consecutive)', async () => {
    const t = make();
    const e = email();
    await fail(t, 2, e, '192.0.2.10');
    await t.recordSuccess(e, '192.0.2.10');
    await fail(t, 2, e, '192.0.2.10');
    assert.deepEqual(await t.check(e, '192.0.2.10'), { allowed: true });
  });

  test('an attempt refused by the delay counts toward neither the address lock of its account nor the address ceiling', async () => {
    const t = new LoginThrottle({ ...LIMITS, lockSeconds: 30, accountDelayAfter: 1, accountMaxDelaySeconds: 5, redis: backend() });
    const e = email();
    // The attacker, elsewhere, takes the account's slot (held 1 s).
    await fail(t, 2, e, '203.0.113.1');
    // The owner, from one address, is refused by the delay more often than any lock allows.
    for (let i = 0; i < LIMITS.maxFailuresPerIp + 1; i++) {
      const d = await t.check(e, '198.51.100.50');
      assert.ok(!d.allowed && d.reason === 'delayed', `attempt ${i} is delayed`);
    }
    await sleep(1100);
    // Those refusals checked no password, so they counted nowhere: the owner's address is free.
    assert.deepEqual(await t.check(e, '198.51.100.50'), { allowed: true });
    assert.deepEqual(await t.check(email(), '198.51.100.50'), { allowed: true });
  });

  test('a device cookie exempts its account from the delay, never from the locks; N failures with it lock the device', async () => {
    const t = new LoginThrottle({ ...LIMITS, lockSeconds: 30, maxFailuresPerIp: 100, accountDelayAfter: 1, accountMaxDelaySeconds: 5, redis: backend() });
    const e = email();
    const device = await t.rememberDevice(e, undefined);
    assert.doesNotMatch(Buffer.from(device.split('.')[1] ?? '', 'base64url').toString(), new RegExp(e.split('@')[0]!), 'no email in the cookie');
    await fail(t, 2, e, '203.0.113.2');
    assert.equal((await t.check(e, '198.51.100.60')).allowed, false, 'without the cookie: delayed');
    assert.deepEqual(await t.check(e, '198.51.100.60', device), { allowed: true });
    await t.recordSuccess(e, '198.51.100.60', device);
    // A success on a known device does not lift the delay the attacker has earned.
    const attacker = await t.check(e, '203.0.113.3');
    assert.ok(!attacker.allowed && attacker.reason === 'delayed');
    // A cookie still counts toward, and is stopped by, the lock of its account and address
    // (failures with a second browser's cookie, which locks that browser as well).
    const second = await t.rememberDevice(e, undefined);
    for (let i = 0; i < LIMITS.maxFailuresPerAccount; i++) {
      assert.deepEqual(await t.check(e, '198.51.100.61', second), { allowed: true });
      await t.recordFailure(e, '198.51.100.61', second);
    }
    const pair = await t.check(e, '198.51.100.61', device);
    assert.ok(!pair.allowed && pair.scope === 'account' && pair.reason === 'locked');
    // Wrong passwords with the cookie, each from a new address: the device locks after N.
    for (let i = 0; i < LIMITS.maxFailuresPerAccount; i++) {
      assert.deepEqual(await t.check(e, `198.51.100.${70 + i}`, device), { allowed: true });
      const locked = await t.recordFailure(e, `198.51.100.${70 + i}`, device);
      assert.deepEqual(locked, i === LIMITS.maxFailuresPerAccount - 1 ? ['device'] : []);
    }
    const stolen = await t.check(e, '198.51.100.80', device);
    assert.ok(!stolen.allowed && stolen.scope === 'device' && stolen.reason === 'locked');
    // Another browser of the owner is not locked (the lock is the device's).
    assert.deepEqual(await t.check(e, '198.51.100.81', await t.rememberDevice(e, undefined)), { allowed: true });
  });

  test('a device cookie of another account, tampered, forged or garbled gives no exemption', async () => {
    const t = new LoginThrottle({ ...LIMITS, lockSeconds: 30, accountDelayAfter: 1, accountMaxDelaySeconds: 5, redis: backend() });
    const e = email();
    const mine = await t.rememberDevice(e, undefined);
    const [h, p, s] = mine.split('.') as [string, string, string];
    const other = new LoginThrottle({ ...LIMITS, secret: 'another cookie key of thirty-two characters or more' });
    const candidates = [
      await t.rememberDevice(email(), undefined),
      await other.rememberDevice(e, undefined),
      `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`,
      `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), exp: 9_999_999_999 })).toString('base64url')}.${s}`,
      'garbage',
      '',
      'x'.repeat(10_000),
    ];
    await fail(t, 2, e, '203.0.113.4');
    for (const [i, cookie] of candidates.entries()) {
      const d = await t.check(e, `198.51.100.${90 + i}`, cookie);
      assert.ok(!d.allowed && d.reason === 'delayed', `candidate ${i} is delayed`);
    }
    assert.deepEqual(await t.check(e, '198.51.100.99', mine), { allowed: true });
  });

  test('one device cookie remembers several accounts, the most recent ones, within a bound', async () => {
    const t = new LoginThrottle({ ...LIMITS, lockSeconds: 30, accountDelayAfter: 0, accountMaxDelaySeconds: 30, redis: backend() });
    const emails = Array.from({ length: 12 }, email);
    let cookie: string | undefined;
    for (const e of emails) cookie = await t.rememberDevice(e, cookie);
    assert.ok(cookie!.length < 1024, `the cookie stays small (${cookie!.length})`);
    // accountDelayAfter 0: every attempt without an exemption needs the slot, held for 1 s.
    for (const [i, e] of emails.entries()) await t.check(e, `203.0.113.${10 + i}`);
    const exempt: boolean[] = [];
    for (const [i, e] of emails.entries()) {
      const d = await t.check(e, `198.51.100.${110 + i}`, cookie);
      exempt.push(d.allowed);
      // Settled as the route would (the device counts attempts in flight too).
      if (d.allowed) await t.recordSuccess(e, `198.51.100.${110 + i}`, cookie);
    }
    assert.deepEqual(
      exempt,
      emails.map((_, i) => i >= 2),
      'the two oldest are forgotten',
    );
  });

  test('locks an address after the maximum of failures across accounts', async () => {
    const t = make();
    const ip = `198.51.100.${1 + (randomBytes(1)[0]! % 200)}`;
    for (let i = 0; i < 4; i++) await fail(t, 1, email(), ip);
    const last = email();
    await t.check(last, ip);
    assert.deepEqual(await t.recordFailure(last, ip), ['ip']);
    const locked = await t.check(email(), ip);
    assert.ok(!locked.allowed && locked.scope === 'ip');
    assert.deepEqual(await t.check(email(), '203.0.113.1'), { allowed: true });
  });
}

describe('LoginThrottle on RateLimiterMemory', () => {
  behaviour(() => undefined);

  test('IPv6 addresses in one /64 share a count', async () => {
    const t = new LoginThrottle({ ...LIMITS, maxFailuresPerIp: 2 });
    await fail(t, 1, 'a@example.com', '2001:db8:1:2::1');
    await fail(t, 1, 'b@example.com', '2001:db8:1:2:ffff::9');
    assert.equal((await t.check('c@example.com', '2001:db8:1:2:abcd::1')).allowed, false);
    assert.equal((await t.check('c@example.com', '2001:db8:1:3::1')).allowed, true);
  });
});

describe('LoginThrottle on RateLimiterRedis', () => {
  const keyPrefix = `veiltest:${process.pid}_${randomBytes(4).toString('hex')}:`;
  let client: Redis;
  const backend = () => ({ client, keyPrefix });

  before(async () => {
    // As Veil creates it: no offline queue, fail fast.
    client = createRedisClient(REDIS_TEST_URL);
    await client.connect();
  });

  after(async () => {
    const keys = await client.keys(`${keyPrefix}*`);
    if (keys.length) await client.del(...keys);
    await client.quit();
  });

  behaviour(backend);

  test('Redis holds keyed hashes under the prefix, never the email or the address', async () => {
    const t = new LoginThrottle({ ...LIMITS, redis: backend() });
    await t.check('Secret.Person@Example.com', '192.0.2.77');
    await t.recordFailure('Secret.Person@Example.com', '192.0.2.77');
    const keys = await client.keys(`${keyPrefix}*`);
    assert.ok(keys.some((k) => k.startsWith(`${keyPrefix}throttle:login-account:`)));
    assert.ok(keys.some((k) => k.startsWith(`${keyPrefix}throttle:login-account-ip:`)));
    assert.ok(keys.some((k) => k.startsWith(`${keyPrefix}throttle:login-ip:`)));
    for (const k of keys) assert.doesNotMatch(k, /secret\.person|example\.com|192\.0\.2\.77/i);
  });

  test('with Redis unreachable it neither throws nor locks everyone out, and still counts', async () => {
    const down = new Redis('redis://127.0.0.1:1', { lazyConnect: true, enableOfflineQueue: false, retryStrategy: () => null });
    down.on('error', () => {});
    const errors: unknown[] = [];
    const t = new LoginThrottle({ ...LIMITS, redis: { client: down, keyPrefix }, onError: (e) => errors.push(e) });
    const e = email();
    assert.deepEqual(await t.check(e, '192.0.2.200'), { allowed: true });
    await fail(t, 3, e, '192.0.2.200');
    // The in-process insurance counter took over.
    assert.equal((await t.check(e, '192.0.2.200')).allowed, false);
    await t.recordSuccess(e, '192.0.2.200');
    assert.deepEqual(await t.check(e, '192.0.2.200'), { allowed: true });
    assert.deepEqual(errors, []);
    down.disconnect();
  });
});

describe('throttle keys', () => {
  test('addressKey', () => {
    assert.equal(addressKey('192.0.2.1'), '192.0.2.1');
    assert.equal(addressKey('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(addressKey('2001:0db8:0001:0002:0003:0004:0005:0006'), '2001:db8:1:2::/64');
    assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
  });

  test('basicClientId', () => {
    const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;
    assert.equal(basicClientId(basic('my-client:secret')), 'my-client');
    assert.equal(basicClientId(basic('a%3Ab+c:secret')), 'a:b c');
    assert.equal(basicClientId(basic('no-colon')), undefined);
    assert.equal(basicClientId(basic(':secret')), undefined);
    assert.equal(basicClientId(basic('%E0%A4%A:x')), undefined);
    assert.equal(basicClientId(basic(`${'x'.repeat(300)}:s`)), undefined);
    assert.equal(basicClientId('Bearer abc'), undefined);
    assert.equal(basicClientId(undefined), undefined);
  });
});
