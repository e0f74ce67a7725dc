/**
 * One error class with one precise code per way an access token can fail, and the translation
 * of jose's typed errors into those codes (a failed JWKS fetch is classified where it happens,
 * in verifier.ts, as `jwks_unavailable`).
 */
import { errors } from 'jose';

export type VeilTokenErrorCode =
  // Token Status List (status-list.ts): the token's entry, then each way its list can fail.
  | 'token_revoked'
  | 'token_suspended'
  | 'status_list_uri_untrusted'
  | 'status_list_invalid'
  | 'status_list_expired'
  | 'status_list_key_unknown'
  | 'status_list_unavailable'
  | 'token_malformed'
  | 'token_too_large'
  | 'token_not_encrypted'
  | 'decryption_key_unknown'
  | 'decryption_failed'
  | 'compression_not_allowed'
  | 'algorithm_not_allowed'
  | 'signing_key_unknown'
  | 'signature_invalid'
  | 'issuer_mismatch'
  | 'audience_mismatch'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'wrong_token_type'
  | 'claims_invalid'
  | 'token_inactive'
  | 'introspection_failed'
  | 'jwks_unavailable'
  // DPoP (dpop.ts): a bound token used as a Bearer token, a DPoP token that is not bound, and each way a proof fails.
  | 'dpop_required'
  | 'dpop_not_bound'
  | 'invalid_dpop_proof'
  | 'dpop_htm_mismatch'
  | 'dpop_htu_mismatch'
  | 'dpop_proof_stale'
  | 'dpop_ath_mismatch'
  | 'dpop_key_mismatch'
  | 'dpop_replay';

/**
 * Codes that say nothing about the token itself: Veil (its JWKS or introspection endpoint) could
 * not be reached. The verifier still rejects the token (fails closed); middleware answers 503
 * instead of telling the client to throw a possibly good token away.
 */
const UNAVAILABLE: ReadonlySet<VeilTokenErrorCode> = new Set([
  'introspection_failed',
  'jwks_unavailable',
  // No trustworthy status list (unreachable, or one that fails verification): nothing is known about the token.
  'status_list_unavailable',
  'status_list_invalid',
  'status_list_expired',
  'status_list_key_unknown',
]);

export class VeilTokenError extends Error {
  override name = 'VeilTokenError';
  readonly code: VeilTokenErrorCode;

  constructor(code: VeilTokenErrorCode, message?: string, options?: { cause?: unknown }) {
    // Messages never include the token: they end up in logs and HTTP answers.
    super(message ? `${code}: ${message}` : code, options);
    this.code = code;
  }

  /** True when the failure is Veil being unreachable rather than the token being bad. */
  get unavailable(): boolean {
    return UNAVAILABLE.has(this.code);
  }
}

/** Which jose call raised the error: the same jose class means different things in each. */
export type VerificationStage = 'decrypt' | 'verify';

const CLAIM_CODES: Readonly<Record<string, VeilTokenErrorCode>> = {
  iss: 'issuer_mismatch',
  aud: 'audience_mismatch',
  nbf: 'token_not_yet_valid',
  iat: 'token_not_yet_valid',
  exp: 'token_expired',
  typ: 'wrong_token_type',
};

/**
 * Maps any error thrown while decrypting or verifying to a VeilTokenError, so callers only ever
 * see one error type. Anything unrecognised fails closed with the stage's generic code.
 */
export function toVeilTokenError(err: unknown, stage: VerificationStage): VeilTokenError {
  if (err instanceof VeilTokenError) return err;
  // Not the jose error itself as the cause: its `payload` holds the decoded claims (sub, email),
  // which a caller logging the error would print.
  const cause = err instanceof Error ? { name: err.name, code: (err as { code?: unknown }).code } : undefined;
  const fail = (code: VeilTokenErrorCode) => new VeilTokenError(code, err instanceof Error ? err.message : undefined, { cause });

  if (err instanceof errors.JWTExpired) return fail('token_expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    // A missing or mistyped claim is a malformed claims set; a present but wrong one has its own code.
    if (err.reason === 'missing' || err.reason === 'invalid') return fail('claims_invalid');
    return fail(CLAIM_CODES[err.claim] ?? 'claims_invalid');
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) return fail('algorithm_not_allowed');
  if (err instanceof errors.JWEDecryptionFailed) return fail('decryption_failed');
  // Header problems are caught before decrypting, so a JWEInvalid from jose means the encrypted
  // parts themselves (IV, tag, encrypted key) are damaged or truncated.
  if (err instanceof errors.JWEInvalid) return fail(stage === 'decrypt' ? 'decryption_failed' : 'token_malformed');
  if (err instanceof errors.JWSSignatureVerificationFailed) return fail('signature_invalid');
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return fail('signing_key_unknown');
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return fail('token_malformed');
  return fail(stage === 'decrypt' ? 'decryption_failed' : 'signature_invalid');
}
