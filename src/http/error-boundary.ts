/**
 * The public app's last resort: anything that escapes every route's own error handling is
 * answered in the protocol's format here, not by Koa's default handler (a text/plain body).
 *
 * oidc-provider wraps each route in `ensureSessionSave`, outside the route's error handler: when
 * a route fails because a store failed under it (its error handler has already answered: the
 * error page, or the error redirect to the client), `ensureSessionSave` tries once more to save
 * the session it still holds as changed, and that second failure would leave the request
 * unhandled. So: the HTML error page on the browser routes (oidc-provider's authorization, resume,
 * end-session and device pages, and Veil's own pages), the OAuth JSON error everywhere else.
 */
import type { Context, Next } from 'koa';
import { sendErrorPage } from '../interactions/error-page.js';
import type { Views } from '../interactions/views.js';
import type { Logger } from '../observability/logger.js';
import { sendOAuthError } from '../oidc/errors.js';

/** oidc-provider's routes a browser is sent to (they render pages, not JSON). */
const BROWSER_ROUTES = new Set(['authorization', 'resume', 'end_session', 'end_session_confirm', 'end_session_success', 'code_verification', 'device_resume']);

function isBrowserRoute(ctx: Context): boolean {
  const route = (ctx as Context & { oidc?: { route?: string } }).oidc?.route;
  if (route !== undefined && BROWSER_ROUTES.has(route)) return true;
  return ctx.path.startsWith('/interaction/') || ctx.path === '/account' || ctx.path.startsWith('/account/');
}

export function errorBoundary(views: Views, logger: Logger) {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
    } catch (err) {
      // Too late to answer (the response has started): Koa's handler only ends the connection.
      if (ctx.headerSent || !ctx.writable) throw err;
      // A redirect prepared before the failure must not go out with the error.
      ctx.remove('Location');
      if (isBrowserRoute(ctx)) sendErrorPage(ctx, views, logger, err, 'request failed', 'Return to the application and start again.');
      else sendOAuthError(ctx, err);
    }
  };
}
