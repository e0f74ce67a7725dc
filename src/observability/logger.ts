/**
 * Structured JSON logging (pino). Anything that could carry a credential or personal data is
 * redacted by path before it is written, whichever code path logs it.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

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
  'code',
  '*.code',
  'email',
  '*.email',
  'cookie',
  '*.cookie',
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'veil' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
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
