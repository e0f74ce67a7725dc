/**
 * Cache headers for the JWKS: relying parties and resource servers may keep it for a while,
 * but not longer than it takes Veil to pick up a rotation, and must revalidate after. A key
 * that starts signing was published one rotation earlier, so a cached copy is never missing it.
 */
import type { Middleware } from 'koa';

export function jwksCacheHeaders(maxAgeSeconds: number): Middleware {
  return async (ctx, next) => {
    await next();
    if (ctx.path === '/jwks' && ctx.status === 200) ctx.set('Cache-Control', `public, max-age=${maxAgeSeconds}, must-revalidate`);
  };
}
