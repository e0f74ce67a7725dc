/**
 * Rules every client must satisfy beyond oidc-provider's own schema. Applied when a client is
 * created (violations are refused) and again whenever one is loaded (violations are stripped),
 * so a row edited by hand in the database cannot widen what a client may do.
 */
import type { ClientMetadata } from 'oidc-provider';
import { DEFAULT_AUTH_METHOD } from './auth-methods.js';
import { EXCHANGE_FROM, TOKEN_EXCHANGE_GRANT_TYPE } from './token-exchange-policy.js';

export interface PolicyViolation {
  message: string;
}

/** Grant types only a confidential client may have: without credentials it cannot prove who it is without a user. */
const CONFIDENTIAL_ONLY: Record<string, string> = {
  client_credentials: 'client_credentials requires a confidential client (public clients cannot use it)',
  // The exchanged token is issued on the client's own say-so (it acts for the subject): it must authenticate.
  [TOKEN_EXCHANGE_GRANT_TYPE]: 'token exchange requires a confidential client (public clients cannot use it)',
};

const isPublic = (metadata: ClientMetadata) => (metadata.token_endpoint_auth_method ?? DEFAULT_AUTH_METHOD) === 'none';

export function clientPolicyViolations(metadata: ClientMetadata): PolicyViolation[] {
  const violations: PolicyViolation[] = [];
  const grantTypes = metadata.grant_types ?? [];
  if (isPublic(metadata)) {
    for (const grant of grantTypes) if (CONFIDENTIAL_ONLY[grant]) violations.push({ message: CONFIDENTIAL_ONLY[grant] });
  }
  if (metadata[EXCHANGE_FROM] !== undefined && !grantTypes.includes(TOKEN_EXCHANGE_GRANT_TYPE)) {
    violations.push({ message: `${EXCHANGE_FROM} is only for clients with the ${TOKEN_EXCHANGE_GRANT_TYPE} grant type` });
  }
  return violations;
}

/** The metadata with every policy violation removed (used on load). */
export function enforceClientPolicy(metadata: ClientMetadata): ClientMetadata {
  if (clientPolicyViolations(metadata).length === 0) return metadata;
  const grantTypes = (metadata.grant_types ?? []).filter((g) => !(isPublic(metadata) && CONFIDENTIAL_ONLY[g]));
  const { [EXCHANGE_FROM]: exchangeFrom, ...rest } = metadata;
  return { ...rest, grant_types: grantTypes, ...(grantTypes.includes(TOKEN_EXCHANGE_GRANT_TYPE) && exchangeFrom !== undefined ? { [EXCHANGE_FROM]: exchangeFrom } : {}) };
}
