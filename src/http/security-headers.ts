/**
 * Security headers on every response of the public listener. Pages add their own CSP and
 * framing rules (interactions/views.ts); no CSP is set here because oidc-provider's
 * form_post page needs its inline script.
 */
import type { Context, Next } from 'koa';

export function securityHeaderValues(issuer: string): Record<string, string> {
  return {
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    // Only an https issuer promises https to browsers; behind a TLS-terminating proxy the
    // request itself may be plain http, so the issuer decides, not the connection.
    ...(new URL(issuer).protocol === 'https:' ? { 'Strict-Transport-Security': 'max-age=31536000; includeSubDomains' } : {}),
  };
}

export function securityHeaders(issuer: string) {
  const headers = securityHeaderValues(issuer);
  return async (ctx: Context, next: Next) => {
    ctx.set(headers);
    await next();
  };
}
