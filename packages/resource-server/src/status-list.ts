/**
 * Token Status Lists (draft-ietf-oauth-status-list) for APIs that verify locally: a token's
 * `status: { status_list: { idx, uri } }` names a list Veil signs (`statuslist+jwt`, with the
 * same keys as access tokens). The list is fetched from the issuer only (`uri` must start with
 * `${issuer}/status-lists/`), verified with jose (signature, `typ`, `iss`, `sub` = `uri`, `exp`,
 * `ttl`), inflated with a size limit, and cached for what is left of its `ttl` (Veil's
 * `Cache-Control: max-age`, never longer than `ttl`). A token whose entry is not VALID is refused.
 *
 * When the list cannot be fetched, the last good copy serves for `unavailableGraceSeconds` past
 * its freshness (never past its `exp`); after that the verifier fails closed
 * (`status_list_unavailable`). A list that fails verification is never used.
 */
import { inflateSync } from 'node:zlib';
import { errors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { cacheLifetimeMs, MIN_CACHE_MS } from './issuer-jwks.js';
import { VeilTokenError, type VeilTokenErrorCode } from './errors.js';
import { positiveOption } from './options.js';

export interface StatusListOptions {
  /**
   * How long after a list's freshness ran out its last good copy is still used while a fresh one
   * cannot be fetched (never past the list's `exp`). Default 60; 0 fails closed at once.
   */
  unavailableGraceSeconds?: number;
  /** Fetch timeout. Default 5000. */
  timeoutMs?: number;
  /** Largest list accepted, compressed (the response body) and inflated each. Default 4 MiB. */
  maxBytes?: number;
  /** Lists kept at once (least recently used dropped first). Default 64. */
  maxLists?: number;
}

/** The `status` claim as the SDK reads it (§6.1). */
export interface StatusClaim {
  status_list: { idx: number; uri: string };
}

/** The draft's status values (§7.1). */
export const TOKEN_STATUS = { VALID: 0, INVALID: 1, SUSPENDED: 2 } as const;

export interface StatusListChecker {
  /** Resolves when the token's entry is VALID; rejects with a VeilTokenError otherwise. */
  check(status: unknown): Promise<void>;
}

interface CachedList {
  bits: number;
  bytes: Buffer;
  /** ms: used without fetching until then. */
  freshUntil: number;
  /** ms: the list's `exp`; never used after. */
  expiresAt: number;
}

const STATUS_LIST_PATH = '/status-lists/';
const MEDIA_TYPE = 'application/statuslist+jwt';
const BITS = new Set([1, 2, 4, 8]);
const DEFAULT_MAX_BYTES = 4 * 1024 * 1024;

function fail(code: VeilTokenErrorCode, message: string, cause?: unknown): never {
  throw new VeilTokenError(code, message, cause === undefined ? undefined : { cause });
}

/** The `status` claim's list reference, or `claims_invalid`. */
export function statusReference(status: unknown): { idx: number; uri: string } {
  const ref = (status as { status_list?: unknown } | null)?.status_list as { idx?: unknown; uri?: unknown } | undefined;
  if (typeof status !== 'object' || status === null || typeof ref !== 'object' || ref === null) fail('claims_invalid', 'status claim has no status_list');
  if (!Number.isSafeInteger(ref.idx) || (ref.idx as number) < 0) fail('claims_invalid', 'status_list.idx must be a non-negative integer');
  if (typeof ref.uri !== 'string' || !ref.uri) fail('claims_invalid', 'status_list.uri must be a string');
  return { idx: ref.idx as number, uri: ref.uri };
}

/** Reads the body up to `limit` bytes; more is a hostile or broken list. */
async function readLimited(res: Response, limit: number): Promise<string> {
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > limit) fail('status_list_invalid', `status list is larger than ${limit} bytes`);
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > limit) fail('status_list_invalid', `status list is larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function createStatusListChecker(options: {
  issuer: string;
  /** Veil's signing keys (the verifier's JWKS). */
  signingKey: JWTVerifyGetKey;
  algorithms: readonly string[];
  clockTolerance: number;
  settings?: StatusListOptions | undefined;
}): StatusListChecker {
  const prefix = `${options.issuer.replace(/\/+$/, '')}${STATUS_LIST_PATH}`;
  const graceMs = positiveOption(options.settings?.unavailableGraceSeconds, 60, 'statusList.unavailableGraceSeconds', true) * 1000;
  const timeoutMs = positiveOption(options.settings?.timeoutMs, 5000, 'statusList.timeoutMs');
  const maxBytes = Math.floor(positiveOption(options.settings?.maxBytes, DEFAULT_MAX_BYTES, 'statusList.maxBytes'));
  const maxLists = Math.floor(positiveOption(options.settings?.maxLists, 64, 'statusList.maxLists'));
  const lists = new Map<string, CachedList>();
  const pending = new Map<string, Promise<CachedList>>();

  async function fetchList(uri: string): Promise<CachedList> {
    let res: Response;
    try {
      res = await fetch(uri, { headers: { accept: MEDIA_TYPE }, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      fail('status_list_unavailable', 'cannot fetch the status list', err);
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      fail('status_list_unavailable', `the status list answered ${res.status}`);
    }
    const type = res.headers.get('content-type')?.split(';')[0]?.trim().toLowerCase();
    if (type !== MEDIA_TYPE) {
      await res.body?.cancel();
      fail('status_list_invalid', `the status list is not ${MEDIA_TYPE}`);
    }
    const jwt = await readLimited(res, maxBytes);
    let payload;
    try {
      ({ payload } = await jwtVerify(jwt, options.signingKey, {
        issuer: options.issuer,
        subject: uri,
        typ: 'statuslist+jwt',
        algorithms: [...options.algorithms],
        clockTolerance: options.clockTolerance,
        requiredClaims: ['iss', 'sub', 'iat', 'exp', 'ttl'],
      }));
    } catch (err) {
      if (err instanceof VeilTokenError) throw err; // jwks_unavailable
      if (err instanceof errors.JWTExpired) fail('status_list_expired', 'the status list has expired');
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) fail('status_list_key_unknown', 'the status list is signed by an unknown key');
      fail('status_list_invalid', err instanceof Error ? err.message : 'the status list does not verify');
    }
    const ttl = payload.ttl;
    const list = payload.status_list as { bits?: unknown; lst?: unknown } | undefined;
    if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0) fail('status_list_invalid', 'ttl must be a positive number');
    if (typeof list !== 'object' || list === null || !BITS.has(list.bits as number) || typeof list.lst !== 'string')
      fail('status_list_invalid', 'status_list must have bits 1, 2, 4 or 8 and lst');
    let bytes: Buffer;
    try {
      bytes = inflateSync(Buffer.from(list.lst, 'base64url'), { maxOutputLength: maxBytes });
    } catch (err) {
      fail('status_list_invalid', 'lst does not inflate (or inflates past the size limit)', err);
    }
    const now = Date.now();
    // What is left of the render's ttl (Veil's max-age), at most ttl, at least a second.
    const lifetime = Math.min(ttl * 1000, cacheLifetimeMs(res.headers) ?? ttl * 1000);
    return { bits: list.bits as number, bytes, freshUntil: now + Math.max(MIN_CACHE_MS, lifetime), expiresAt: (payload.exp as number) * 1000 };
  }

  async function listFor(uri: string): Promise<CachedList> {
    const now = Date.now();
    const cached = lists.get(uri);
    if (cached && now < cached.freshUntil && now < cached.expiresAt) return cached;
    let inFlight = pending.get(uri);
    if (!inFlight) {
      inFlight = fetchList(uri).finally(() => pending.delete(uri));
      pending.set(uri, inFlight);
    }
    try {
      const fresh = await inFlight;
      lists.delete(uri);
      while (lists.size >= maxLists) lists.delete(lists.keys().next().value!);
      lists.set(uri, fresh);
      return fresh;
    } catch (err) {
      // Only an outage leaves the last good copy in use, within the grace and its exp.
      const outage = err instanceof VeilTokenError && (err.code === 'status_list_unavailable' || err.code === 'jwks_unavailable');
      const later = Date.now();
      if (outage && cached && later < cached.freshUntil + graceMs && later < cached.expiresAt) return cached;
      if (err instanceof VeilTokenError && err.code === 'jwks_unavailable') fail('status_list_unavailable', 'cannot fetch the keys the status list is signed with', err);
      throw err;
    }
  }

  return {
    async check(status) {
      const { idx, uri } = statusReference(status);
      // Only the issuer's own lists: a token naming another host must not make the API fetch from it.
      if (!uri.startsWith(prefix) || uri.length === prefix.length || uri.slice(prefix.length).includes('/')) {
        fail('status_list_uri_untrusted', 'status_list.uri is not one of the issuer status lists');
      }
      const list = await listFor(uri);
      const perByte = 8 / list.bits;
      const byte = Math.floor(idx / perByte);
      if (byte >= list.bytes.length) fail('status_list_invalid', 'status_list.idx is outside the list');
      const value = (list.bytes[byte]! >> ((idx % perByte) * list.bits)) & ((1 << list.bits) - 1);
      if (value === TOKEN_STATUS.VALID) return;
      if (value === TOKEN_STATUS.SUSPENDED) fail('token_suspended', 'the token is suspended');
      fail('token_revoked', 'the token has been revoked');
    },
  };
}
