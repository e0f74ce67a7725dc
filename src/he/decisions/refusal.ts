/**
 * The decision and aggregate endpoints' refusals, as OAuth JSON `{ error, error_description }`
 * with their status (RFC 6749 §5.2 names where one fits, RFC 6750's `invalid_token`, and
 * `slow_down` with Retry-After for a spent budget or rate). Messages never carry a value.
 */
import type { Context } from 'koa';
import { sendOAuthError } from '../../oidc/errors.js';

export type RefusalError = 'invalid_request' | 'invalid_token' | 'access_denied' | 'slow_down' | 'temporarily_unavailable';

export class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly error: RefusalError,
    readonly description: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(description);
  }
}

export const badRequest = (why: string) => new Refusal(400, 'invalid_request', why);
export const badToken = (why = 'the token is not active, or carries no confidential claims') => new Refusal(400, 'invalid_token', why);
/** One answer for every policy the node may not use: whether it exists for another node is not said. */
export const noPolicy = () => new Refusal(403, 'access_denied', 'no such policy for this client');

/** Answers a Refusal; anything else through Veil's OAuth error edge (a bug: 500, logged). */
export function sendRefusal(ctx: Context, err: unknown): void {
  if (!(err instanceof Refusal)) {
    sendOAuthError(ctx, err);
    return;
  }
  ctx.status = err.status;
  ctx.set('Cache-Control', 'no-store');
  if (err.retryAfterSeconds !== undefined) ctx.set('Retry-After', String(Math.max(1, Math.ceil(err.retryAfterSeconds))));
  ctx.body = { error: err.error, error_description: err.description };
}
