/**
 * RFC 7662 token introspection for everything Veil issues: sealed access tokens (the JWE a
 * client holds, or the inner JWS a resource server holds after decrypting), opaque access
 * tokens and refresh tokens. A resource server learns only about tokens for its own audience,
 * a confidential client only about its own tokens, a public client nothing (401); everything else, like anything revoked, expired,
 * unknown or malformed, is `{ "active": false }`.
 */
import type { Middleware } from 'koa';
import type { GrantRepository } from '../store/grants.js';
import { EndpointError, INTROSPECTION_PATH, tokenEndpoint, type Caller, type CallerAuthenticator } from './token-endpoints.js';
import type { FoundToken, TokenLookup } from './token-lookup.js';

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
  return token.payload.clientId === caller.client.clientId;
}

/**
 * Whether the token is live: not revoked, not expired, not consumed, its grant still stands
 * (PostgreSQL is the authority), its client still exists and its user is not disabled.
 */
export async function isActive(token: FoundToken, liveness: Liveness): Promise<boolean> {
  const { payload } = token;
  if (token.revoked || payload.consumed) return false;
  if (typeof payload.exp !== 'number' || payload.exp <= Math.floor(Date.now() / 1000)) return false;
  if (payload.grantId) {
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
    sub: p.accountId ?? p.clientId,
    aud: p.aud,
    iss: issuer,
    exp: p.exp,
    iat: p.iat,
    jti: token.kind === 'RefreshToken' ? undefined : token.id,
    token_type: token.kind === 'RefreshToken' ? undefined : p.jkt ? 'DPoP' : 'Bearer',
    auth_time: extra.auth_time,
    acr: extra.acr,
    amr: extra.amr,
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
    ctx.body = token && mayIntrospect(caller, token) && (await isActive(token, deps.liveness)) ? introspectionResponse(deps.issuer, token) : { active: false };
  });
}
