/**
 * The short-lived half of Veil's storage: sessions, interactions, codes, refresh tokens,
 * replay detection and other TTL-driven OAuth state. Redis in deployments, an in-process
 * map in embedded mode; both implement every interface below with the same semantics, and
 * each part of Veil is handed only the slice it uses (the adapter a ModelStore, introspection
 * an IssuedTokenIndex, and so on).
 */
import type { AdapterPayload } from 'oidc-provider';
import { VeilError } from '../errors/veil-error.js';

/** An issued sealed access token as Veil remembers it: the record is keyed by its `jti`. */
export interface IssuedTokenRecord {
  model: string;
  jti: string;
  payload: AdapterPayload;
  /** On the revocation blacklist (revoked before it expired). */
  revoked: boolean;
}

/** A write for a grant that has been revoked meanwhile; the caller must fail the request. */
export class GrantRevokedError extends VeilError {
  constructor() {
    super('grant_revoked', 'the grant was revoked');
  }
}

/** oidc-provider's short-lived models (codes, sessions, interactions, refresh tokens, …): what its adapter stores. */
export interface ModelStore {
  /**
   * Stores an entry. Grant-owned entries are refused with GrantRevokedError once their grant
   * is revoked, in the same atomic step as the write, so a refresh that raced a revocation
   * cannot leave a new token pair behind.
   */
  upsert(model: string, id: string, payload: AdapterPayload, expiresIn: number): Promise<void>;
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
}

/** A sealed access token to index: its stored record (by `jti`, on `grantId`'s list if it has one) under the hash of its value. */
export interface IssuedIndexEntry {
  model: SealedModel;
  jti: string;
  /** The token's grant, as stored with it: saves looking the record up (undefined: looked up). */
  grantId?: string | undefined;
  tokenHash: string;
  expiresIn: number;
}

/** Sealed access tokens: Veil cannot decrypt them, so it finds their records by the hash of the value the client holds. */
export interface IssuedTokenIndex {
  /** Makes the stored record of the token findable by its `tokenHash` for `expiresIn` seconds. */
  indexIssued(entry: IssuedIndexEntry): Promise<void>;
  /** The sealed access token whose value hashes to `tokenHash`. */
  findIssuedByHash(tokenHash: string): Promise<IssuedTokenRecord | undefined>;
  /** The sealed access token with this `jti` (found as AccessToken or ClientCredentials). */
  findIssuedByJti(jti: string): Promise<IssuedTokenRecord | undefined>;
}

/**
 * Per audience, until when some access token issued for it may still be live (the latest `exp`
 * noted at issuance): what a change to an API's subject mode checks first.
 */
export interface AudienceExpiry {
  /** Notes a token for `audience` that expires at `exp` (seconds); the marker only ever moves later. */
  noteAudienceExpiry(audience: string, exp: number): Promise<void>;
  /** The latest noted `exp` still in the future, or undefined when no noted token is live. */
  audienceExpiry(audience: string): Promise<number | undefined>;
}

/** The revocation blacklist of access tokens' `jti`s. */
export interface RevocationList {
  /** Puts a `jti` on the blacklist until the token would have expired. */
  blacklist(jti: string, expiresIn: number): Promise<void>;
}

/** Replay detection (client assertions, DPoP proofs). */
export interface ReplayGuard {
  /** Records `key` for `ttl` seconds; false when it was already recorded. */
  claimOnce(key: string, ttl: number): Promise<boolean>;
}

/** Everything issued under a grant, ended together. */
export interface GrantTokenStore {
  /**
   * Deletes everything listed for the grant, blacklists its access tokens' `jti`s and marks
   * the grant revoked (for `markerTtl` seconds, longer than any token of it can live), all in
   * one atomic step.
   */
  revokeByGrantId(grantId: string, markerTtl: number): Promise<void>;
}

/** One refresh: the presented refresh token, its successor, and the access token issued with them. */
export interface RefreshRotation {
  /** The refresh token presented (its id), consumed by this rotation. */
  consumed: string;
  successor: { id: string; payload: AdapterPayload; expiresIn: number };
  /** The sealed access token issued with it, indexed by the hash of its value (undefined: none to index). */
  accessToken?: IssuedIndexEntry | undefined;
}

/**
 * `rotated`: the one winner; `reused`: the presented token was consumed already; `gone`: it
 * expired or was deleted since it was read; `grant-revoked`: the grant was revoked meanwhile.
 * Nothing is written unless `rotated`.
 */
export type RotationOutcome = 'rotated' | 'reused' | 'gone' | 'grant-revoked';

export interface RefreshRotationStore {
  /** Consumes the presented refresh token, stores its successor and indexes the access token: one atomic step. */
  rotateRefreshToken(rotation: RefreshRotation): Promise<RotationOutcome>;
}

/** The whole short-lived store: Redis in deployments, an in-process map in embedded mode. Code takes the slice it needs. */
export interface ShortLivedStore extends ModelStore, IssuedTokenIndex, RevocationList, ReplayGuard, GrantTokenStore, RefreshRotationStore, AudienceExpiry {
  readonly kind: 'redis' | 'memory';
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Models whose records are sealed access tokens, keyed by `jti`. */
export const SEALED_MODELS = ['AccessToken', 'ClientCredentials'] as const;
export type SealedModel = (typeof SEALED_MODELS)[number];

/** Models whose entries belong to a grant and die with it. */
export const GRANTABLE_MODELS = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

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
