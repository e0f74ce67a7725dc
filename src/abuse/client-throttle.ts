/**
 * Per-client request limits at the token and introspection endpoints. The client is read from
 * HTTP Basic credentials only, because the form body belongs to oidc-provider and must not be
 * consumed here; callers without Basic (client_secret_post, private_key_jwt, public clients)
 * are counted by address. The count is taken before authentication, so a named client is
 * counted per client and address: a client id is public, and nobody else may spend its allowance.
 * A claimed id proves nothing, so a flood naming a fresh made-up id per request would never meet
 * that limit: every request also counts toward a ceiling per address, whatever id it claims.
 */
import type { Context, Next } from 'koa';
import { BurstyRateLimiter, RateLimiterRes } from 'rate-limiter-flexible';
import { parseBasicCredentials } from '../http/basic-auth.js';
import { INTROSPECTION_PATH, REVOCATION_PATH } from '../oidc/token-endpoints.js';
import { addressKey, createLimiter } from './limiter.js';

// Every endpoint that authenticates a client (pushed authorization requests at /request too).
const THROTTLED_PATHS = new Set(['/token', INTROSPECTION_PATH, REVOCATION_PATH, '/request']);
// Longer than this is no registered client id; counting it by address keeps keys small.
const MAX_CLIENT_ID_LENGTH = 256;
// A client may exceed its rate by up to one second's worth of requests per this many seconds.
const BURST_WINDOW_SECONDS = 10;

export interface RequestLimiter {
  consume(key: string): Promise<unknown>;
}

/**
 * `perSecond` requests a second per key, plus a burst allowance of the same size, counted in
 * this process. These endpoints are the hot path: a shared Redis counter would add two round
 * trips to every token request. With WEB_CONCURRENCY workers the effective limit is that many
 * times higher; login throttling, where sharing matters for security, stays in Redis.
 */
export function createTokenRateLimiter(perSecond: number): RequestLimiter {
  return new BurstyRateLimiter(createLimiter('token', perSecond, 1), createLimiter('token-burst', perSecond, BURST_WINDOW_SECONDS));
}

/** The two counts every throttled request takes: per (claimed) client and address, and per address. */
export interface TokenLimits {
  perClient: RequestLimiter;
  perAddress: RequestLimiter;
}

/**
 * Both limits, in process memory like `createTokenRateLimiter` (the address ceiling is one more
 * in-memory counter, no I/O). Per process, so N workers allow N times the ceiling; it stops a
 * flood, it is not a quota.
 */
export function createTokenLimits(perClient: number, perAddress: number): TokenLimits {
  return {
    perClient: createTokenRateLimiter(perClient),
    perAddress: new BurstyRateLimiter(createLimiter('token-address', perAddress, 1), createLimiter('token-address-burst', perAddress, BURST_WINDOW_SECONDS)),
  };
}

/** The client id of an HTTP Basic `Authorization` header, when it is a plausible one. */
export function basicClientId(authorization: string | undefined): string | undefined {
  try {
    const id = parseBasicCredentials(authorization)?.id;
    return id && id.length <= MAX_CLIENT_ID_LENGTH ? id : undefined;
  } catch {
    return undefined;
  }
}

export function clientRateLimit(limits: TokenLimits, onError: (err: unknown) => void = () => {}) {
  return async (ctx: Context, next: Next) => {
    if (ctx.method !== 'POST' || !THROTTLED_PATHS.has(ctx.path)) {
      await next();
      return;
    }
    const clientId = basicClientId(ctx.get('authorization'));
    const address = addressKey(ctx.ip);
    try {
      // First the address ceiling, which ignores the claimed id; only then is a counter created
      // for that id, so a flood of made-up ids cannot grow the counters past the ceiling either.
      await limits.perAddress.consume(address);
      // The client id is claimed, not yet proven, and client ids are public: counted per client
      // *and* address, so nobody can spend another client's allowance from elsewhere.
      await limits.perClient.consume(clientId ? `client:${clientId}:${address}` : `ip:${address}`);
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) {
        // Store errors fall back to in-process counters inside the limiter; anything else is a
        // throttle failure, which must not take the token endpoint down with it.
        onError(rejection);
        await next();
        return;
      }
      ctx.status = 429;
      ctx.set('Retry-After', String(Math.max(1, Math.ceil(rejection.msBeforeNext / 1000))));
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { error: 'temporarily_unavailable', error_description: 'too many requests' };
      return;
    }
    await next();
  };
}
