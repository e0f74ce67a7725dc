/**
 * Login throttling. A lock must never be a weapon: failures lock an account only for the
 * address they come from, so nobody can lock a user out by failing on purpose elsewhere.
 *
 * - per account and address: `maxFailuresPerAccount` failures for one email from one address
 *   (IPv6: per /64) lock that pair for `lockSeconds`;
 * - per address: `maxFailuresPerIp` failures across all emails lock the address (the ceiling
 *   on spraying from one place);
 * - per account, from anywhere: after `accountDelayAfter` failures within `lockSeconds`, each
 *   further attempt must wait a delay that doubles per failure (1 s, 2 s, 4 s, ...) up to
 *   `accountMaxDelaySeconds`; attempts inside it are refused. Guessing spread over many
 *   addresses is slowed to one guess per delay;
 * - a device cookie (device-cookie.ts) that a browser got by signing in to this account exempts
 *   it from that delay, so an attacker who keeps the delay busy cannot keep the owner out;
 *   `maxFailuresPerAccount` failures with one device cookie lock that device for `lockSeconds`.
 *
 * The login route asks before it verifies a password, counting the attempt atomically, so
 * parallel guesses cannot exceed a limit; a refused attempt costs no argon2 work, gets the
 * same page as a wrong password, and gives its points back: it guessed nothing, so it must not
 * bring its own address (the owner's, say, refused by an attacker's delay) nearer a lock.
 * Unknown emails are counted exactly like known ones (no enumeration). Counters are keyed by
 * an HMAC, so Redis never holds an email or an address.
 */
import { createHmac, hkdfSync } from 'node:crypto';
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { normaliseEmail } from '../store/accounts.js';
import { DeviceCookies } from './device-cookie.js';
import { addressKey, createLimiter, type RedisBackend } from './limiter.js';

/** `account`: this email (from this address, or its delay); `ip`: the address as a whole; `device`: a device cookie. */
export type ThrottleScope = 'account' | 'ip' | 'device';

export type ThrottleDecision = { allowed: true } | { allowed: false; scope: ThrottleScope; retryAfterSeconds: number; reason: 'locked' | 'delayed' };

export interface LoginThrottleOptions {
  /** Failures for one email from one address that lock that pair; also failures that lock a device cookie. */
  maxFailuresPerAccount: number;
  maxFailuresPerIp: number;
  /** How long a lock lasts, and the window in which failures are counted. */
  lockSeconds: number;
  /** Failures for one email from anywhere after which each further attempt must wait. */
  accountDelayAfter: number;
  /** The cap on that wait. */
  accountMaxDelaySeconds: number;
  /** Keys the counter HMAC and the device cookies (through HKDF), so counter keys cannot be matched to emails offline. */
  secret: string;
  redis?: RedisBackend;
  /** Told about unexpected failures, after which the throttle lets the attempt through. */
  onError?: (err: unknown) => void;
}

/** Seconds before a rejected consume may succeed again. */
const retryAfter = (rejection: RateLimiterRes) => Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));

/**
 * Attempts under one key. Each attempt is counted *before* its password is checked, in one
 * atomic step, so parallel guesses cannot all slip in under the limit; a success gives its
 * point back. Reaching `max` failures locks the key for `lockSeconds` from that failure.
 */
class AttemptCounter {
  readonly #limiter: RateLimiterAbstract;

  constructor(
    name: string,
    readonly max: number,
    readonly lockSeconds: number,
    redis: RedisBackend | undefined,
  ) {
    this.#limiter = createLimiter(name, max, lockSeconds, redis);
  }

  /** Counts an attempt; returns the seconds until the key unlocks when it is locked (0 otherwise). */
  async attempt(key: string): Promise<number> {
    try {
      await this.#limiter.consume(key);
      return 0;
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      return retryAfter(rejection);
    }
  }

  /** The attempt was refused unchecked: it guessed nothing, so its point goes back. */
  async giveBack(key: string): Promise<void> {
    await this.#limiter.reward(key, 1);
  }

