/**
 * Request body parsing with hard limits. Parser failures (malformed, too large, wrong
 * encoding) become one typed error so each listener maps it to its own error format.
 */
import { bodyParser } from '@koa/bodyparser';
import { VeilError } from '../errors/veil-error.js';

/** A body the parser refused: 400 `invalid_input`, 413 `payload_too_large` or 415 `unsupported_media_type`. */
export class BadRequestBody extends VeilError {
  constructor(status: 400 | 413 | 415, message: string) {
    super(status === 413 ? 'payload_too_large' : status === 415 ? 'unsupported_media_type' : 'invalid_input', message);
  }
}

function onError(err: Error): never {
  const status = (err as { status?: number }).status;
  if (status === 413) throw new BadRequestBody(413, 'request body too large');
  if (status === 415) throw new BadRequestBody(415, 'unsupported content type');
  throw new BadRequestBody(400, 'malformed request body');
}

export const formBody = (limit = '16kb') => bodyParser({ enableTypes: ['form'], formLimit: limit, encoding: 'utf-8', onError });

export const jsonBody = (limit = '64kb') => bodyParser({ enableTypes: ['json'], jsonLimit: limit, jsonStrict: true, onError });
