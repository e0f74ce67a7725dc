/**
 * Rules every client must satisfy beyond oidc-provider's own schema. Applied when a client is
 * created (violations are refused) and again whenever one is loaded (violations are stripped),
 * so a row edited by hand in the database cannot widen what a client may do.
 */
import type { ClientMetadata } from 'oidc-provider';
import { DEFAULT_AUTH_METHOD } from './auth-methods.js';

export interface PolicyViolation {
  message: string;
}

export function clientPolicyViolations(metadata: ClientMetadata): PolicyViolation[] {
  const violations: PolicyViolation[] = [];
  const isPublic = (metadata.token_endpoint_auth_method ?? DEFAULT_AUTH_METHOD) === 'none';
  if (isPublic && metadata.grant_types?.includes('client_credentials')) {
    // A public client holds no credentials, so it cannot prove who it is without a user.
    violations.push({ message: 'client_credentials requires a confidential client (public clients cannot use it)' });
  }
  return violations;
}

/** The metadata with every policy violation removed (used on load). */
export function enforceClientPolicy(metadata: ClientMetadata): ClientMetadata {
  if (clientPolicyViolations(metadata).length === 0) return metadata;
  return { ...metadata, grant_types: (metadata.grant_types ?? []).filter((g) => g !== 'client_credentials') };
}
