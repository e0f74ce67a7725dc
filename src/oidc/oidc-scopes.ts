/**
 * The OpenID Connect scopes Veil supports. A resource server may not register a scope of the
 * same name: oidc-provider would take it for the OIDC scope and an API could never be granted it.
 */
export const OIDC_SCOPES: readonly string[] = ['openid', 'offline_access', 'email', 'profile'];
