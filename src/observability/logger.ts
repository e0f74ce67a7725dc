/**
 * Structured logging (pino): JSON for machines, one readable line per event when a person watches
 * a terminal. Anything that could carry a credential or personal data is redacted by path before
 * it is written, whichever code path logs it and whichever format it is written in.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/** `auto`: readable lines on a terminal outside CI and production, JSON everywhere else. */
export type LogFormat = 'auto' | 'json' | 'pretty';

export interface LogFormatContext {
  /** Whether the stream the lines go to is a terminal. */
  isTTY: boolean;
  production: boolean;
  /** Running under CI (the CI variable is set), whose logs machines read. */
  ci: boolean;
}

export function chooseLogFormat(format: LogFormat, context: LogFormatContext): 'json' | 'pretty' {
  if (format !== 'auto') return format;
  return context.isTTY && !context.production && !context.ci ? 'pretty' : 'json';
}

export const REDACT_PATHS = [
  'password',
  '*.password',
  'client_secret',
  '*.client_secret',
  'token',
  '*.token',
  'access_token',
  '*.access_token',
  'refresh_token',
  '*.refresh_token',
  'id_token',
  '*.id_token',
  // Authorization codes travel in requests only: redacted where a request's parameters are
  // logged, never as any field named `code` (an error's ECONNREFUSED must survive).
  'query.code',
  'body.code',
  'params.code',
  'req.query.code',
  'req.body.code',
  'req.params.code',
  'request.query.code',
  'request.body.code',
  'email',
  '*.email',
  'cookie',
  '*.cookie',
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  // URLs keep their path; the query (codes, state, tokens in error redirects) goes.
  'url',
  'req.url',
  'request.url',
  'redirect_uri',
  '*.redirect_uri',
];

/** Paths whose values are URLs: their query and fragment are cut, the rest kept for diagnosis. */
const URL_PATHS = new Set(['url', 'req.url', 'request.url', 'redirect_uri']);

function censor(value: unknown, path: string[]): unknown {
  const last = path.at(-1);
  if (typeof value === 'string' && last && (URL_PATHS.has(path.join('.')) || last === 'redirect_uri')) {
    const cut = value.search(/[?#]/);
    return cut === -1 ? value : `${value.slice(0, cut)}?[redacted]`;
  }
  return '[redacted]';
}

export interface LoggerOptions {
  format?: LogFormat;
  production?: boolean;
}

/**
 * Writes to `destination` (default: standard output). The pretty form is pino-pretty as a stream
 * in this thread, not a worker transport: redaction has already run on what it receives, and
 * lines are written synchronously, so a fatal line before process.exit is not lost.
 */
export function createLogger(level: string, destination?: pino.DestinationStream, options: LoggerOptions = {}): Logger {
  const isTTY = destination ? (destination as { isTTY?: boolean }).isTTY === true : process.stdout.isTTY === true;
  const format = chooseLogFormat(options.format ?? 'auto', { isTTY, production: options.production ?? false, ci: Boolean(process.env.CI) });
  const stream =
    format === 'pretty'
      ? pretty({
          destination: destination ?? 1,
          sync: true,
          colorize: isTTY,
          singleLine: true,
          translateTime: 'SYS:HH:MM:ss.l',
          ignore: 'pid,hostname,service',
        })
      : destination;
  return pino(
    {
      level,
      base: { service: 'veil' },
      redact: { paths: REDACT_PATHS, censor },
      // Errors are logged as errorFields() output. pino's own `err` serializer would fold that
      // plain object's cause into its message and drop the cause's code (ECONNREFUSED...); a raw
      // Error that slips through gets the same safe fields.
      serializers: { err: (value: unknown) => (value instanceof Error ? errorFields(value) : value) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    stream,
  );
}

/** Errors whose messages can echo the values of a failed query (an email, a sealed secret). */
const QUERY_ECHOING_ERRORS = /^(Prisma|DriverAdapter)/;
const MAX_CAUSE_DEPTH = 4;

/**
 * What of an error may be logged: its name, code and message, plus its causes'. Messages of
 * Prisma and driver-adapter errors are left out: they can echo the arguments of the query that
 * failed, which redaction by path cannot see. Cause chains are bounded (and may be cyclic).
 */
export function errorFields(err: unknown, depth = 0): Record<string, unknown> {
  const e = (err ?? {}) as { name?: string; code?: unknown; message?: string; cause?: unknown };
  const name = typeof e.name === 'string' ? e.name : 'Error';
  const fields: Record<string, unknown> = { name };
  if (e.code !== undefined) fields.code = e.code;
  if (!QUERY_ECHOING_ERRORS.test(name)) fields.message = e.message;
  if (e.cause !== undefined && e.cause !== err && depth < MAX_CAUSE_DEPTH) fields.cause = errorFields(e.cause, depth + 1);
  return fields;
}
