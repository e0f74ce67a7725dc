/**
 * Koa middleware: rejects requests without a valid access token, else sets `ctx.state.accessToken`.
 * Typed structurally (the few members of Koa's context it touches) so the SDK needs neither koa
 * nor @types/koa; a Koa or @koa/router context fits these types as it is.
 */
import { authenticateBearer, normalizeOrigin, normalizeScopes, type RequireAccessTokenOptions } from './bearer.js';
import type { AccessTokenVerifier, VerifiedAccessToken } from './verifier.js';

export interface AccessTokenState {
  accessToken: VerifiedAccessToken;
}

/** The part of a Koa context the middleware reads and writes. */
export interface KoaContextLike {
  get(field: string): string;
  set(fields: Record<string, string>): void;
  status: number;
  body: unknown;
  state: Partial<AccessTokenState>;
  /** For DPoP: the method, the path and query as received, and the URL Koa derives (scheme and Host). */
  method: string;
  originalUrl: string;
  href: string;
}

export type KoaMiddleware = (ctx: KoaContextLike, next: () => Promise<unknown>) => Promise<void>;

export function requireAccessToken(verifier: AccessTokenVerifier, options: RequireAccessTokenOptions = {}): KoaMiddleware {
  const scopes = normalizeScopes(options.scopes);
  const origin = normalizeOrigin(options.publicOrigin);
  return async (ctx, next) => {
    const outcome = await authenticateBearer(verifier, ctx.get('authorization') || undefined, scopes, {
      method: ctx.method,
      // originalUrl: the path before any router mounted below it rewrote ctx.url.
      url: origin ? `${origin}${ctx.originalUrl}` : ctx.href,
      dpop: ctx.get('dpop') || undefined,
    });
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