  /** The attempt failed; true when this failure locked the key. */
  async failed(key: string): Promise<boolean> {
    const res = await this.#limiter.get(key);
    if (!res || res.consumedPoints < this.max) return false;
    // An explicit block, so the lock lasts lockSeconds from the failure that caused it.
    await this.#limiter.block(key, this.lockSeconds);
    return true;
  }

  /** The attempt succeeded: give its point back, or forget the key's failures altogether. */
  async succeeded(key: string, forget: boolean): Promise<void> {
    if (forget) await this.#limiter.delete(key);
    else await this.#limiter.reward(key, 1);
  }
}

/**
 * The progressive delay of one account across all addresses: attempts are counted in a window
 * (a success clears them); past `after`, an attempt must also take the account's single slot,
 * which it holds for the delay its number earns, so at most one attempt per delay gets through,
 * parallel or not.
 */
class AccountDelay {
  readonly #attempts: RateLimiterAbstract;
  readonly #slot: RateLimiterAbstract;

  constructor(
    readonly after: number,
    readonly maxDelaySeconds: number,
    windowSeconds: number,
    redis: RedisBackend | undefined,
  ) {
    // Counting only: the window's points are never the limit.
    this.#attempts = createLimiter('login-account', 1_000_000_000, windowSeconds, redis);
    this.#slot = createLimiter('login-account-slot', 1, maxDelaySeconds, redis);
  }

  /** 1 s for the first attempt past `after`, doubling, capped. */
  delayFor(attempt: number): number {
    return Math.min(this.maxDelaySeconds, 2 ** Math.min(30, attempt - this.after - 1));
  }

  /** Counts an attempt; returns the seconds to wait when it falls inside the delay (0 otherwise). */
  async attempt(key: string): Promise<number> {
    const counted = await this.#attempts.consume(key);
    if (counted.consumedPoints <= this.after) return 0;
    try {
      await this.#slot.consume(key, 1, { customDuration: this.delayFor(counted.consumedPoints) });
      return 0;
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      return retryAfter(rejection);
    }
  }

