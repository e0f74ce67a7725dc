/** The one place Veil's own token endpoints turn a failure into an OAuth JSON error. */
import { StoreUnavailableError } from '../store/errors.js';
import { EndpointError } from './token-endpoints.js';

export function toEndpointError(err: unknown): EndpointError {
  if (err instanceof EndpointError) return err;
  if (err instanceof StoreUnavailableError) return new EndpointError(503, 'temporarily_unavailable', 'the service is temporarily unavailable, try again shortly');
  const status = (err as { statusCode?: number; status?: number }).statusCode ?? (err as { status?: number }).status;
  const oauth = err as { error?: string; error_description?: string; expose?: boolean };
  // oidc-provider's own errors (from Client.find, say) carry their OAuth code.
  if (oauth.expose && typeof oauth.error === 'string' && status && status < 500) {
    return new EndpointError(status, oauth.error, oauth.error_description ?? oauth.error);
  }
  throw err;
}
