/**
 * Veil's signing keys for the SDK: jose's remote JWK Set (refetch on an unknown kid, at most once
 * per cooldown), kept only as long as Veil's `Cache-Control: max-age` says. Veil sends a short
 * max-age so that a signing key it force-retires stops being trusted quickly; a fixed 10-minute
 * cache would keep trusting it. The max-age is bounded: at least MIN_CACHE_MS (a `max-age=0` must
 * not make every verification fetch) and at most `maxCacheMs`. When a refresh fails the last
 * good set stays in use, but never longer than `maxCacheMs` after it was fetched.
 */
import { createRemoteJWKSet, customFetch, type FetchImplementation, type JWTVerifyGetKey } from 'jose';

export const MIN_CACHE_MS = 1000;

export interface IssuerJwksOptions {
  cooldownMs: number;
  /** Upper bound on how long one fetched set is used (also without Cache-Control). */
  maxCacheMs: number;
  timeoutMs: number;
}

/** Freshness lifetime from Cache-Control (max-age minus Age; no-store/no-cache: 0), else undefined. */
export function cacheLifetimeMs(headers: Headers): number | undefined {
  const value = headers.get('cache-control');
  if (!value) return undefined;
  const directives = value
    .toLowerCase()
    .split(',')
    .map((d) => d.trim());
  if (directives.includes('no-store') || directives.includes('no-cache')) return 0;
  const maxAge = directives.find((d) => d.startsWith('max-age='));
  if (!maxAge) return undefined;
  const seconds = Number(maxAge.slice('max-age='.length).replace(/^"(.*)"$/, '$1'));
  if (!Number.isFinite(seconds) || seconds < 0) return undefined;
  const age = Number(headers.get('age'));
  return Math.max(0, seconds - (Number.isFinite(age) && age > 0 ? age : 0)) * 1000;
}

export function createIssuerJwks(url: URL, options: IssuerJwksOptions): JWTVerifyGetKey {
  const minCacheMs = Math.min(MIN_CACHE_MS, options.maxCacheMs);
  /** Until when the last fetched set is fresh by Veil's headers. */
  let freshUntil = 0;
  /** After a failed refresh, when to try again (the last good set serves meanwhile). */
  let retryAt = 0;

  const fetchRecordingFreshness: FetchImplementation = async (input, init) => {
    const res = await fetch(input, init);
    if (res.status === 200) {
      const lifetime = cacheLifetimeMs(res.headers) ?? options.maxCacheMs;
      freshUntil = Date.now() + Math.min(options.maxCacheMs, Math.max(minCacheMs, lifetime));
    }
    return res;
  };

  const remote = createRemoteJWKSet(url, {
    cooldownDuration: options.cooldownMs,
    // jose's own limit is the upper bound: past it the set is dropped, even if refreshes fail.
    cacheMaxAge: options.maxCacheMs,
    timeoutDuration: options.timeoutMs,
    [customFetch]: fetchRecordingFreshness,
  });

  return async (header, token) => {
    const now = Date.now();
    if (remote.jwks() && now >= freshUntil && now >= retryAt) {
      try {
        await remote.reload(); // one fetch however many verifications wait on it
      } catch {
        retryAt = Date.now() + minCacheMs;
      }
    }
    return remote(header, token);
  };
}
