/**
 * `GET /he/jwks` (named `he_jwks_uri` in the discovery document): the public halves of Veil's
 * Paillier keys as a JWK Set, `{ "keys": [{ "kty": "Paillier", "kid", "use": "he", "alg":
 * "Paillier-3072" | "Paillier-2048", "n" }] }` (g = n + 1; format in paillier.ts), the active key
 * first, retiring keys after it until their tokens have expired. Public and cacheable like
 * /jwks; other methods get 405 in Veil's OAuth JSON format.
 */
import type { Context, Middleware, Next } from 'koa';
import { VeilError } from '../errors/veil-error.js';
import { sendOAuthError } from '../oidc/errors.js';
import type { HeKeyRing } from './he-keys.js';

export const HE_JWKS_PATH = '/he/jwks';

export function heJwksRoute(keys: () => Pick<HeKeyRing, 'publicJwks'>, maxAgeSeconds: number): Middleware {
  return async (ctx: Context, next: Next) => {
    if (ctx.path !== HE_JWKS_PATH) {
      await next();
      return;
    }
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.set('Allow', 'GET, HEAD');
      sendOAuthError(ctx, new VeilError('method_not_allowed', 'the HE key set answers GET and HEAD only'));
      return;
    }
    ctx.status = 200;
    ctx.type = 'application/jwk-set+json';
    ctx.set('Cache-Control', `public, max-age=${maxAgeSeconds}`);
    ctx.set('Access-Control-Allow-Origin', '*');
    ctx.body = keys().publicJwks();
  };
}