  async succeeded(key: string): Promise<void> {
    await Promise.all([this.#attempts.delete(key), this.#slot.delete(key)]);
  }
}

export class LoginThrottle {
  readonly #pair: AttemptCounter;
  readonly #ip: AttemptCounter;
  readonly #device: AttemptCounter;
  readonly #delay: AccountDelay;
  readonly #devices: DeviceCookies;
  readonly #hmacKey: Buffer;
  readonly #onError: (err: unknown) => void;

  constructor(options: LoginThrottleOptions) {
    this.#pair = new AttemptCounter('login-account-ip', options.maxFailuresPerAccount, options.lockSeconds, options.redis);
    this.#ip = new AttemptCounter('login-ip', options.maxFailuresPerIp, options.lockSeconds, options.redis);
    this.#device = new AttemptCounter('login-device', options.maxFailuresPerAccount, options.lockSeconds, options.redis);
    this.#delay = new AccountDelay(options.accountDelayAfter, options.accountMaxDelaySeconds, options.lockSeconds, options.redis);
    this.#devices = new DeviceCookies(options.secret);
    // A subkey of its own, so the secret (a cookie key) is never used directly for this.
    this.#hmacKey = Buffer.from(hkdfSync('sha256', options.secret, '', 'veil login throttle', 32));
    this.#onError = options.onError ?? (() => {});
  }

  #key(kind: string, value: string): string {
    return createHmac('sha256', this.#hmacKey).update(`${kind}\0${value}`).digest('base64url');
  }

  /** `device`: the counter key of the device cookie when it is valid for this email. */
  async #keys(email: string, ip: string, deviceCookie: string | undefined) {
    const account = normaliseEmail(email);
    const address = addressKey(ip);
    const device = await this.#devices.deviceFor(deviceCookie, account);
    return {
      account: this.#key('account', account),
      pair: this.#key('account-ip', `${account}\0${address}`),
      ip: this.#key('ip', address),
      device: device === undefined ? undefined : this.#key('device', device),
    };
  }

  /**
   * Call before verifying the password: counts the attempt, and refuses it when a lock or a
   * delay is on. `deviceCookie`: the browser's device cookie, if any (untrusted input).
   */
  async check(email: string, ip: string, deviceCookie?: string): Promise<ThrottleDecision> {
    try {
      const keys = await this.#keys(email, ip, deviceCookie);
      const counted: Array<[AttemptCounter, string]> = [
        [this.#pair, keys.pair],
        [this.#ip, keys.ip],
      ];
      if (keys.device) counted.push([this.#device, keys.device]);
      // Counted first (atomically, so parallel attempts cannot outrun a limit), given back when
      // refused: a parallel attempt may meanwhile see one point too many and be refused, never
      // one too few.
      const [pair = 0, address = 0, device = 0] = await Promise.all(counted.map(([c, k]) => c.attempt(k)));
      const refuse = async (decision: ThrottleDecision): Promise<ThrottleDecision> => {
        await Promise.all(counted.map(([c, k]) => c.giveBack(k)));
        return decision;
      };
      if (pair > 0) return refuse({ allowed: false, scope: 'account', reason: 'locked', retryAfterSeconds: Math.max(pair, address) });
      if (address > 0) return refuse({ allowed: false, scope: 'ip', reason: 'locked', retryAfterSeconds: address });
      if (device > 0) return refuse({ allowed: false, scope: 'device', reason: 'locked', retryAfterSeconds: device });
      // A browser this account signed in with does not wait for the delay others keep busy.
      if (keys.device) return { allowed: true };
      // Only attempts that got past the locks count toward the account's delay: a locked-out
      // address cannot keep raising it.
      const wait = await this.#delay.attempt(keys.account);
      if (wait > 0) return refuse({ allowed: false, scope: 'account', reason: 'delayed', retryAfterSeconds: wait });
      return { allowed: true };
    } catch (err) {
      // Store errors are absorbed by the insurance counters; this is for anything else. Locking
      // everyone out would turn a throttle bug into an outage, so the attempt goes through.
      this.#onError(err);
      return { allowed: true };
    }
  }

  /** The checked attempt was never judged (a store failed under it): its points go back. */
  async abandon(email: string, ip: string, deviceCookie?: string): Promise<void> {
    try {
      const keys = await this.#keys(email, ip, deviceCookie);
      await Promise.all([this.#pair.giveBack(keys.pair), this.#ip.giveBack(keys.ip), ...(keys.device ? [this.#device.giveBack(keys.device)] : [])]);
    } catch (err) {
      this.#onError(err);
    }
  }

  /** The checked attempt failed (with the same device cookie as its check); returns the scopes this failure locked. */
  async recordFailure(email: string, ip: string, deviceCookie?: string): Promise<ThrottleScope[]> {
    try {
      const keys = await this.#keys(email, ip, deviceCookie);
      const [pair, address, device] = await Promise.all([this.#pair.failed(keys.pair), this.#ip.failed(keys.ip), keys.device ? this.#device.failed(keys.device) : false]);
      return [...(pair ? (['account'] as const) : []), ...(address ? (['ip'] as const) : []), ...(device ? (['device'] as const) : [])];
    } catch (err) {
      this.#onError(err);
      return [];
    }
  }

  /**
   * The checked attempt succeeded: the pair's (and the device's) failures are cleared, the
   * address gets its point back. The account's delay is cleared only by a sign-in without a
   * device cookie: one from a known device says nothing about the guesses others keep making.
   */
  async recordSuccess(email: string, ip: string, deviceCookie?: string): Promise<void> {
    try {
      const keys = await this.#keys(email, ip, deviceCookie);
      await Promise.all([
        this.#pair.succeeded(keys.pair, true),
        this.#ip.succeeded(keys.ip, false),
        keys.device ? this.#device.succeeded(keys.device, true) : this.#delay.succeeded(keys.account),
      ]);
    } catch (err) {
      this.#onError(err);
    }
  }

  /** The device cookie to set after `email` signed in (`current`: the one the browser sent, if any). */
  rememberDevice(email: string, current: string | undefined): Promise<string> {
    return this.#devices.remember(email, current);
  }
}
