/**
 * What an access token says (RFC 9068), and what of it is kept at rest. The record Veil stores
 * keeps the authentication event but never the user claims: those travel only inside the sealed
 * token, for the one API allowed them. A token made by token exchange (RFC 8693) also keeps its
 * `act` claim and, for Veil alone, the token it was exchanged from (`EXCHANGED_FROM`).
 */
import type { AdapterPayload } from 'oidc-provider';
import type { ResourceServerRecord } from '../store/resource-servers.js';
import { STATUS_RECORD, statusClaim } from '../status-list/token-statuses.js';

/** Claims about the authentication event, kept with the token record (no personal data). */
export const AUTHENTICATION_CLAIMS = ['auth_time', 'acr', 'amr'] as const;

/** RFC 8693 §4.1: who acts for the subject (the exchanging client), prior actors nested inside. */
export const ACTOR_CLAIM = 'act';

/**
 * Where an exchanged token's record names the token it was made from (in `extra`, which the
 * stored record keeps): never a claim of the token, never shown at introspection.
 */
export const EXCHANGED_FROM = 'veil_exchanged_from';

/** The subject token of an exchanged token, as its record keeps it. */
export interface ExchangedFrom {
  /** The subject token's `jti`: the exchanged token is live only while that record is. */
  jti: string;
  /** The subject token's `sub` (an account id, or a client id for client credentials). */
  sub: string;
  client_id: string;
  aud: string;
  /** The subject token's grant, if any (for the audit trail; the token is not on that grant's list). */
  grant_id?: string;
}

export interface ActorClaim {
  sub: string;
  act?: ActorClaim;
}

const extraOf = (payload: AdapterPayload) => (payload.extra ?? {}) as Record<string, unknown>;

/** What an exchanged token was made from; undefined for every other token. */
export function exchangedFrom(payload: AdapterPayload): ExchangedFrom | undefined {
  const value = extraOf(payload)[EXCHANGED_FROM] as Partial<ExchangedFrom> | undefined;
  return value && typeof value.jti === 'string' && typeof value.sub === 'string' ? (value as ExchangedFrom) : undefined;
}

/** The token's `act` claim, if it has one. */
export function actorOf(payload: AdapterPayload): ActorClaim | undefined {
  const act = extraOf(payload)[ACTOR_CLAIM] as ActorClaim | undefined;
  return act && typeof act === 'object' && typeof act.sub === 'string' ? act : undefined;
}

/** How many actors a token names (0: not exchanged). */
export function actorDepth(act: ActorClaim | undefined): number {
  let depth = 0;
  for (let a = act; a; a = a.act) depth++;
  return depth;
}

/** The `sub` a token speaks for: the subject token's for an exchanged one; RFC 9068 §2.2: the client when there is no resource owner. */
export function subjectOf(payload: AdapterPayload): unknown {
  return exchangedFrom(payload)?.sub ?? payload.accountId ?? payload.clientId;
}

/**
 * RFC 9068 claims of the access token, and nothing else. `sub` is what the API sees (its
 * pairwise value: oidc/pairwise-subjects.ts); the stored subject when not given.
 */
export function accessTokenClaims(issuer: string, jti: string, payload: AdapterPayload, rs: ResourceServerRecord, sub: unknown = subjectOf(payload)): Record<string, unknown> {
  const extra = extraOf(payload);
  const claims: Record<string, unknown> = {
    iss: issuer,
    sub,
    aud: payload.aud,
    client_id: payload.clientId,
    iat: payload.iat,
    exp: payload.exp,
    jti,
  };
  if (payload.scope) claims.scope = payload.scope;
  for (const name of AUTHENTICATION_CLAIMS) if (extra[name] !== undefined) claims[name] = extra[name];
  const act = actorOf(payload);
  if (act) claims[ACTOR_CLAIM] = act;
  for (const name of rs.claims) if (extra[name] !== undefined) claims[name] = extra[name];
  // draft-ietf-oauth-status-list: where an API checking offline finds whether it was revoked.
  const status = statusClaim(issuer, payload);
  if (status) claims.status = status;
  if (payload.jkt) claims.cnf = { jkt: payload.jkt };
  else if (payload['x5t#S256']) claims.cnf = { 'x5t#S256': payload['x5t#S256'] };
  return claims;
}

/** Kept with the stored record: the authentication event, and what makes an exchanged token one. */
const STORED_EXTRA: readonly string[] = [...AUTHENTICATION_CLAIMS, ACTOR_CLAIM, EXCHANGED_FROM, STATUS_RECORD];

/** An access token's payload as it is stored: the user claims left out. */
export function withoutUserClaims(payload: AdapterPayload): AdapterPayload {
  if (!payload.extra) return payload;
  const extra = payload.extra as Record<string, unknown>;
  const kept = Object.fromEntries(STORED_EXTRA.filter((n) => extra[n] !== undefined).map((n) => [n, extra[n]]));
  return { ...payload, extra: kept };
}
