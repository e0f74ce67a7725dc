/**
 * What an access token says (RFC 9068), and what of it is kept at rest. The record Veil stores
 * keeps the authentication event but never the user claims: those travel only inside the sealed
 * token, for the one API allowed them.
 */
import type { AdapterPayload } from 'oidc-provider';
import type { ResourceServerRecord } from '../store/resource-servers.js';

/** Claims about the authentication event, kept with the token record (no personal data). */
export const AUTHENTICATION_CLAIMS = ['auth_time', 'acr', 'amr'] as const;

/** RFC 9068 claims of the access token, and nothing else. */
export function accessTokenClaims(issuer: string, jti: string, payload: AdapterPayload, rs: ResourceServerRecord): Record<string, unknown> {
  const extra = (payload.extra ?? {}) as Record<string, unknown>;
  const claims: Record<string, unknown> = {
    iss: issuer,
    // RFC 9068 §2.2: with no resource owner (client credentials), the subject is the client.
    sub: payload.accountId ?? payload.clientId,
    aud: payload.aud,
    client_id: payload.clientId,
    iat: payload.iat,
    exp: payload.exp,
    jti,
  };
  if (payload.scope) claims.scope = payload.scope;
  for (const name of AUTHENTICATION_CLAIMS) if (extra[name] !== undefined) claims[name] = extra[name];
  for (const name of rs.claims) if (extra[name] !== undefined) claims[name] = extra[name];
  if (payload.jkt) claims.cnf = { jkt: payload.jkt };
  else if (payload['x5t#S256']) claims.cnf = { 'x5t#S256': payload['x5t#S256'] };
  return claims;
}

/** An access token's payload as it is stored: the user claims left out. */
export function withoutUserClaims(payload: AdapterPayload): AdapterPayload {
  if (!payload.extra) return payload;
  const extra = payload.extra as Record<string, unknown>;
  const kept = Object.fromEntries(AUTHENTICATION_CLAIMS.filter((n) => extra[n] !== undefined).map((n) => [n, extra[n]]));
  return { ...payload, extra: kept };
}
