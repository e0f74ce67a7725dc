/**
 * RFC 7662 token introspection for everything Veil issues: sealed access tokens (the JWE a
 * client holds, or the inner JWS a resource server holds after decrypting), opaque access
 * tokens and refresh tokens. A resource server learns only about tokens for its own audience,
 * a confidential client only about its own tokens and, with token exchange, the access tokens
 * of the APIs it fronts (`exchange_from`), a public client nothing (401); everything else, like
 * anything revoked, expired, unknown or malformed, is `{ "active": false }`. A token made by
 * token exchange is active only while the token it was exchanged from is.
 */
import type { Middleware } from 'koa';
import { exchangeSources } from '../clients/token-exchange-policy.js';
import type { GrantRepository } from '../store/grants.js';
import { actorOf, ACTOR_CLAIM, exchangedFrom, subjectOf } from './token-claims.js';
import { EndpointError, INTROSPECTION_PATH, tokenEndpoint, type Caller, type CallerAuthenticator } from './token-endpoints.js';
import type { FoundToken, TokenLookup } from './token-lookup.js';

/**
 * How many times a token may be exchanged in a row (a chain of actors): exchanging a token made
 * by exchange is refused past it, and liveness follows a chain no further (fail closed).
 */
export const MAX_EXCHANGE_DEPTH = 3;

/** Finds the token an exchanged token was made from, by its `jti`. */
export type SubjectLookup = (jti: string) => Promise<FoundToken | undefined>;

/** Whether the parties a token names still stand (a deleted client, a disabled account end it). */
export interface Liveness {
  grants: GrantRepository;
  clientExists(clientId: string): Promise<boolean>;
  accountActive(accountId: string): Promise<boolean>;
}

export interface IntrospectionDeps {
  issuer: string;
  callers: CallerAuthenticator;
  tokens: TokenLookup;
  liveness: Liveness;
}

export function mayIntrospect(caller: Caller, token: FoundToken): boolean {
  if (caller.kind === 'resource-server') return token.kind !== 'RefreshToken' && token.payload.aud === caller.rs.identifier;
  if (token.payload.clientId === caller.client.clientId) return true;
  // A gateway fronting an API (token exchange's `exchange_from`) holds that API's key and reads
  // its tokens anyway; it may ask whether they are still live. The loaded client has the list
  // only with the grant type (clients/client-policy.ts).
  return token.kind !== 'RefreshToken' && typeof token.payload.aud === 'string' && exchangeSources(caller.client.metadata()).includes(token.payload.aud);
}

/**
 * Whether the token is live: not revoked, not expired, not consumed, its grant still stands
 * (PostgreSQL is the authority), its client still exists and its user is not disabled; for a
 * token made by token exchange, also the token it was made from, and so on up the chain (at
 * most MAX_EXCHANGE_DEPTH; without `subjects`, an exchanged token is not active).
 */
export async function isActive(token: FoundToken, liveness: Liveness, subjects?: SubjectLookup, depth = 0): Promise<boolean> {
  const { payload } = token;
  if (token.revoked || payload.consumed) return false;
  if (typeof payload.exp !== 'number' || payload.exp <= Math.floor(Date.now() / 1000)) return false;
  const source = exchangedFrom(payload);
  if (source) {
    // Revoking the subject deletes its record, and so does ending its grant: either ends this one.
    if (!subjects || depth >= MAX_EXCHANGE_DEPTH) return false;
    const subject = await subjects(source.jti);
    if (!subject || !(await isActive(subject, liveness, subjects, depth + 1))) return false;
  } else if (payload.grantId) {
    const grant = await liveness.grants.find(payload.grantId);
    if (!grant || grant.clientId !== payload.clientId || grant.accountId !== payload.accountId) return false;
  }
  if (typeof payload.clientId !== 'string' || !(await liveness.clientExists(payload.clientId))) return false;
  if (typeof payload.accountId === 'string' && !(await liveness.accountActive(payload.accountId))) return false;
  return true;
}

export function introspectionResponse(issuer: string, token: FoundToken): Record<string, unknown> {
  const p = token.payload;
  const extra = (p.extra ?? {}) as Record<string, unknown>;
  const body: Record<string, unknown> = {
    active: true,
    scope: p.scope || undefined,
    client_id: p.clientId,
    sub: subjectOf(p),
    aud: p.aud,
    iss: issuer,
    exp: p.exp,
    iat: p.iat,
    jti: token.kind === 'RefreshToken' ? undefined : token.id,
    token_type: token.kind === 'RefreshToken' ? undefined : p.jkt ? 'DPoP' : 'Bearer',
    auth_time: extra.auth_time,
    acr: extra.acr,
    amr: extra.amr,
    [ACTOR_CLAIM]: actorOf(p),
    cnf: p.jkt ? { jkt: p.jkt } : undefined,
  };
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined));
}

export function introspectionEndpoint(deps: IntrospectionDeps): Middleware {
  return tokenEndpoint(deps.issuer, INTROSPECTION_PATH, deps.callers, async (ctx, { caller, value, hint }) => {
    // A public client proves nothing by naming itself: anyone holding a leaked token and the
    // public client_id could read it here. /token still takes `none` (PKCE protects codes).
    if (caller.kind === 'client' && caller.client.clientAuthMethod === 'none') {
      throw new EndpointError(401, 'invalid_client', 'public clients cannot introspect tokens');
    }
    const token = await deps.tokens.find(value, hint);
    ctx.status = 200;
    const subjects: SubjectLookup = (jti) => deps.tokens.findByJti(jti);
    ctx.body = token && mayIntrospect(caller, token) && (await isActive(token, deps.liveness, subjects)) ? introspectionResponse(deps.issuer, token) : { active: false };
  });
}
