/**
 * The admin API's edge of the error model: every failure as `{error, error_description}`
 * (docs/ADMIN_API.md, "Errors"). The table says which `error` each Veil code answers; the
 * status is the error's own unless the table fixes one; 5xx answers never carry the message.
 */
import type { Context, Next } from 'koa';
import { GENERIC_MESSAGE, toVeilError, type VeilErrorCode } from '../errors/veil-error.js';
import type { ErrorBody } from './contract.js';
import { errorFields, type Logger } from '../observability/logger.js';

interface AdminErrorRow {
  error: string;
  /** Fixed status, when not the error's own. */
  status?: number;
  /** Fixed description, shown instead of the message. */
  description?: string;
}

const SERVER_ERROR: AdminErrorRow = { error: 'server_error', status: 500, description: GENERIC_MESSAGE };
const UNAVAILABLE: AdminErrorRow = { error: 'temporarily_unavailable', status: 503, description: 'a backing store is unavailable' };

export const ADMIN_ERRORS: Record<VeilErrorCode, AdminErrorRow> = {
  invalid_input: { error: 'invalid_request' },
  invalid_client_metadata: { error: 'invalid_client_metadata' },
  unauthorized: { error: 'unauthorized' },
  forbidden: { error: 'forbidden' },
  not_found: { error: 'not_found' },
  method_not_allowed: { error: 'invalid_request' },
  conflict: { error: 'conflict' },
  payload_too_large: { error: 'invalid_request' },
  unsupported_media_type: { error: 'unsupported_media_type' },
  misdirected_request: { error: 'misdirected_request' },
  grant_revoked: { error: 'conflict', status: 409 },
  store_unavailable: UNAVAILABLE,
  key_unavailable: { error: 'temporarily_unavailable', status: 503, description: "the resource server's encryption key is unavailable" },
  unreachable: { error: 'temporarily_unavailable', status: 503, description: 'a remote service did not answer' },
  // A refused key operation or an unusable key file: the admin asked for it, so say why.
  key_error: { error: 'invalid_request', status: 400 },
  master_key_error: SERVER_ERROR,
  invalid_config: SERVER_ERROR,
  migration_failed: SERVER_ERROR,
  internal: SERVER_ERROR,
};

export interface AdminErrorResponse {
  status: number;
  body: ErrorBody;
}

/** The admin API's answer for anything thrown. */
export function renderAdminError(err: unknown): AdminErrorResponse {
  const e = toVeilError(err);
  const row = ADMIN_ERRORS[e.code];
  const status = row.status ?? e.status;
  if (status >= 500) return { status, body: { error: row.error, error_description: row.description ?? GENERIC_MESSAGE } };
  return { status, body: { error: row.error, error_description: row.description ?? e.safeMessage } };
}

/** The admin app's error middleware: renders, and logs every 5xx. An unmatched route is a 404. */
export function adminErrors(logger: Logger) {
  return async (ctx: Context, next: Next): Promise<void> => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        ctx.status = 404;
        ctx.body = { error: 'not_found', error_description: 'unknown route' } satisfies ErrorBody;
      }
    } catch (err) {
      const { status, body } = renderAdminError(err);
      if (status >= 500) logger.error({ err: errorFields(err), path: ctx.path }, 'admin request failed');
      ctx.status = status;
      ctx.body = body;
    }
  };
}
