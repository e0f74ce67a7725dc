/**
 * Every JOSE algorithm list of the server, once. (The resource-server SDK keeps its own: it
 * depends on jose alone and must not import server code.)
 */

/** Algorithms Veil's signing keys may use (JWKS, ID tokens, the inner JWS of sealed tokens). */
export const SIGNING_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'] as const;
export type SigningAlg = (typeof SIGNING_ALGORITHMS)[number];

/** The keys generated for a new key ring. RS256 first: the default ID token algorithm every relying party supports. */
export const DEFAULT_SIGNING_ALGORITHMS = ['RS256', 'ES256'] as const satisfies readonly SigningAlg[];

/** The inner JWS of a sealed access token. */
export const ACCESS_TOKEN_SIGNING_ALG: SigningAlg = 'ES256';

/** Key management for sealing to a resource server's encryption key (JWE `alg`). */
export const KEY_MANAGEMENT_ALGORITHMS = ['ECDH-ES', 'ECDH-ES+A128KW', 'ECDH-ES+A192KW', 'ECDH-ES+A256KW', 'RSA-OAEP', 'RSA-OAEP-256'] as const;
export type KeyManagementAlg = (typeof KEY_MANAGEMENT_ALGORITHMS)[number];

/** Content encryption of a sealed token (JWE `enc`). */
export const CONTENT_ENCRYPTION_ALGORITHMS = ['A128GCM', 'A192GCM', 'A256GCM'] as const;
export type ContentEncryptionAlg = (typeof CONTENT_ENCRYPTION_ALGORITHMS)[number];

/** Algorithms a private_key_jwt client assertion may be signed with (oidc-provider's `clientAuthSigningAlgValues`). */
export const CLIENT_AUTH_SIGNING_ALGS = ['RS256', 'PS256', 'ES256', 'Ed25519', 'EdDSA'] as const;
