/**
 * RFC 7662 token introspection, used after local verification succeeded to learn whether Veil
 * still considers the token active (revocation, logout). Fails closed: if Veil cannot answer,
 * the token is rejected with `introspection_failed`. With `jwtResponse`, the answer is asked for
 * as an RFC 9701 JWT (signed by Veil, encrypted to this API) and accepted only once it decrypts
 * and verifies (the verifier's keys, jose), is for this API and fresh, and names the token's jti.
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
  /**
   * Ask for RFC 9701 JWT answers (`Accept: application/token-introspection+jwt`) and verify
   * them: decrypted with this API's keys, signed by Veil (its JWKS), `aud` this API's clientId,
   * `iat` at most 60 s old. A plain JSON answer is then refused. Default false.
   */
  jwtResponse?: boolean;
}

/** Opens and verifies an RFC 9701 answer, resolving to its `token_introspection` member. */
export type IntrospectionJwtOpener = (answer: string) => Promise<Record<string, unknown>>;

export const INTROSPECTION_JWT_MEDIA_TYPE = 'application/token-introspection+jwt';

export interface Introspector {
  /**
   * Resolves when Veil says the token is active; `exp` (seconds) bounds how long that is cached.
   * A JWT answer must name `jti` (the token's) when given.
   */
  assertActive(token: string, exp: number, jti?: string): Promise<void>;
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

async function fetchOk(url: string, init: RequestInit, timeoutMs: number, what: string): Promise<Response> {
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
  return response;
}

/** An RFC 9701 answer: its media type, then the opener's checks (failures are `introspection_failed`). */
async function fetchJwtAnswer(url: string, init: RequestInit, timeoutMs: number, open: IntrospectionJwtOpener): Promise<Record<string, unknown>> {
  const response = await fetchOk(url, init, timeoutMs, 'introspection endpoint');
  const type = response.headers.get('content-type')?.split(';')[0]?.trim().toLowerCase();
  if (type !== INTROSPECTION_JWT_MEDIA_TYPE) {
    await response.body?.cancel().catch(() => {});
    throw new VeilTokenError('introspection_failed', `introspection endpoint answered ${type ?? 'no content type'}, not a JWT`);
  }
  const text = await response.text();
  try {
    return await open(text);
  } catch (cause) {
    throw new VeilTokenError('introspection_failed', 'the introspection answer did not verify', { cause });
  }
}

async function fetchJson(url: string, init: RequestInit, timeoutMs: number, what: string): Promise<Record<string, unknown>> {
  const response = await fetchOk(url, init, timeoutMs, what);
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

/** `openJwt` (the verifier's keys) is required with `jwtResponse`. */
export function createIntrospector(issuer: string, options: IntrospectionOptions, openJwt?: IntrospectionJwtOpener): Introspector {
  if (typeof options.clientId !== 'string' || !options.clientId || typeof options.clientSecret !== 'string' || !options.clientSecret) {
    throw new TypeError('introspect.clientId and introspect.clientSecret are required');
  }
  const cacheMs = positiveOption(options.cacheSeconds, 0, 'introspect.cacheSeconds', true) * 1000;
  const maxEntries = Math.max(1, Math.floor(positiveOption(options.cacheMaxEntries, 1000, 'introspect.cacheMaxEntries')));
  const timeoutMs = positiveOption(options.timeoutMs, 5000, 'introspect.timeoutMs');
  const authorization = basicAuthorization(options.clientId, options.clientSecret);
  const cache = cacheMs > 0 ? new ActiveTokenCache(maxEntries) : undefined;
  if (options.jwtResponse && !openJwt) throw new TypeError('introspect.jwtResponse needs the verifier that opens the answers');
  const jwt = options.jwtResponse ? openJwt : undefined;

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
    async assertActive(token, exp, jti) {
      const key = cache ? createHash('sha256').update(token).digest('base64url') : '';
      if (cache?.has(key)) return;

      let answer: Record<string, unknown>;
      try {
        const init: RequestInit = {
          method: 'POST',
          headers: { authorization, accept: jwt ? INTROSPECTION_JWT_MEDIA_TYPE : 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
        };
        const url = await introspectionEndpoint();
        answer = jwt ? await fetchJwtAnswer(url, init, timeoutMs, jwt) : await fetchJson(url, init, timeoutMs, 'introspection endpoint');
        if (answer.active !== true && answer.active !== false) throw new VeilTokenError('introspection_failed', 'introspection answer has no boolean "active"');
        // A signed answer about another token (relayed or mixed up) says nothing about this one.
        if (jwt && answer.active && jti !== undefined && answer.jti !== jti) throw new VeilTokenError('introspection_failed', 'the introspection answer is about another token');
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
