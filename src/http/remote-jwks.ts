/**
 * JWK Sets behind a `jwks_uri` (resource servers' encryption keys, clients' private_key_jwt
 * keys), fetched only through safe-fetch.ts. jose validates what comes back. Every failure after
 * the URL itself passed is the same generic error: a caller must not learn what the address
 * serves (the admin listener's /metrics, say) or whether a port is open.
 */
import { createLocalJWKSet, createRemoteJWKSet, customFetch, type FetchImplementation, type JSONWebKeySet, type RemoteJWKSetOptions } from 'jose';
import { errors } from 'oidc-provider';
import type { VeilConfig } from '../config.js';
import { assertSafeUrl, OutboundRefused, safeFetch, type OutboundPolicy } from './safe-fetch.js';
import { VeilError } from '../errors/veil-error.js';

export const JWKS_URI_ERROR = 'the jwks_uri could not be fetched or is not a valid JWK Set';

/** The message is either about the URL alone (refused before connecting) or JWKS_URI_ERROR: safe to show. */
export class JwksUriError extends VeilError {
  constructor(
    message: string,
    /** For logs: why, never what was fetched. */
    readonly reason: string,
  ) {
    super(reason === 'refused' || reason === 'type' ? 'invalid_input' : 'unreachable', message, { expose: true });
  }
}

/** The rules for every jwks_uri Veil fetches, from the configuration. */
export function jwksPolicy(config: Pick<VeilConfig, 'production' | 'resourceJwks'>): OutboundPolicy {
  return { allowPrivate: config.resourceJwks.allowPrivate, requireHttps: config.production };
}

function toJwksUriError(err: unknown): JwksUriError {
  if (err instanceof JwksUriError) return err;
  if (err instanceof OutboundRefused) return new JwksUriError(`the jwks_uri ${err.detail}`, 'refused');
  return new JwksUriError(JWKS_URI_ERROR, (err as { reason?: string }).reason ?? 'failed');
}

/** Validates a jwks_uri without fetching it (scheme, https in production, every resolved address). */
export async function assertSafeJwksUri(uri: string, policy: OutboundPolicy): Promise<void> {
  try {
    await assertSafeUrl(uri, policy);
  } catch (err) {
    throw toJwksUriError(err);
  }
}

/** Fetches and validates a JWK Set (200, JSON, a set jose accepts). Throws JwksUriError. */
export async function fetchJwkSet(uri: string, policy: OutboundPolicy): Promise<JSONWebKeySet> {
  let res: Response;
  try {
    res = await safeFetch(uri, policy, { headers: { accept: 'application/json, application/jwk-set+json' } });
  } catch (err) {
    throw toJwksUriError(err);
  }
  if (res.status !== 200) throw new JwksUriError(JWKS_URI_ERROR, 'status');
  let body: unknown;
  try {
    body = JSON.parse(await res.text());
  } catch {
    throw new JwksUriError(JWKS_URI_ERROR, 'not_json');
  }
  try {
    createLocalJWKSet(body as JSONWebKeySet); // jose's own JWK Set shape check
  } catch {
    throw new JwksUriError(JWKS_URI_ERROR, 'not_jwks');
  }
  return body as JSONWebKeySet;
}

/** A jose `[customFetch]` that goes through the same rules. */
export function joseFetch(policy: OutboundPolicy): FetchImplementation {
  return async (url, init) => {
    try {
      return await safeFetch(url, policy, { method: init.method, headers: init.headers, signal: init.signal });
    } catch (err) {
      throw toJwksUriError(err);
    }
  };
}

/**
 * jose's createRemoteJWKSet (cache, cooldown, refetch on an unknown kid) fetching through
 * safe-fetch.ts. For anything in Veil that verifies with a remote JWK Set, e.g. client
 * assertions (private_key_jwt) at Veil's own endpoints.
 */
export function safeRemoteJWKSet(url: URL, policy: OutboundPolicy, options: RemoteJWKSetOptions = {}): ReturnType<typeof createRemoteJWKSet> {
  return createRemoteJWKSet(url, { timeoutDuration: 4000, ...options, [customFetch]: joseFetch(policy) });
}

/**
 * Client registration: a client's jwks_uri (private_key_jwt) follows the same rules, checked
 * before the client is stored. Throws oidc-provider's InvalidClientMetadata (the admin API's 400).
 */
export async function assertClientJwksUri(metadata: { jwks_uri?: unknown }, policy: OutboundPolicy): Promise<void> {
  if (metadata.jwks_uri === undefined) return;
  try {
    if (typeof metadata.jwks_uri !== 'string') throw new JwksUriError('the jwks_uri must be a string', 'type');
    await assertSafeJwksUri(metadata.jwks_uri, policy);
  } catch (err) {
    // A name that does not resolve yet is not refused here; it is checked again at every fetch.
    if (err instanceof JwksUriError && err.reason === 'dns') return;
    throw new errors.InvalidClientMetadata(err instanceof JwksUriError ? err.message : JWKS_URI_ERROR);
  }
}
