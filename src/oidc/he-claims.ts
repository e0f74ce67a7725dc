/**
 * Confidential claims at issuance (issue 10): for a resource server registered with `he_claims`,
 * the account attributes it names travel Paillier-encrypted under Veil's HE key, in the claim
 *
 *   hec: { kid: <HE key id>, <claim>: <base64url ciphertext>, ... }
 *
 * inside the signed inner JWT (so the signature covers the ciphertexts: no substitution), and in
 * a companion JWT for intermediaries that are not the token's audience:
 *
 *   header  { alg, typ: "hec+jwt", kid }  (Veil's access-token key: verify against /jwks)
 *   payload { iss, aud, iat, exp, jti, hec }  (the access token's aud, iat, exp and jti; no sub)
 *
 * returned beside the access token as the token response parameter `hec_token`.
 *
 * Which one to use: the API the token is for (or a gate holding that API's decryption key) reads
 * `hec` from the access token it verifies anyway. A node that is not the audience (a payment
 * service, an analytics job) cannot open the sealed token; the client hands it the companion,
 * which shows only ciphertexts and the token's `jti` (no subject, no scopes, no user claims), and
 * which Veil's decision endpoints resolve to the access token by that `jti` (live, not revoked).
 *
 * Every ciphertext has fresh randomness (the encryptor's pool: equal ciphertexts would link
 * tokens). A claim the account lacks is left out; with none, there is no `hec` and no companion.
 * Tokens without an account (client credentials) carry none. Plain values never enter a token,
 * a log line or the stored record (the record never holds `hec`: it is added when sealing).
 */
import type { AdapterPayload } from 'oidc-provider';
import type { ResourceServerRecord } from '../store/resource-servers.js';

/** The claim: the HE key id and one base64url ciphertext per attribute. */
export type HecClaim = { kid: string } & Record<string, string>;

/** JWS `typ` of the companion token. */
export const COMPANION_TYP = 'hec+jwt';
/** Token response parameter that carries the companion. */
export const COMPANION_PARAMETER = 'hec_token';

export interface HeClaimsDeps {
  /** The values of these attributes (stored or derived) the account has; missing ones left out. */
  values(accountId: string, names: readonly string[]): Promise<Map<string, bigint>>;
  /** Veil's HE encryptor (he/he-encryptor.ts): fresh factor per ciphertext, off the event loop. */
  encryptor: { encrypt(values: Record<string, bigint>): Promise<{ kid: string; [claim: string]: string }> };
}

export class HeClaims {
  constructor(private readonly deps: HeClaimsDeps) {}

  /** The `hec` claim of a token for `rs`, or undefined (no HE claims, no account, no values). */
  async forToken(rs: ResourceServerRecord, payload: AdapterPayload): Promise<HecClaim | undefined> {
    if (!rs.heClaims.length || typeof payload.accountId !== 'string') return undefined;
    const values = await this.deps.values(payload.accountId, rs.heClaims);
    if (!values.size) return undefined;
    return this.deps.encryptor.encrypt(Object.fromEntries(values));
  }
}

/** The companion's claims, from the access token's. */
export function companionClaims(accessToken: Record<string, unknown>, hec: HecClaim): Record<string, unknown> {
  const { iss, aud, iat, exp, jti } = accessToken;
  return { iss, aud, iat, exp, jti, hec };
}
