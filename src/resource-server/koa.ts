/** Koa middleware: rejects requests without a valid access token, else sets `ctx.state.accessToken`. */
import type { DefaultState, Middleware } from 'koa';
import { authenticateBearer, normalizeScopes, type RequireAccessTokenOptions } from './bearer.js';
import type { AccessTokenVerifier, VerifiedAccessToken } from './verifier.js';

export interface AccessTokenState extends DefaultState {
  accessToken: VerifiedAccessToken;
}

export function requireAccessToken(verifier: AccessTokenVerifier, options: RequireAccessTokenOptions = {}): Middleware<AccessTokenState> {
  const scopes = normalizeScopes(options.scopes);
  return async (ctx, next) => {
    const outcome = await authenticateBearer(verifier, ctx.get('authorization') || undefined, scopes);
    if (!outcome.ok) {
      ctx.status = outcome.status;
      ctx.set(outcome.headers);
      ctx.body = outcome.body;
      return;
    }
    ctx.state.accessToken = outcome.accessToken;
    await next();
  };
}
