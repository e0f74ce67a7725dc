/** The one HTML answer for a page that failed on Veil's side: 503 when a store is down, else 500. */
import type { Context } from 'koa';
import { errorFields, type Logger } from '../observability/logger.js';
import { StoreUnavailableError } from '../store/errors.js';
import type { Views } from './views.js';

export function sendFailurePage(ctx: Context, views: Views, logger: Logger, err: unknown, what: string): void {
  const unavailable = err instanceof StoreUnavailableError || (err as { status?: number }).status === 503;
  logger.error({ err: errorFields(err), path: ctx.path }, what);
  views.send(
    ctx,
    'error',
    unavailable ? 'Temporarily unavailable' : 'Something went wrong',
    {
      status: unavailable ? 503 : 500,
      error: unavailable ? 'temporarily_unavailable' : 'server_error',
      description: unavailable ? 'The service is temporarily unavailable.' : 'An unexpected error occurred.',
      hint: 'Please try again in a moment.',
    },
    unavailable ? 503 : 500,
  );
}
