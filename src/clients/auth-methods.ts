/** Client authentication methods at the token endpoint (RFC 7591 `token_endpoint_auth_method`), once. */

export const TOKEN_ENDPOINT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'] as const;
export type TokenEndpointAuthMethod = (typeof TOKEN_ENDPOINT_AUTH_METHODS)[number];

/** The methods that present a client secret; interchangeable for a client registered with either. */
export const SECRET_AUTH_METHODS = ['client_secret_basic', 'client_secret_post'] as const satisfies readonly TokenEndpointAuthMethod[];

/** A confidential client registered without a method. */
export const DEFAULT_AUTH_METHOD: TokenEndpointAuthMethod = 'client_secret_basic';

export const isSecretAuthMethod = (method: string): boolean => (SECRET_AUTH_METHODS as readonly string[]).includes(method);
