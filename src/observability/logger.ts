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

/**
 * What of an error may be logged: its name, code and message, plus its cause's. Prisma's
 * messages are left out: they can echo the arguments of the query that failed (an email, a
 * client secret inside metadata), which redaction by path cannot see.
 */
export function errorFields(err: unknown): Record<string, unknown> {
  const e = (err ?? {}) as { name?: string; code?: unknown; message?: string; cause?: unknown };
  const name = e.name ?? 'Error';
  const fields: Record<string, unknown> = { name };
  if (e.code !== undefined) fields.code = e.code;
  if (!name.startsWith('Prisma')) fields.message = e.message;
  if (e.cause !== undefined && e.cause !== err) fields.cause = errorFields(e.cause);
  return fields;
}
