/**
 * `GET /status-lists/<id>`: the Status List Token a referenced token's `uri` names
 * (draft-ietf-oauth-status-list §8), as `application/statuslist+jwt`. Public: the lists say
 * nothing about who holds which index, so no authentication, and CORS open to any origin (the
 * draft asks for it, for browser-based verifiers). Cacheable for what is left of the rendered
 * token's `ttl`, with an ETag. Errors in Veil's OAuth JSON format: 404 for an id that is no
 * list (checked by its form before any store look-up), 405 for other methods, 501 for the
 * draft's historical `time` query, 503 when the store is down; never a 500 for a caller's input.
 */
import type { Context, Middleware, Next } from 'koa';
import { VeilError } from '../errors/veil-error.js';
import { sendOAuthError } from '../oidc/errors.js';
import { STATUS_LIST_MEDIA_TYPE, STATUS_LIST_PATH, isListId } from './options.js';
import type { StatusListRenderer } from './renderer.js';

const PREFIX = `${STATUS_LIST_PATH}/`;

export function statusListRoute(renderer: Pick<StatusListRenderer, 'get'>): Middleware {
  return async (ctx: Context, next: Next) => {
    if (!ctx.path.startsWith(PREFIX)) {
      await next();
      return;
    }
    try {
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
        ctx.set('Allow', 'GET, HEAD');
        throw new VeilError('method_not_allowed', 'status lists answer GET and HEAD only');
      }
      const id = ctx.path.slice(PREFIX.length);
      if (!isListId(id)) throw new VeilError('not_found', 'unknown status list');
      if (ctx.query.time !== undefined) {
        // §8.4: a server without historical resolution says so with 501.
        ctx.status = 501;
        ctx.set('Cache-Control', 'no-store');
        ctx.body = { error: 'invalid_request', error_description: 'historical resolution (the time parameter) is not supported' };
        return;
      }
      const rendered = await renderer.get(id);
      if (!rendered) throw new VeilError('not_found', 'unknown status list');
      const maxAge = Math.max(0, Math.floor((rendered.freshUntil - Date.now()) / 1000));
      ctx.status = 200;
      ctx.type = STATUS_LIST_MEDIA_TYPE;
      // What is left of the render's ttl, not a full ttl: a cache in between must not add its own
      // ttl on top of the time the token already spent in this process's cache.
      ctx.set('Cache-Control', `public, max-age=${maxAge}`);
      ctx.set('ETag', rendered.etag);
      ctx.set('Access-Control-Allow-Origin', '*');
      if (ctx.fresh) {
        ctx.status = 304;
        return;
      }
      ctx.body = rendered.token;
    } catch (err) {
      sendOAuthError(ctx, err);
    }
  };
}
