/**
 * The one place where Veil's internal failures become protocol errors. oidc-provider renders
 * anything that is an OIDCProviderError with `expose` set as the OAuth JSON error (or the
 * HTML error page for browsers); everything else becomes a generic 500.
 */
import { errors } from 'oidc-provider';
import { StoreUnavailableError } from '../store/errors.js';

/** 503 `temporarily_unavailable`: a backing store (PostgreSQL or Redis) is down. */
export class ServiceUnavailable extends errors.TemporarilyUnavailable {
  constructor() {
    super('the service is temporarily unavailable, try again shortly');
    this.status = 503;
    this.statusCode = 503;
    // Safe to show: it names no internals, and the caller needs to know to retry.
    this.expose = true;
  }
}

export function isStoreFailure(err: unknown): boolean {
  return err instanceof StoreUnavailableError;
}

/** Translates an error thrown below the protocol layer; protocol errors pass through. */
export function toProtocolError(err: unknown): unknown {
  if (err instanceof errors.OIDCProviderError) return err;
  if (isStoreFailure(err)) return new ServiceUnavailable();
  return err;
}
