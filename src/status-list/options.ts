/**
 * What the status-list module is configured with, its defaults and their checks, and the names
 * it publishes: the lists' path and ids. config.ts turns STATUS_LIST_* into these settings; the
 * checks here hold for any caller (tests and benches build settings directly).
 */
import { VeilError } from '../errors/veil-error.js';
import { STATUS_BITS, type StatusBits } from './format.js';

export interface StatusListSettings {
  /** Entries per list (STATUS_LIST_SIZE): a multiple of 8, from 8 to 2^24. */
  size: number;
  /** Bits per entry of new lists; each list keeps the bits it was created with. */
  bits: StatusBits;
  /**
   * STATUS_LIST_TTL_SECONDS: the `ttl` claim, how long a verifier caches a list; also how long
   * a process keeps a rendered list, so a status change reaches verifiers within about this.
   */
  ttlSeconds: number;
  /**
   * STATUS_LIST_EXP_SECONDS: a rendered list's `exp` is its `iat` plus this, the longest a
   * verifier that cannot fetch a fresh one may rely on it. At least twice `ttlSeconds`, so a
   * copy served at the end of its render's life can still be cached for a full `ttl`.
   */
  expSeconds: number;
  /**
   * An index is reused only this long after its last token's `exp`: a verifier that allows
   * clock skew still accepts that token a little after its `exp`, and a revocation then must
   * still land on its index alone.
   */
  reuseGraceSeconds: number;
}

export const STATUS_LIST_DEFAULTS: StatusListSettings = {
  size: 2 ** 20,
  bits: 2,
  ttlSeconds: 60,
  expSeconds: 600,
  reuseGraceSeconds: 60,
};

export const MIN_LIST_SIZE = 8;
export const MAX_LIST_SIZE = 2 ** 24;

/** The settings with defaults filled in; throws `invalid_config` naming what is wrong. */
export function statusListSettings(given: Partial<StatusListSettings> = {}): StatusListSettings {
  const s = { ...STATUS_LIST_DEFAULTS, ...given };
  const problems: string[] = [];
  if (!Number.isInteger(s.size) || s.size < MIN_LIST_SIZE || s.size > MAX_LIST_SIZE || s.size % 8 !== 0) {
    problems.push(`size must be a multiple of 8 from ${MIN_LIST_SIZE} to ${MAX_LIST_SIZE}, got ${s.size}`);
  }
  if (!STATUS_BITS.includes(s.bits)) problems.push(`bits must be 1 or 2, got ${String(s.bits)}`);
  if (!Number.isInteger(s.ttlSeconds) || s.ttlSeconds < 1) problems.push(`ttlSeconds must be a positive whole number, got ${s.ttlSeconds}`);
  if (!Number.isInteger(s.expSeconds) || s.expSeconds < 2 * s.ttlSeconds) problems.push(`expSeconds must be a whole number of at least twice ttlSeconds, got ${s.expSeconds}`);
  if (!Number.isInteger(s.reuseGraceSeconds) || s.reuseGraceSeconds < 0) problems.push(`reuseGraceSeconds must be a whole number of 0 or more, got ${s.reuseGraceSeconds}`);
  if (problems.length) throw new VeilError('invalid_config', `status list settings: ${problems.join('; ')}`);
  return s;
}

/** Where Veil serves its lists: `<issuer>/status-lists/<id>`. */
export const STATUS_LIST_PATH = '/status-lists';

/** A list id: 16 random bytes, base64url (22 characters). Anything else is not a list, without a store look-up. */
const LIST_ID = /^[A-Za-z0-9_-]{22}$/;

export function isListId(value: string): boolean {
  return LIST_ID.test(value);
}

/** The `uri` a token carries and the list's `sub`: the same string, compared as it is (the draft's simple string comparison). */
export function statusListUri(issuer: string, list: string): string {
  return `${issuer}${STATUS_LIST_PATH}/${list}`;
}

/** The media type of a Status List Token in JWT form, also its `typ` (less `application/`). */
export const STATUS_LIST_MEDIA_TYPE = 'application/statuslist+jwt';
export const STATUS_LIST_TYP = 'statuslist+jwt';
