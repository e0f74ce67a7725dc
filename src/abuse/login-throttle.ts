/**
 * Login throttling: failures are counted per account and per client address, and either count
 * reaching its maximum locks that account or address for a while. The login route asks before
 * it verifies a password, so a locked attempt costs no argon2 work and gets the same answer as
 * a wrong password. Unknown emails are counted exactly like known ones (no enumeration).
 *
 * Counters are keyed by an HMAC, so Redis never holds an email or an address in clear.
 */
import { createHmac, hkdfSync } from 'node:crypto';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { normaliseEmail } from '../store/accounts.js';
import { addressKey, createLimiter, type RedisBackend } from './limiter.js';

export type ThrottleScope = 'account' | 'ip';

export type ThrottleDecision = { allowed: true } | { allowed: false; scope: ThrottleScope; retryAfterSeconds: number };

export interface LoginThrottleOptions {
  maxFailuresPerAccount: number;
  maxFailuresPerIp: number;
  /** How long a lock lasts, and the window in which failures are counted. */
  lockSeconds: number;
  /** Keys the counter HMAC (through HKDF), so counter keys cannot be matched to emails offline. */
  secret: string;
  redis?: RedisBackend;
  /** Told about unexpected failures, after which the throttle lets the attempt through. */
  onError?: (err: unknown) => void;
}

/** Failures under one key; reaching `max` locks the key for `lockSeconds`. */
class FailureCounter {
  readonly #limiter: RateLimiterAbstract;

  constructor(name: string, readonly max: number, readonly lockSeconds: number, redis: RedisBackend | undefined) {
    this.#limiter = createLimiter(name, max, lockSeconds, redis);
  }

  /** Seconds until the key unlocks; 0 when it is not locked. */
  async lockedFor(key: string): Promise<number> {
    const res = await this.#limiter.get(key);
    if (!res || res.consumedPoints < this.max || res.msBeforeNext <= 0) return 0;
    return Math.ceil(res.msBeforeNext / 1000);
  }

  /** Counts a failure; true when this one locked the key. */
  async fail(key: string): Promise<boolean> {
    // penalty() counts without rejecting; the lock is an explicit block() so it lasts
    // lockSeconds from the failure that caused it, not from the first failure of the window.
    const res = await this.#limiter.penalty(key);
    if (res.consumedPoints !== this.max) return false;
    await this.#limiter.block(key, this.lockSeconds);
    return true;
  }

  async reset(key: string): Promise<void> {
    await this.#limiter.delete(key);
  }
}

export class LoginThrottle {
  readonly #account: FailureCounter;
  readonly #ip: FailureCounter;
  readonly #hmacKey: Buffer;
  readonly #onError: (err: unknown) => void;

  constructor(options: LoginThrottleOptions) {
    this.#account = new FailureCounter('login-account', options.maxFailuresPerAccount, options.lockSeconds, options.redis);
    this.#ip = new FailureCounter('login-ip', options.maxFailuresPerIp, options.lockSeconds, options.redis);
    // A subkey of its own, so the secret (a cookie key) is never used directly for this.
    this.#hmacKey = Buffer.from(hkdfSync('sha256', options.secret, '', 'veil login throttle', 32));
    this.#onError = options.onError ?? (() => {});
  }

  #key(kind: ThrottleScope, value: string): string {
    return createHmac('sha256', this.#hmacKey).update(`${kind}\0${value}`).digest('base64url');
  }

  #keys(email: string, ip: string) {
    return { account: this.#key('account', normaliseEmail(email)), ip: this.#key('ip', addressKey(ip)) };
  }

  /** Call before verifying the password. */
  async check(email: string, ip: string): Promise<ThrottleDecision> {
    const keys = this.#keys(email, ip);
    try {
      const [account, address] = await Promise.all([this.#account.lockedFor(keys.account), this.#ip.lockedFor(keys.ip)]);
      if (account > 0) return { allowed: false, scope: 'account', retryAfterSeconds: Math.max(account, address) };
      if (address > 0) return { allowed: false, scope: 'ip', retryAfterSeconds: address };
      return { allowed: true };
    } catch (err) {
      // Store errors are absorbed by the insurance counters; this is for anything else. Locking
      // everyone out would turn a throttle bug into an outage, so the attempt goes through.
      this.#onError(err);
      return { allowed: true };
    }
  }

  /** Counts a failed attempt; returns the scopes this failure locked. */
  async recordFailure(email: string, ip: string): Promise<ThrottleScope[]> {
    const keys = this.#keys(email, ip);
    try {
      const [account, address] = await Promise.all([this.#account.fail(keys.account), this.#ip.fail(keys.ip)]);
      return [...(account ? (['account'] as const) : []), ...(address ? (['ip'] as const) : [])];
    } catch (err) {
      this.#onError(err);
      return [];
    }
  }

  /** A successful sign-in clears the account's failures; the address keeps its count. */
  async recordSuccess(email: string, _ip: string): Promise<void> {
    try {
      await this.#account.reset(this.#key('account', normaliseEmail(email)));
    } catch (err) {
      this.#onError(err);
    }
  }
}
