/**
 * What bench/tokens.ts and bench/reference-provider.ts agree on: the reference provider's one
 * client and its three resource indicators (one per access token format).
 */
export const REFERENCE_CLIENT = { id: 'bench-reference', secret: 'bench-reference-secret-0123456789abcdef' } as const;

export const REFERENCE_RESOURCES = {
  opaque: 'https://opaque.bench',
  jwt: 'https://jwt.bench',
  nested: 'https://nested.bench',
} as const;

export type ReferenceFormat = keyof typeof REFERENCE_RESOURCES;

/** Scopes every reference resource server offers; the bench asks for `read`, as it does of Veil. */
export const REFERENCE_SCOPES = 'read write';

/** The line the reference provider prints once it listens. */
export const REFERENCE_READY = /reference provider ready on (http:\/\/\S+)/;
