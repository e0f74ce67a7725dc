/**
 * Finds what Veil issued from the value a caller presents. Veil cannot decrypt its own sealed
 * tokens, so:
 *   sealed token (compact JWE, 5 parts) -> the issued-token index, by the value's hash
 *   inner JWS (3 parts, what a resource server holds after decrypting) -> verified with jose
 *       against Veil's own keys, then the record by its `jti`
 *   anything else -> an opaque refresh token or userinfo-only access token, by its value
 * Anything unrecognised, forged, or too large is simply not found.
 */
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { AdapterPayload } from 'oidc-provider';
import type { ShortLivedStore } from '../store/short-lived-store.js';
import { sealedTokenHash } from './sealed-tokens.js';

export type TokenKind = 'AccessToken' | 'ClientCredentials' | 'RefreshToken';

export interface FoundToken {
  kind: TokenKind;
  /** The record's id: the `jti` of an access token, the value of an opaque token. */
  id: string;
  payload: AdapterPayload;
  /** On the revocation blacklist. */
  revoked: boolean;
}

/** Far above any token Veil issues; longer values are not looked at. */
export const MAX_TOKEN_LENGTH = 8192;
const COMPACT_PART = /^[A-Za-z0-9_-]*$/;

export class TokenLookup {
  readonly #ownKeys: JWTVerifyGetKey;

  constructor(
    private readonly store: ShortLivedStore,
    private readonly issuer: string,
    publicSigningKeys: JSONWebKeySet,
    private readonly signingAlgs: string[],
  ) {
    this.#ownKeys = createLocalJWKSet(publicSigningKeys);
  }

  async find(value: string, hint?: string): Promise<FoundToken | undefined> {
    if (!value || value.length > MAX_TOKEN_LENGTH) return undefined;
    const parts = value.split('.');
    if (!parts.every((p) => COMPACT_PART.test(p))) return undefined;
    if (parts.length === 5) return this.#issued(await this.store.findIssuedByHash(sealedTokenHash(value)));
    if (parts.length === 3) return this.#fromInnerJws(value);
    if (parts.length !== 1) return undefined;
    return this.#opaque(value, hint);
  }

  /** The sealed access token with this `jti`: what an exchanged token names as its subject. */
  async findByJti(jti: string): Promise<FoundToken | undefined> {
    return this.#issued(await this.store.findIssuedByJti(jti));
  }

  #issued(record: Awaited<ReturnType<ShortLivedStore['findIssuedByHash']>>): FoundToken | undefined {
    return record && { kind: record.model as TokenKind, id: record.jti, payload: record.payload, revoked: record.revoked };
  }

  async #fromInnerJws(value: string): Promise<FoundToken | undefined> {
    let jti: unknown;
    try {
      ({
        payload: { jti },
      } = await jwtVerify(value, this.#ownKeys, { issuer: this.issuer, typ: 'at+jwt', algorithms: this.signingAlgs }));
    } catch {
      return undefined;
    }
    return typeof jti === 'string' ? this.#issued(await this.store.findIssuedByJti(jti)) : undefined;
  }

  async #opaque(value: string, hint?: string): Promise<FoundToken | undefined> {
    const order: TokenKind[] = hint === 'refresh_token' ? ['RefreshToken', 'AccessToken', 'ClientCredentials'] : ['AccessToken', 'ClientCredentials', 'RefreshToken'];
    for (const kind of order) {
      const payload = await this.store.find(kind, value);
      // A sealed token's record is never reachable by its bare id (its jti).
      if (payload && !(kind !== 'RefreshToken' && payload.aud !== undefined)) return { kind, id: value, payload, revoked: false };
    }
    return undefined;
  }
}
