/**
 * RFC 7009 token revocation for everything Veil issues. Revoking an access token (sealed,
 * inner JWS or opaque) deletes its record and blacklists its `jti` until it would have expired;
 * revoking a refresh token ends its whole grant (every access token of it is inactive at once).
 * Only the client a token was issued to may revoke it; unknown tokens and other clients' tokens
 * are a 200 that changes nothing, as the RFC says.
 */
import type { Middleware } from 'koa';
import type { ShortLivedStore } from '../store/short-lived-store.js';
import type { TokenStatuses } from '../status-list/token-statuses.js';
import type { GrantRevocation } from './grant-revocation.js';
import { EndpointError, REVOCATION_PATH, tokenEndpoint, type CallerAuthenticator } from './token-endpoints.js';
import type { FoundToken, TokenLookup } from './token-lookup.js';

export interface RevocationDeps {
  issuer: string;
  callers: CallerAuthenticator;
  tokens: TokenLookup;
  store: ShortLivedStore;
  grants: GrantRevocation;
  /** Status lists: a revoked access token's bit (and those of tokens exchanged from it) set INVALID. */
  statuses?: Pick<TokenStatuses, 'revokeToken'> | undefined;
  /** Told about each revocation (audit, logs): never the token itself. */
  onRevoked?: (event: { kind: FoundToken['kind']; clientId: string; grantId?: string }) => void;
}

export async function revokeToken(deps: Pick<RevocationDeps, 'store' | 'grants' | 'statuses'>, token: FoundToken): Promise<void> {
  if (token.kind === 'RefreshToken') {
    if (token.payload.grantId) await deps.grants.revoke(token.payload.grantId);
    else await deps.store.destroy(token.kind, token.id);
    return;
  }
  await deps.store.destroy(token.kind, token.id);
  const remaining = (token.payload.exp ?? 0) - Math.floor(Date.now() / 1000);
  await deps.store.blacklist(token.id, remaining);
  await deps.statuses?.revokeToken(token.id, token.payload);
}

export function revocationEndpoint(deps: RevocationDeps): Middleware {
  return tokenEndpoint(deps.issuer, REVOCATION_PATH, deps.callers, async (ctx, { caller, value, hint }) => {
    if (caller.kind !== 'client') throw new EndpointError(401, 'invalid_client', 'resource servers cannot revoke tokens; the client that holds a token revokes it');
    const token = await deps.tokens.find(value, hint);
    // Another client's token is answered like an unknown one (RFC 7009 §2.2: 200), and left
    // alone: the answer must not tell whether the value is a live token.
    if (token && token.payload.clientId === caller.client.clientId) {
      await revokeToken(deps, token);
      deps.onRevoked?.({ kind: token.kind, clientId: caller.client.clientId, grantId: token.payload.grantId });
    }
    ctx.status = 200;
    ctx.body = '';
  });
}
