/**
 * Veil's one error model. Domain code throws a VeilError (or a subclass named for the failure)
 * carrying a code; each edge renders it with its own table: OAuth JSON (`oidc/errors.ts`), the
 * HTML error page (`interactions/error-page.ts`), admin API JSON (`admin/errors.ts`) and the CLI
 * (`cli/errors.ts`). Nothing else translates errors.
 */

/** Every code, with its HTTP status and whether its messages may be shown by default. */
export const VEIL_ERROR_CODES = {
  /** The caller sent something malformed or not allowed (a body, a parameter, an admin's input). */
  invalid_input: { status: 400, expose: true, summary: 'the request is invalid' },
  /** Client metadata refused by oidc-provider's schema or Veil's client rules. */
  invalid_client_metadata: { status: 400, expose: true, summary: 'the client metadata is invalid' },
  /** Missing or wrong credentials. */
  unauthorized: { status: 401, expose: true, summary: 'authentication failed' },
  forbidden: { status: 403, expose: true, summary: 'the request is refused' },
  not_found: { status: 404, expose: true, summary: 'not found' },
  method_not_allowed: { status: 405, expose: true, summary: 'method not allowed' },
  /** It exists already (a unique email, identifier, id). */
  conflict: { status: 409, expose: true, summary: 'already exists' },
  payload_too_large: { status: 413, expose: true, summary: 'request body too large' },
  unsupported_media_type: { status: 415, expose: true, summary: 'unsupported content type' },
  /** The Host is not one this listener serves. */
  misdirected_request: { status: 421, expose: true, summary: 'this Host is not served here' },
  /** A write for a grant that was revoked meanwhile: the request that made it must fail. */
  grant_revoked: { status: 400, expose: true, summary: 'the grant was revoked' },
  /** PostgreSQL or Redis cannot be reached; the message names the store, so it is not shown. */
  store_unavailable: { status: 503, expose: false, summary: 'the service is temporarily unavailable' },
  /** A resource server's encryption key cannot be had now (its jwks_uri is down, say). */
  key_unavailable: { status: 503, expose: false, summary: "the resource server's encryption key is unavailable" },
  /** Another service did not answer (a remote key set; the admin API, for the CLI). */
  unreachable: { status: 503, expose: false, summary: 'a remote service did not answer' },
  /** A signing-key file is unusable, or a key-ring operation was refused (the message says which). */
  key_error: { status: 400, expose: true, summary: 'the key operation failed' },
  /** The master key is missing or does not open what was sealed under it. */
  master_key_error: { status: 500, expose: false, summary: 'an unexpected error occurred' },
  /** The configuration is invalid (start-up, CLI). */
  invalid_config: { status: 500, expose: false, summary: 'an unexpected error occurred' },
  /** A database migration failed or was tampered with. */
  migration_failed: { status: 500, expose: false, summary: 'an unexpected error occurred' },
  /** Anything not foreseen: a bug. Never shown; logged. */
  internal: { status: 500, expose: false, summary: 'an unexpected error occurred' },
} as const satisfies Record<string, { status: number; expose: boolean; summary: string }>;

export type VeilErrorCode = keyof typeof VEIL_ERROR_CODES;
export const ERROR_CODES = Object.keys(VEIL_ERROR_CODES) as VeilErrorCode[];

/** What callers see when an error's own message may not be shown. */
export const GENERIC_MESSAGE = 'an unexpected error occurred';

export interface VeilErrorOptions {
  /** Overrides the code's status (a 413 `invalid_input`, say). */
  status?: number;
  /** Overrides whether the message may be shown. */
  expose?: boolean;
  cause?: unknown;
}

export class VeilError extends Error {
  readonly code: VeilErrorCode;
  /** The HTTP status an edge answers unless its table says otherwise. */
  readonly status: number;
  /** Whether `message` may be shown to the caller; when not, edges show the code's summary. */
  readonly expose: boolean;

  constructor(code: VeilErrorCode, message: string, options: VeilErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = options.status ?? VEIL_ERROR_CODES[code].status;
    this.expose = options.expose ?? VEIL_ERROR_CODES[code].expose;
  }

  /** The text a caller may see. */
  get safeMessage(): string {
    return this.expose ? this.message : VEIL_ERROR_CODES[this.code].summary;
  }
}

const CODE_FOR_STATUS: Record<number, VeilErrorCode> = {
  400: 'invalid_input',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  421: 'misdirected_request',
  503: 'store_unavailable',
};

/** The code an HTTP error status stands for (another service's answer, say). */
export function codeForStatus(status: number): VeilErrorCode {
  return CODE_FOR_STATUS[status] ?? (status >= 400 && status < 500 ? 'invalid_input' : 'internal');
}

/**
 * Any thrown value as a VeilError. Errors of the libraries under Veil that say they may be shown
 * (Koa's and @koa/router's http-errors, oidc-provider's 4xx, its 503 for a store outage) keep
 * their status and message; anything else becomes `internal` with a generic message, the
 * original kept as `cause` for the log.
 */
export function toVeilError(err: unknown): VeilError {
  if (err instanceof VeilError) return err;
  const e = (err ?? {}) as { status?: unknown; statusCode?: unknown; expose?: unknown; message?: unknown };
  const status = typeof e.statusCode === 'number' ? e.statusCode : typeof e.status === 'number' ? e.status : undefined;
  if (e.expose === true && status !== undefined && (status < 500 || status === 503)) {
    const code = codeForStatus(status);
    return new VeilError(code, typeof e.message === 'string' ? e.message : VEIL_ERROR_CODES[code].summary, { status, cause: err, expose: status < 500 });
  }
  return new VeilError('internal', GENERIC_MESSAGE, { cause: err });
}

/** Whether an error was not foreseen (a bug): edges log these. */
export function isUnexpected(err: VeilError): boolean {
  return err.code === 'internal';
}
