/**
 * The short-lived half of Veil's storage: sessions, interactions, codes, refresh tokens,
 * replay detection and other TTL-driven OAuth state. Redis in deployments, an in-process
 * map in embedded mode; both implement this interface with the same semantics.
 */
import type { AdapterPayload } from 'oidc-provider';

/** An issued sealed access token as Veil remembers it: the record is keyed by its `jti`. */
export interface IssuedTokenRecord {
  model: string;
  jti: string;
  payload: AdapterPayload;
  /** On the revocation blacklist (revoked before it expired). */
  revoked: boolean;
}

/** A write for a grant that has been revoked meanwhile; the caller must fail the request. */
export class GrantRevokedError extends Error {
  override name = 'GrantRevokedError';
  constructor() {
    super('the grant was revoked');
  }
}

export interface ShortLivedStore {
  readonly kind: 'redis' | 'memory';
  /**
   * Stores an entry. Grant-owned entries are refused with GrantRevokedError once their grant
   * is revoked, in the same atomic step as the write, so a refresh that raced a revocation
   * cannot leave a new token pair behind. `tokenHash` also indexes a sealed access token by
   * the hash of the value the client holds (Veil cannot decrypt its own sealed tokens).
   */
  upsert(model: string, id: string, payload: AdapterPayload, expiresIn: number, tokenHash?: string): Promise<void>;
  /** The sealed access token whose value hashes to `tokenHash`. */
  findIssuedByHash(tokenHash: string): Promise<IssuedTokenRecord | undefined>;
  /** The sealed access token with this `jti` (found as AccessToken or ClientCredentials). */
  findIssuedByJti(jti: string): Promise<IssuedTokenRecord | undefined>;
  /** Records `key` for `ttl` seconds; false when it was already recorded (replay detection). */
  claimOnce(key: string, ttl: number): Promise<boolean>;
  /** Puts a `jti` on the revocation blacklist until the token would have expired. */
  blacklist(jti: string, expiresIn: number): Promise<void>;
  find(model: string, id: string): Promise<AdapterPayload | undefined>;
  findByUid(model: string, uid: string): Promise<AdapterPayload | undefined>;
  findByUserCode(model: string, userCode: string): Promise<AdapterPayload | undefined>;
  /**
   * Marks the entry consumed in one atomic step. Resolves `true` for the one caller that
   * consumed it, `false` when it was already consumed or is gone, so racing redemptions
   * of the same code or refresh token have exactly one winner.
   */
  consume(model: string, id: string): Promise<boolean>;
  destroy(model: string, id: string): Promise<void>;
  /**
   * Deletes everything listed for the grant, blacklists its access tokens' `jti`s and marks
   * the grant revoked (for `markerTtl` seconds, longer than any token of it can live), all in
   * one atomic step.
   */
  revokeByGrantId(grantId: string, markerTtl: number): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Models whose records are sealed access tokens, keyed by `jti`. */
export const SEALED_MODELS = ['AccessToken', 'ClientCredentials'] as const;

/** Models whose entries belong to a grant and die with it. */
export const GRANTABLE_MODELS = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

/**
 * Keeps a grant's list of entries short, so revoking a grant walks a short list however long it
 * has been refreshed. Every GRANT_LIST_MAX writes once the list holds twice this many, it is
 * rebuilt from its live entries: dead ones (expired, or consumed codes and refresh tokens, which
 * can never be used again) are dropped; live refresh tokens and codes all stay (one per session
 * of the user's with this client: dropping one would sign a device out); of the live access
 * tokens the newest GRANT_LIST_MAX stay, and older ones are revoked on the spot (blacklisted until
 * they would have expired), so nothing alive is ever left unlisted. The list therefore holds at
 * most the grant's live refresh tokens and codes plus three times this many entries.
 */
export const GRANT_LIST_MAX = 64;
