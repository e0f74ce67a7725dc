/** `@veil/resource-server`: verify Veil's sealed access tokens in an API. */
export {
  createVerifier,
  DEFAULT_ALGORITHMS,
  type AccessTokenClaims,
  type AccessTokenVerifier,
  type ContentEncryptionAlgorithm,
  type DecryptionKey,
  type KeyManagementAlgorithm,
  type SigningAlgorithm,
  type VerifiedAccessToken,
  type VerifierOptions,
} from './verifier.js';
export { VeilTokenError, type VeilTokenErrorCode } from './errors.js';
export type { IntrospectionOptions } from './introspection.js';
export type { BearerOutcome, ErrorBody, RequireAccessTokenOptions } from './bearer.js';
export { requireAccessToken as koaRequireAccessToken, type AccessTokenState, type KoaContextLike, type KoaMiddleware } from './koa.js';
export { requireAccessToken as expressRequireAccessToken, type AccessTokenRequest, type NodeMiddleware } from './express.js';
