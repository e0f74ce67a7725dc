/** Human wording for scopes and user claims shown on the consent page. */
const OIDC_SCOPES: Record<string, string> = {
  openid: 'Sign you in with your account',
  profile: 'See your name',
  email: 'See your email address',
  offline_access: 'Stay connected when you are not using it',
};

export function describeOidcScope(scope: string): string {
  return OIDC_SCOPES[scope] ?? scope;
}

export function describeApiScope(scope: string): string {
  return `Permission "${scope}"`;
}

/** The user claims a resource server may receive (resource-registry/registry.ts RELEASABLE_CLAIMS). */
const CLAIMS: Record<string, string> = {
  email: 'Your email address',
  email_verified: 'Whether your email address is verified',
  name: 'Your name',
};

export function describeClaim(claim: string): string {
  return CLAIMS[claim] ?? `Your "${claim}"`;
}
