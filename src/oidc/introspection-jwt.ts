/**
 * JWT introspection responses (RFC 9701). A caller that asks with
 * `Accept: application/token-introspection+jwt` gets the answer as a JWT signed with Veil's
 * access-token key (typ `token-introspection+jwt`; `iss`, `aud` the caller's client id, `iat`,
 * and `token_introspection`, the RFC 7662 answer, `{ active: false }` included), so it can be
 * relayed and checked later against Veil's JWKS. A resource server gets it encrypted to its
 * registered key, with the algorithms it is registered with (as its access tokens are). OAuth
 * clients get it signed only (Veil keeps no encryption key for clients).
 */
import type { Context } from 'koa';
import { ACCESS_TOKEN_SIGNING_ALG } from '../crypto/algorithms.js';
import { encryptCompact, signJwt, type SigningKey } from '../crypto/sealer.js';
import type { EncryptionKeys } from '../resource-registry/encryption-keys.js';
import { CONTENT_ENCRYPTION_ALGS, KEY_MANAGEMENT_ALGS } from '../resource-registry/encryption-keys.js';
import type { Caller } from './token-endpoints.js';

export const INTROSPECTION_JWT_TYPE = 'token-introspection+jwt';
export const INTROSPECTION_JWT_MEDIA_TYPE = `application/${INTROSPECTION_JWT_TYPE}`;

/** RFC 9701 §6: what the discovery document says of JWT answers. */
export const INTROSPECTION_JWT_METADATA = {
  introspection_signing_alg_values_supported: [ACCESS_TOKEN_SIGNING_ALG],
  // RSA-OAEP (SHA-1) is refused at registration, so it is never used.
  introspection_encryption_alg_values_supported: KEY_MANAGEMENT_ALGS.filter((alg) => alg !== 'RSA-OAEP'),
  introspection_encryption_enc_values_supported: [...CONTENT_ENCRYPTION_ALGS],
};

/** Whether the caller prefers a JWT answer (content negotiation: plain `*\/*` still gets JSON). */
export function wantsJwtAnswer(ctx: Context): boolean {
  return ctx.accepts('application/json', INTROSPECTION_JWT_MEDIA_TYPE) === INTROSPECTION_JWT_MEDIA_TYPE;
}

export class IntrospectionJwt {
  constructor(private readonly deps: { issuer: string; signer: SigningKey; keys: EncryptionKeys }) {}

  /** The answer as a signed JWT, encrypted to the caller when it is a resource server. */
  async answer(body: Record<string, unknown>, caller: Caller): Promise<string> {
    const aud = caller.kind === 'resource-server' ? caller.rs.introspectionClientId : caller.client.clientId;
    const jws = signJwt({ iss: this.deps.issuer, aud, iat: Math.floor(Date.now() / 1000), token_introspection: body }, this.deps.signer, INTROSPECTION_JWT_TYPE);
    if (caller.kind !== 'resource-server') return jws;
    // An unavailable key (EncryptionKeyError, key_unavailable) is a 503, as at the token edge.
    return encryptCompact(jws, await this.deps.keys.forResourceServer(caller.rs), 'JWT');
  }
}
