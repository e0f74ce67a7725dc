/**
 * Sealed access tokens (the heart of Veil): the RFC 9068 claims of an issued access token,
 * signed by Veil, then encrypted to its resource server's key. Called from one place only, the
 * token edge (token-edge.ts), once oidc-provider has issued and stored the token; the client
 * receives the sealed value, and the stored record is indexed by the value's hash.
 */
import { createHash } from 'node:crypto';
import { errors, type AdapterPayload } from 'oidc-provider';
import { sealAccessToken, signJwt, type SigningKey } from '../crypto/sealer.js';
import { COMPANION_TYP, companionClaims, type HeClaims } from './he-claims.js';
import type { EncryptionKeys } from '../resource-registry/encryption-keys.js';
import type { ResourceServerRegistry } from '../resource-registry/registry.js';
import type { PairwiseSubjects } from './pairwise-subjects.js';
import { accessTokenClaims } from './token-claims.js';

/** How Veil finds a sealed token it cannot decrypt: by the hash of the value. */
export function sealedTokenHash(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}

export interface SealingDeps {
  issuer: string;
  signer: SigningKey;
  registry: ResourceServerRegistry;
  keys: EncryptionKeys;
  /** Encrypted attributes for audiences with `he_claims` (he-claims.ts); none without. */
  heClaims?: HeClaims | undefined;
  /** The API's `sub` for the user (pairwise or the account id). */
  subjects: PairwiseSubjects;
}

export interface SealedToken {
  value: string;
  /** What the issued-token index keys the stored record by. */
  hash: string;
  /** The `hec+jwt` companion, when the token carries `hec`. */
  companion?: string;
}

export class Sealer {
  constructor(private readonly deps: SealingDeps) {}

  /**
   * Seals the access token `jti` (its payload with the user claims in `extra`), or returns
   * undefined for a token without an audience (userinfo-only: it stays opaque).
   */
  async seal(jti: string, payload: AdapterPayload): Promise<SealedToken | undefined> {
    if (typeof payload.aud !== 'string') return undefined;
    const rs = await this.deps.registry.find(payload.aud);
    if (!rs) throw new errors.InvalidTarget('the resource server no longer exists');
    // An unavailable key (EncryptionKeyError, code key_unavailable) is a 503 at the edge.
    const key = await this.deps.keys.forResourceServer(rs);
    // Only an audience with HE claims reaches the HE code.
    const hec = rs.heClaims.length > 0 && this.deps.heClaims ? await this.deps.heClaims.forToken(rs, payload) : undefined;
    const claims = accessTokenClaims(this.deps.issuer, jti, payload, rs, this.deps.subjects.subjectFor(payload, rs));
    if (hec) claims.hec = hec;
    const value = sealAccessToken(claims, this.deps.signer, key);
    return { value, hash: sealedTokenHash(value), ...(hec && { companion: signJwt(companionClaims(claims, hec), this.deps.signer, COMPANION_TYP) }) };
  }
}
