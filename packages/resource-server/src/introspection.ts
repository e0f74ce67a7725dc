/**
 * RFC 7662 token introspection, used after local verification succeeded to learn whether Veil
 * still considers the token active (revocation, logout). Fails closed: if Veil cannot answer,
 * the token is rejected with `introspection_failed`.
 */
import { createHash } from 'node:crypto';
import { VeilTokenError } from './errors.js';
import { positiveOption } from './options.js';

export interface IntrospectionOptions {
  /** The API's `introspection_client_id`, printed by `veil resources create`. */
  clientId: string;
  /** The API's `introspection_client_secret`. */
  clientSecret: string;
  /** How long an `active: true` answer is reused; 0 (default) asks Veil on every request. */
  cacheSeconds?: number;
  /** Upper bound on cached answers; the oldest is evicted first. Default 1000. */
  cacheMaxEntries?: number;
  /** Introspection endpoint; discovered from `${issuer}/.well-known/openid-configuration` when absent. */
  endpoint?: string;
  /** Per-request timeout for discovery and introspection. Default 5000. */
  timeoutMs?: number;
  /**
   * Told the outcome of every call to Veil (not of cache hits): `active`, `inactive`, or `failed`
   * (unreachable, an error status, an unreadable answer). For metrics; must not throw.
   */
  onResult?: (outcome: 'active' | 'inactive' | 'failed') => void;
}

export interface Introspector {
  /** Resolves when Veil says the token is active; `exp` (seconds) bounds how long that is cached. */
  assertActive(token: string, exp: number): Promise<void>;
}

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before being joined for Basic auth. */
export function basicAuthorization(clientId: string, clientSecret: string): string {
  const formEncode = (value: string) => new URLSearchParams([['', value]]).toString().slice(1);
  return `Basic ${Buffer.from(`${formEncode(clientId)}:${formEncode(clientSecret)}`).toString('base64')}`;
}

/** Remembers positive answers until they expire; keyed by a hash so raw tokens are never held. */
class ActiveTokenCache {
  private readonly entries = new Map<string, number>();

  constructor(private readonly maxEntries: number) {}

  has(key: string): boolean {
    const expiresAt = this.entries.get(key);
    if (expiresAt === undefined) return false;
    if (expiresAt > Date.now()) return true;
    this.entries.delete(key);
    return false;
  }

  set(key: string, expiresAt: number): void {
    if (expiresAt <= Date.now()) return;
    this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) this.evict();
    this.entries.set(key, expiresAt);
  }

  private evict(): void {
    const now = Date.now();
    for (const [key, expiresAt] of this.entries) if (expiresAt <= now) this.entries.delete(key);
    // Maps iterate in insertion order, so the first key is the oldest entry.
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }
}

async function fetchJson(url: string, init: RequestInit, timeoutMs: number, what: string): Promise<Record<string, unknown>> {
  let response: Response;
  try {
    response = await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
  } catch (cause) {
    throw new VeilTokenError('introspection_failed', `${what} unreachable`, { cause });
  }
  if (response.status !== 200) {
    await response.body?.cancel().catch(() => {});
    throw new VeilTokenError('introspection_failed', `${what} answered HTTP ${response.status}`);
  }
  let body: unknown;
  try {
    body = await response.json();
  } catch (cause) {
    throw new VeilTokenError('introspection_failed', `${what} answered invalid JSON`, { cause });
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new VeilTokenError('introspection_failed', `${what} answered a non-object`);
  }
  return body as Record<string, unknown>;
}

export function createIntrospector(issuer: string, options: IntrospectionOptions): Introspector {
  if (typeof options.clientId !== 'string' || !options.clientId || typeof options.clientSecret !== 'string' || !options.clientSecret) {
    throw new TypeError('introspect.clientId and introspect.clientSecret are required');
  }
  const cacheMs = positiveOption(options.cacheSeconds, 0, 'introspect.cacheSeconds', true) * 1000;
  const maxEntries = Math.max(1, Math.floor(positiveOption(options.cacheMaxEntries, 1000, 'introspect.cacheMaxEntries')));
  const timeoutMs = positiveOption(options.timeoutMs, 5000, 'introspect.timeoutMs');
  const authorization = basicAuthorization(options.clientId, options.clientSecret);
  const cache = cacheMs > 0 ? new ActiveTokenCache(maxEntries) : undefined;

  let endpoint: Promise<string> | undefined = options.endpoint ? Promise.resolve(new URL(options.endpoint).href) : undefined;
  const discover = async (): Promise<string> => {
    const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    const metadata = await fetchJson(url, { headers: { accept: 'application/json' } }, timeoutMs, 'discovery document');
    // RFC 8414 §3.3: metadata for another issuer must not be used.
    if (metadata.issuer !== issuer) throw new VeilTokenError('introspection_failed', 'discovery document is for another issuer');
    if (typeof metadata.introspection_endpoint !== 'string') {
      throw new VeilTokenError('introspection_failed', 'discovery document has no introspection_endpoint');
    }
    return metadata.introspection_endpoint;
  };
  const introspectionEndpoint = (): Promise<string> => {
    // Discovered once; a failed discovery is retried on the next request instead of sticking.
    endpoint ??= discover().catch((err: unknown) => {
      endpoint = undefined;
      throw err;
    });
    return endpoint;
  };

  return {
    async assertActive(token, exp) {
      const key = cache ? createHash('sha256').update(token).digest('base64url') : '';
      if (cache?.has(key)) return;

      let answer: Record<string, unknown>;
      try {
        answer = await fetchJson(
          await introspectionEndpoint(),
          {
            method: 'POST',
            headers: { authorization, accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
          },
          timeoutMs,
          'introspection endpoint',
        );
        if (answer.active !== true && answer.active !== false) throw new VeilTokenError('introspection_failed', 'introspection answer has no boolean "active"');
      } catch (err) {
        options.onResult?.('failed');
        throw err;
      }
      options.onResult?.(answer.active ? 'active' : 'inactive');
      if (!answer.active) throw new VeilTokenError('token_inactive', 'introspection says the token is not active');

      cache?.set(key, Math.min(Date.now() + cacheMs, exp * 1000));
    },
  };
}
