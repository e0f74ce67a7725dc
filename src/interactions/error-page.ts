/**
 * The HTML edge of the error model: every failure of Veil's own pages (interactions, connected
 * apps) as the error page. A caller's mistake shows its message with the page's hint; a store or
 * key outage is 503 "Temporarily unavailable"; anything else is logged and shown without details.
 */
import type { Context } from 'koa';
import { errors } from 'oidc-provider';
import { toVeilError, type VeilErrorCode } from '../errors/veil-error.js';
import { errorFields, type Logger } from '../observability/logger.js';
import type { Views } from './views.js';

export interface ErrorPage {
  status: number;
  title: string;
  error: string;
  description: string;
  /** What the user can do; undefined: the page's own hint for a mistake on the caller's side. */
  hint: string | undefined;
  /** Not the caller's doing: log it. */
  logged: boolean;
}

const RETRY = 'Please try again in a moment.';
const RESTART = 'Return to the application and start again.';

const FAILED: Omit<ErrorPage, 'status'> = { title: 'Something went wrong', error: 'server_error', description: 'An unexpected error occurred.', hint: RETRY, logged: true };
const UNAVAILABLE: Omit<ErrorPage, 'status'> = {
  title: 'Temporarily unavailable',
  error: 'temporarily_unavailable',
  description: 'The service is temporarily unavailable.',
  hint: RETRY,
  logged: true,
};

/** Each code's page: `error` for a caller's mistake (status and message its own), or a fixed 5xx page. */
export const HTML_ERRORS: Record<VeilErrorCode, { error: string } | { page: Omit<ErrorPage, 'status'>; status: number }> = {
  invalid_input: { error: 'invalid_request' },
  invalid_client_metadata: { error: 'invalid_client_metadata' },
  unauthorized: { error: 'invalid_request' },
  forbidden: { error: 'invalid_request' },
  not_found: { error: 'invalid_request' },
  method_not_allowed: { error: 'invalid_request' },
  conflict: { error: 'invalid_request' },
  payload_too_large: { error: 'invalid_request' },
  unsupported_media_type: { error: 'invalid_request' },
  misdirected_request: { error: 'invalid_request' },
  grant_revoked: { error: 'invalid_grant' },
  store_unavailable: { page: UNAVAILABLE, status: 503 },
  key_unavailable: { page: UNAVAILABLE, status: 503 },
  unreachable: { page: UNAVAILABLE, status: 503 },
  key_error: { page: FAILED, status: 500 },
  master_key_error: { page: FAILED, status: 500 },
  invalid_config: { page: FAILED, status: 500 },
  migration_failed: { page: FAILED, status: 500 },
  internal: { page: FAILED, status: 500 },
};

/** The page for anything thrown. oidc-provider's own 4xx errors are shown as it names them. */
export function renderErrorPage(err: unknown): ErrorPage {
  if (err instanceof errors.SessionNotFound) {
    return {
      status: 400,
      title: 'Sign-in expired',
      error: 'invalid_request',
      description: 'This sign-in request has expired or was already completed.',
      hint: RESTART,
      logged: false,
    };
  }
  if (err instanceof errors.OIDCProviderError && err.expose && err.statusCode < 500) {
    return { status: err.statusCode, title: 'Something went wrong', error: err.message, description: err.error_description ?? err.message, hint: RESTART, logged: false };
  }
  const e = toVeilError(err);
  const row = HTML_ERRORS[e.code];
  if ('page' in row) return { ...row.page, status: row.status };
  return { status: e.status, title: 'Something went wrong', error: row.error, description: e.safeMessage, hint: undefined, logged: false };
}

/** Renders the error page; `hint` is the page's advice for a mistake on the caller's side. */
export function sendErrorPage(ctx: Context, views: Views, logger: Logger, err: unknown, what: string, hint: string): void {
  const page = renderErrorPage(err);
  if (page.logged) logger.error({ err: errorFields(err), path: ctx.path }, what);
  views.send(ctx, 'error', page.title, { status: page.status, error: page.error, description: page.description, hint: page.hint ?? hint }, page.status);
}
