/** Human wording for scopes shown on the consent page. */
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
