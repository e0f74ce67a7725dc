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
 *   addresses is slowed to one guess per delay, while the owner is never locked out for good.
 *
 * The login route asks before it verifies a password, counting the attempt atomically, so
 * parallel guesses cannot exceed a limit; a refused attempt costs no argon2 work and gets the
 * same page as a wrong password. Unknown emails are counted exactly like known ones (no
 * enumeration). Counters are keyed by an HMAC, so Redis never holds an email or an address.
 */
import { createHmac, hkdfSync } from 'node:crypto';
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { normaliseEmail } from '../store/accounts.js';
import { addressKey, createLimiter, type RedisBackend } from './limiter.js';

/** `account`: this email (from this address, or its delay); `ip`: the address as a whole. */
export type ThrottleScope = 'account' | 'ip';

export type ThrottleDecision =
  | { allowed: true }
  | { allowed: false; scope: ThrottleScope; retryAfterSeconds: number; reason: 'locked' | 'delayed' };

export interface LoginThrottleOptions {
  /** Failures for one email from one address that lock that pair. */
  maxFailuresPerAccount: number;
  maxFailuresPerIp: number;
  /** How long a lock lasts, and the window in which failures are counted. */
  lockSeconds: number;
  /** Failures for one email from anywhere after which each further attempt must wait. */
  accountDelayAfter: number;
  /** The cap on that wait. */
  accountMaxDelaySeconds: number;
  /** Keys the counter HMAC (through HKDF), so counter keys cannot be matched to emails offline. */
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

  constructor(name: string, readonly max: number, readonly lockSeconds: number, redis: RedisBackend | undefined) {
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

  constructor(readonly after: number, readonly maxDelaySeconds: number, windowSeconds: number, redis: RedisBackend | undefined) {
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
  readonly #delay: AccountDelay;
  readonly #hmacKey: Buffer;
  readonly #onError: (err: unknown) => void;

  constructor(options: LoginThrottleOptions) {
    this.#pair = new AttemptCounter('login-account-ip', options.maxFailuresPerAccount, options.lockSeconds, options.redis);
    this.#ip = new AttemptCounter('login-ip', options.maxFailuresPerIp, options.lockSeconds, options.redis);
    this.#delay = new AccountDelay(options.accountDelayAfter, options.accountMaxDelaySeconds, options.lockSeconds, options.redis);
    // A subkey of its own, so the secret (a cookie key) is never used directly for this.
    this.#hmacKey = Buffer.from(hkdfSync('sha256', options.secret, '', 'veil login throttle', 32));
    this.#onError = options.onError ?? (() => {});
  }

  #key(kind: string, value: string): string {
    return createHmac('sha256', this.#hmacKey).update(`${kind}\0${value}`).digest('base64url');
  }

  #keys(email: string, ip: string) {
    const account = normaliseEmail(email);
    const address = addressKey(ip);
    return { account: this.#key('account', account), pair: this.#key('account-ip', `${account}\0${address}`), ip: this.#key('ip', address) };
  }

  /** Call before verifying the password: counts the attempt, and refuses it when a lock or a delay is on. */
  async check(email: string, ip: string): Promise<ThrottleDecision> {
    const keys = this.#keys(email, ip);
    try {
      const [pair, address] = await Promise.all([this.#pair.attempt(keys.pair), this.#ip.attempt(keys.ip)]);
      if (pair > 0) return { allowed: false, scope: 'account', reason: 'locked', retryAfterSeconds: Math.max(pair, address) };
      if (address > 0) return { allowed: false, scope: 'ip', reason: 'locked', retryAfterSeconds: address };
      // Only attempts that got past the locks count toward the account's delay: a locked-out
      // address cannot keep raising it.
      const wait = await this.#delay.attempt(keys.account);
      if (wait > 0) return { allowed: false, scope: 'account', reason: 'delayed', retryAfterSeconds: wait };
      return { allowed: true };
    } catch (err) {
      // Store errors are absorbed by the insurance counters; this is for anything else. Locking
      // everyone out would turn a throttle bug into an outage, so the attempt goes through.
      this.#onError(err);
      return { allowed: true };
    }
  }

  /** The checked attempt failed; returns the scopes this failure locked. */
  async recordFailure(email: string, ip: string): Promise<ThrottleScope[]> {
    const keys = this.#keys(email, ip);
    try {
      const [pair, address] = await Promise.all([this.#pair.failed(keys.pair), this.#ip.failed(keys.ip)]);
      return [...(pair ? (['account'] as const) : []), ...(address ? (['ip'] as const) : [])];
    } catch (err) {
      this.#onError(err);
      return [];
    }
  }

  /** The checked attempt succeeded: the account's failures are cleared; the address gets its point back. */
  async recordSuccess(email: string, ip: string): Promise<void> {
    const keys = this.#keys(email, ip);
    try {
      await Promise.all([this.#pair.succeeded(keys.pair, true), this.#delay.succeeded(keys.account), this.#ip.succeeded(keys.ip, false)]);
    } catch (err) {
      this.#onError(err);
    }
  }
}
