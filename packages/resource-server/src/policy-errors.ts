/**
 * The policy node's one error type (the node side of confidential claims, docs/CONFIDENTIAL_CLAIMS.md),
 * in the style of VeilTokenError: one code per way a query can fail, and `unavailable` for the
 * codes that say Veil could not be asked rather than that the answer is no. Messages never carry
 * a token, a ciphertext, a threshold or an amount.
 */
export type PolicyNodeErrorCode =
  /** The discovery document could not be fetched, is for another issuer, or names no HE key set. */
  | 'discovery_failed'
  /** Veil's HE key set or signing JWKS could not be fetched. */
  | 'keys_unavailable'
  /** The ciphertexts name an HE key Veil does not publish (retired, or not Veil's). */
  | 'he_key_unknown'
  /** The caller's input: a ciphertext outside Z*_{n²}, a threshold that is not an integer in range, an unknown op. */
  | 'invalid_input'
  /** A companion (hec+jwt) token that does not verify against Veil's JWKS, or has no such claim. */
  | 'companion_invalid'
  /** Veil refused the query (its OAuth error is in `oauthError`): inactive token, unregistered policy, spent budget. */
  | 'refused'
  /** Veil could not be reached, timed out, or answered 5xx / something that is not its JSON. */
  | 'veil_unavailable'
  /**
   * Veil answered this (token, node, policy) before, for another query (it answers once and then
   * repeats that answer): the earlier answer cannot be read for this threshold.
   */
  | 'already_decided'
  /** Veil's answer does not verify (signature, issuer, typ, expiry) or is not about what was asked (node, policy, jti, ct_hash, commitment). */
  | 'decision_invalid';

const UNAVAILABLE: ReadonlySet<PolicyNodeErrorCode> = new Set(['discovery_failed', 'keys_unavailable', 'veil_unavailable']);

export class PolicyNodeError extends Error {
  override name = 'PolicyNodeError';
  readonly code: PolicyNodeErrorCode;
  /** Veil's OAuth error code when it refused (`invalid_token`, `access_denied`, `slow_down`, ...). */
  readonly oauthError: string | undefined;
  /** Veil's HTTP status when it refused. */
  readonly status: number | undefined;

  constructor(code: PolicyNodeErrorCode, message?: string, options?: { cause?: unknown; oauthError?: string; status?: number }) {
    super(message ? `${code}: ${message}` : code, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.oauthError = options?.oauthError;
    this.status = options?.status;
  }

  /** True when Veil could not be asked (fail closed, but not the caller's or the token's fault). */
  get unavailable(): boolean {
    return UNAVAILABLE.has(this.code);
  }
}
