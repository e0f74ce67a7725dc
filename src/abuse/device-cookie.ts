/**
 * Device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies"): after a
 * successful sign-in the browser gets a long-lived cookie naming the accounts that signed in
 * with it, so the owner can pass the account's progressive delay, which an attacker rotating
 * addresses can otherwise keep busy for ever.
 *
 * The value is an HS256 JWS (jose) of `{ d, a, exp }`: `d` a random device id (kept across
 * sign-ins, so a lock of the device sticks), `a` the most recent accounts as truncated HMACs of
 * the normalised email (never the email), `exp` one year on. Both keys are derived (HKDF) from
 * the throttle's secret; rotating it forgets every device, which then waits like anyone else.
 */
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import { normaliseEmail } from '../store/accounts.js';

export const DEVICE_COOKIE = 'veil.device';
export const DEVICE_COOKIE_MAX_AGE_SECONDS = 365 * 86_400;
/** Accounts one browser remembers (most recent first); the cookie stays well under 1 KB. */
const MAX_ACCOUNTS = 10;
/** Longer values are not even parsed. */
const MAX_LENGTH = 1024;
const TYP = 'veil-device+jwt';

interface DevicePayload {
  d: string;
  a: string[];
}

const isPayload = (p: Record<string, unknown>): p is Record<string, unknown> & DevicePayload =>
  typeof p.d === 'string' && /^[\w-]{22}$/.test(p.d) && Array.isArray(p.a) && p.a.length <= MAX_ACCOUNTS && p.a.every((h) => typeof h === 'string');

export class DeviceCookies {
  readonly #signKey: Uint8Array;
  readonly #accountKey: Buffer;

  constructor(secret: string) {
    this.#signKey = new Uint8Array(hkdfSync('sha256', secret, '', 'veil login device cookie', 32));
    this.#accountKey = Buffer.from(hkdfSync('sha256', secret, '', 'veil login device account', 32));
  }

  /** 128 bits of a keyed hash: binds the cookie to the account without naming it. */
  #account(email: string): string {
    return createHmac('sha256', this.#accountKey).update(normaliseEmail(email)).digest().subarray(0, 16).toString('base64url');
  }

  async #read(value: string | undefined): Promise<DevicePayload | undefined> {
    if (!value || value.length > MAX_LENGTH) return undefined;
    try {
      const { payload } = await jwtVerify(value, this.#signKey, { algorithms: ['HS256'], typ: TYP, requiredClaims: ['exp'] });
      return isPayload(payload) ? { d: payload.d, a: payload.a } : undefined;
    } catch {
      // Forged, tampered, expired or garbled: simply no device.
      return undefined;
    }
  }

  /** The device id when `value` is a valid cookie that lists `email`; otherwise undefined. */
  async deviceFor(value: string | undefined, email: string): Promise<string | undefined> {
    const payload = await this.#read(value);
    return payload?.a.includes(this.#account(email)) ? payload.d : undefined;
  }

  /** The cookie after `email` signed in: the current one's device and accounts (if valid) plus this one, first. */
  async remember(email: string, current: string | undefined): Promise<string> {
    const previous = await this.#read(current);
    const account = this.#account(email);
    const accounts = [account, ...(previous?.a ?? []).filter((a) => a !== account)].slice(0, MAX_ACCOUNTS);
    return new SignJWT({ d: previous?.d ?? randomBytes(16).toString('base64url'), a: accounts })
      .setProtectedHeader({ alg: 'HS256', typ: TYP })
      .setExpirationTime(`${DEVICE_COOKIE_MAX_AGE_SECONDS}s`)
      .sign(this.#signKey);
  }
}
