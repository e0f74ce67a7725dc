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
export type { StatusClaim, StatusListOptions } from './status-list.js';
export type { IntrospectionOptions } from './introspection.js';
export type { BearerOutcome, ErrorBody, RequestFacts, RequireAccessTokenOptions } from './bearer.js';
export { createDPoPChecker, DEFAULT_DPOP_ALGORITHMS, normalizeHtu, type DPoPAlgorithm, type DPoPOptions, type DPoPProofChecker, type DPoPRequest } from './dpop.js';
export { requireAccessToken as koaRequireAccessToken, type AccessTokenState, type KoaContextLike, type KoaMiddleware } from './koa.js';
export { requireAccessToken as expressRequireAccessToken, type AccessTokenRequest, type NodeMiddleware } from './express.js';
export {
  createPolicyNode,
  PolicyNodeError,
  POLICY_OPS,
  prepareQuery,
  readDecision,
  type AggregateInput,
  type AggregateResult,
  type DecideInput,
  type DecisionSubject,
  type PolicyDecision,
  type PolicyNode,
  type PolicyNodeErrorCode,
  type PolicyNodeOptions,
  type PolicyOp,
  type PolicyQueryEvent,
  type PreparedQuery,
} from './policy-node.js';
