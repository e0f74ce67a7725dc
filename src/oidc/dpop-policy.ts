/**
 * DPoP (RFC 9449) at Veil's token endpoint: which proof algorithms it accepts. Asymmetric only
 * (a proof is checked with the public key it carries); the resource-server SDK accepts the same
 * set by default, so a client whose proofs Veil takes is not refused at the API.
 */
export const DPOP_SIGNING_ALGS = ['ES256', 'ES384', 'PS256', 'RS256', 'Ed25519', 'EdDSA'] as const;
