/**
 * RFC 7662 token introspection for everything Veil issues: sealed access tokens (the JWE a
 * client holds, or the inner JWS a resource server holds after decrypting), opaque access
 * tokens and refresh tokens. A resource server learns only about tokens for its own audience,
 * a confidential client only about its own tokens and, with token exchange, the access tokens
 * of the APIs it fronts (`exchange_from`), a public client nothing (401); everything else, like
 * anything revoked, expired, unknown or malformed, is `{ "active": false }`. A token made by
 * token exchange is active only while the token it was exchanged from is. The `sub` of a token
 * for a pairwise API is that API's value (pairwise-subjects.ts), as in the token itself. Asked
 * with `Accept: application/token-introspection+jwt`, the answer is a JWT (introspection-jwt.ts).
 */
import type { Middleware } from 'koa';
import { exchangeSources } from '../clients/token-exchange-policy.js';
import type { ResourceServerRegistry } from '../resource-registry/registry.js';
import type { GrantRepository } from '../store/grants.js';
import { INTROSPECTION_JWT_MEDIA_TYPE, wantsJwtAnswer, type IntrospectionJwt } from './introspection-jwt.js';
import type { PairwiseSubjects } from './pairwise-subjects.js';
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
  /** The token's API, for its subject mode. */
  registry: Pick<ResourceServerRegistry, 'find'>;
  subjects: PairwiseSubjects;
  /** RFC 9701 answers (signed with the current access-token key); JSON only without it. */
  jwtAnswers?: IntrospectionJwt | undefined;
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

/** The RFC 7662 answer for a live token; `sub` as its audience sees it (the stored subject when not given). */
export function introspectionResponse(issuer: string, token: FoundToken, sub: unknown = subjectOf(token.payload)): Record<string, unknown> {
  const p = token.payload;
  const extra = (p.extra ?? {}) as Record<string, unknown>;
  const body: Record<string, unknown> = {
    active: true,
    scope: p.scope || undefined,
    client_id: p.clientId,
    sub,
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

/**
 * The `sub` the token's API sees (its pairwise value when it is pairwise). A token of no API can
 * only be its own client's to introspect (mayIntrospect): the `sub` that client's ID tokens carry.
 */
async function audienceSubject(token: FoundToken, caller: Caller, deps: IntrospectionDeps): Promise<unknown> {
  const aud = token.payload.aud;
  const rs = token.kind !== 'RefreshToken' && typeof aud === 'string' ? await deps.registry.find(aud) : undefined;
  if (!rs && caller.kind === 'client') return deps.subjects.subjectForClient(token.payload, caller.client);
  return deps.subjects.subjectFor(token.payload, rs);
}

export function introspectionEndpoint(deps: IntrospectionDeps): Middleware {
  return tokenEndpoint(deps.issuer, INTROSPECTION_PATH, deps.callers, async (ctx, { caller, value, hint }) => {
    // A public client proves nothing by naming itself: anyone holding a leaked token and the
    // public client_id could read it here. /token still takes `none` (PKCE protects codes).
    if (caller.kind === 'client' && caller.client.clientAuthMethod === 'none') {
      throw new EndpointError(401, 'invalid_client', 'public clients cannot introspect tokens');
    }
    const token = await deps.tokens.find(value, hint);
    const subjects: SubjectLookup = (jti) => deps.tokens.findByJti(jti);
    const live = token && mayIntrospect(caller, token) && (await isActive(token, deps.liveness, subjects));
    const body = live ? introspectionResponse(deps.issuer, token, await audienceSubject(token, caller, deps)) : { active: false };
    if (deps.jwtAnswers && wantsJwtAnswer(ctx)) {
      const jwt = await deps.jwtAnswers.answer(body, caller);
      ctx.status = 200;
      ctx.type = INTROSPECTION_JWT_MEDIA_TYPE;
      ctx.body = jwt;
      return;
    }
    ctx.status = 200;
    ctx.body = body;
  });
}
