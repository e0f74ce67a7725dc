/**
 * The OAuth edge of the error model. A VeilError raised under oidc-provider (in the adapter, in
 * findAccount, in the resource-indicator hooks) becomes the oidc-provider error the table names,
 * which oidc-provider renders as OAuth JSON (or the HTML error page for browsers); Veil's own
 * endpoints (introspection, revocation) render the same table with `sendOAuthError`. Protocol
 * errors pass through; anything unforeseen is a 500 `server_error` with a generic message.
 */
import type { Context } from 'koa';
import { errors } from 'oidc-provider';
import { GENERIC_MESSAGE, toVeilError, VeilError, type VeilErrorCode } from '../errors/veil-error.js';

type ProtocolError = InstanceType<typeof errors.OIDCProviderError>;

const UNAVAILABLE = 'the service is temporarily unavailable, try again shortly';

/** 503 `temporarily_unavailable`: a backing store (PostgreSQL or Redis) is down. */
export class ServiceUnavailable extends errors.TemporarilyUnavailable {
  constructor(description = UNAVAILABLE) {
    super(description);
    this.status = 503;
    this.statusCode = 503;
    // Safe to show: it names no internals, and the caller needs to know to retry.
    this.expose = true;
  }
}

/** An `invalid_request` with the error's status (405, 413...) and message. */
const invalidRequest = (status?: number) => (e: VeilError) => new errors.InvalidRequest(e.safeMessage, status ?? e.status);

/** Each code's OAuth error; undefined: not the caller's doing, a 500 `server_error`. */
export const OAUTH_ERRORS: Record<VeilErrorCode, ((e: VeilError) => ProtocolError) | undefined> = {
  invalid_input: invalidRequest(),
  invalid_client_metadata: (e) => new errors.InvalidClientMetadata(e.safeMessage),
  unauthorized: (e) => Object.assign(new errors.InvalidClientAuth(), { error_description: e.safeMessage }),
  forbidden: invalidRequest(),
  not_found: invalidRequest(),
  method_not_allowed: invalidRequest(),
  conflict: invalidRequest(),
  payload_too_large: invalidRequest(),
  // The endpoints check the media type before parsing; a parser's refusal of it is a plain 400.
  unsupported_media_type: invalidRequest(400),
  misdirected_request: invalidRequest(),
  grant_revoked: () => new errors.InvalidGrant(),
  store_unavailable: () => new ServiceUnavailable(),
  key_unavailable: () => new ServiceUnavailable("the resource server's encryption key is unavailable, try again shortly"),
  unreachable: () => new ServiceUnavailable(),
  key_error: undefined,
  master_key_error: undefined,
  invalid_config: undefined,
  migration_failed: undefined,
  internal: undefined,
};

export function isStoreFailure(err: unknown): boolean {
  return err instanceof VeilError && err.code === 'store_unavailable';
}

/**
 * For code running under oidc-provider: a VeilError as the protocol error the table names.
 * Protocol errors, and errors no row maps (bugs: oidc-provider answers 500 and emits
 * `server_error`), are returned unchanged.
 */
export function toProtocolError(err: unknown): unknown {
  if (!(err instanceof VeilError)) return err;
  const make = OAUTH_ERRORS[err.code];
  return make ? make(err) : err;
}

export interface OAuthErrorResponse {
  status: number;
  body: { error: string; error_description: string };
  /** Not the caller's doing: log it. */
  unexpected: boolean;
}

/** The OAuth JSON answer (RFC 6749 §5.2) for anything thrown. */
export function renderOAuthError(err: unknown): OAuthErrorResponse {
  const protocol = err instanceof errors.OIDCProviderError ? err : toProtocolError(toVeilError(err));
  if (protocol instanceof errors.OIDCProviderError && protocol.expose) {
    return { status: protocol.statusCode, body: { error: protocol.message, error_description: protocol.error_description ?? protocol.message }, unexpected: false };
  }
  return { status: 500, body: { error: 'server_error', error_description: GENERIC_MESSAGE }, unexpected: true };
}

/** Writes an OAuth JSON error at Veil's own endpoints; an unexpected one goes to the app's error listener (the log). */
export function sendOAuthError(ctx: Context, err: unknown): void {
  const { status, body, unexpected } = renderOAuthError(err);
  if (unexpected) ctx.app.emit('error', err, ctx);
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  // As oidc-provider does at /token: a challenge when the client tried the Authorization header.
  if (status === 401 && ctx.headers.authorization !== undefined) ctx.set('WWW-Authenticate', 'Basic realm="veil"');
  ctx.body = body;
}
