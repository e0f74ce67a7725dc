/**
 * Login throttling: failures are counted per account and per client address, and either count
 * reaching its maximum locks that account or address for a while. The login route asks before
 * it verifies a password (counting the attempt atomically, so parallel guesses cannot exceed the
 * limit), so a locked attempt costs no argon2 work and gets the same answer as a wrong password. Unknown emails are counted exactly like known ones (no enumeration).
 *
 * Counters are keyed by an HMAC, so Redis never holds an email or an address in clear.
 */
import { createHmac, hkdfSync } from 'node:crypto';
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
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
      return Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
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

export class LoginThrottle {
  readonly #account: AttemptCounter;
  readonly #ip: AttemptCounter;
  readonly #hmacKey: Buffer;
  readonly #onError: (err: unknown) => void;

  constructor(options: LoginThrottleOptions) {
    this.#account = new AttemptCounter('login-account', options.maxFailuresPerAccount, options.lockSeconds, options.redis);
    this.#ip = new AttemptCounter('login-ip', options.maxFailuresPerIp, options.lockSeconds, options.redis);
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

  /** Call before verifying the password: counts the attempt, and refuses it when a lock is on. */
  async check(email: string, ip: string): Promise<ThrottleDecision> {
    const keys = this.#keys(email, ip);
    try {
      const [account, address] = await Promise.all([this.#account.attempt(keys.account), this.#ip.attempt(keys.ip)]);
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

  /** The checked attempt failed; returns the scopes this failure locked. */
  async recordFailure(email: string, ip: string): Promise<ThrottleScope[]> {
    const keys = this.#keys(email, ip);
    try {
      const [account, address] = await Promise.all([this.#account.failed(keys.account), this.#ip.failed(keys.ip)]);
      return [...(account ? (['account'] as const) : []), ...(address ? (['ip'] as const) : [])];
    } catch (err) {
      this.#onError(err);
      return [];
    }
  }

  /** The checked attempt succeeded: the account's failures are cleared; the address gets its point back. */
  async recordSuccess(email: string, ip: string): Promise<void> {
    const keys = this.#keys(email, ip);
    try {
      await Promise.all([this.#account.succeeded(keys.account, true), this.#ip.succeeded(keys.ip, false)]);
    } catch (err) {
      this.#onError(err);
    }
  }
}
