/**
 * The rules for private_key_jwt client assertions that oidc-provider's /token and Veil's own
 * endpoints (token-endpoints.ts) share, so that both accept exactly the same assertions.
 * configuration.ts hands them to oidc-provider; CallerAuthenticator applies them itself.
 */

/** Seconds of clock skew allowed on `exp`/`nbf` (oidc-provider's `clockTolerance`). */
export const CLOCK_TOLERANCE_SECONDS = 15;

/** Algorithms an assertion may be signed with (oidc-provider's `clientAuthSigningAlgValues`). */
export { CLIENT_AUTH_SIGNING_ALGS } from '../crypto/algorithms.js';

/**
 * `aud` must be the issuer identifier, as one string. oidc-provider alone would also take the
 * token endpoint's or the called endpoint's URL, or an array holding one of them; one audience
 * value means an assertion made for this server is valid at all of its endpoints and nowhere
 * else (RFC 7523 §3, as tightened by FAPI 2.0 and draft-ietf-oauth-rfc7523bis).
 * Returns why the audience is refused, or undefined when it is right.
 */
export function assertionAudienceProblem(issuer: string, aud: unknown): string | undefined {
  if (typeof aud !== 'string') return 'audience (aud) must be the issuer identifier, as a single string';
  if (aud !== issuer) return 'audience (aud) must equal the issuer identifier';
  return undefined;
}
