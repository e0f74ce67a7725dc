/** Unknown routes answer in the protocol's format: OAuth-style JSON, or the error page for browsers. */
import type { Context, Next } from 'koa';
import type { Views } from '../interactions/views.js';

export function notFound(views: Views) {
  return async (ctx: Context, next: Next) => {
    await next();
    if (ctx.status !== 404 || (ctx.body !== undefined && ctx.body !== null)) return;
    const description = `unrecognized route or not allowed method (${ctx.method} on ${ctx.path.slice(0, 200)})`;
    if (ctx.accepts('json', 'html') === 'html') {
      views.send(
        ctx,
        'error',
        'Page not found',
        {
          status: 404,
          error: 'not_found',
          description: 'There is no page at this address.',
          hint: 'Check the address, or return to the application and start again.',
        },
        404,
      );
      return;
    }
    ctx.status = 404;
    ctx.body = { error: 'invalid_request', error_description: description };
  };
}
