/**
 * The admin listener's front door, run before any route: only its own Host names (DNS
 * rebinding), nothing a browser sends on behalf of a web page (Origin, Sec-Fetch-Site), JSON
 * bodies only (a cross-site form cannot send application/json without a CORS preflight, which
 * the admin API never grants), and always the bearer token. The probes may skip the token only
 * when the listener is bound to loopback.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { Context, Next } from 'koa';
import { VeilError } from '../errors/veil-error.js';

export interface GuardOptions {
  token: string;
  /** Whether a Host header value (as sent) names this listener; see `hostMatcher`. */
  hostAllowed: (host: string) => boolean;
  /** `GET /healthz`, `/readyz`, `/metrics` without the token (a loopback bind only). */
  openProbes: boolean;
}

const PROBES = new Set(['/healthz', '/readyz', '/metrics']);
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

export function sameSecret(a: string, b: string): boolean {
  // Hash first so lengths match and timing does not reveal the token length.
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

const WILDCARDS = new Set(['0.0.0.0', '::', '[::]']);

/**
 * Host values served: the bind address and `localhost` with the listener's port (bare on the
 * scheme's default port), loopback literals on a wildcard bind (an IP literal cannot be
 * rebound), and ADMIN_ALLOWED_HOSTS (an entry without a port matches any port or none).
 */
export function hostMatcher(bindHost: string, port: number, scheme: 'http' | 'https', extra: readonly string[]): (host: string) => boolean {
  const bracket = (h: string) => (isIP(h) === 6 ? `[${h}]` : h.toLowerCase());
  const names = WILDCARDS.has(bindHost) ? ['127.0.0.1', '[::1]', 'localhost'] : [bracket(bindHost), 'localhost'];
  const exact = new Set<string>();
  const anyPort = new Set<string>();
  const defaultPort = scheme === 'https' ? 443 : 80;
  for (const name of names) {
    exact.add(`${name}:${port}`);
    if (port === defaultPort) exact.add(name);
  }
  for (const entry of extra) {
    if (/:\d+$/.test(entry)) exact.add(entry);
    else anyPort.add(entry);
  }
  return (raw: string) => {
    const host = raw.trim().toLowerCase();
    if (exact.has(host)) return true;
    return anyPort.has(host.replace(/:\d+$/, ''));
  };
}

export function adminGuard({ token, hostAllowed, openProbes }: GuardOptions) {
  return async function guard(ctx: Context, next: Next): Promise<void> {
    // Never echo the Host back: it is whatever the caller wrote.
    if (!hostAllowed(ctx.get('host'))) {
      throw new VeilError('misdirected_request', 'this Host is not served by the admin API (see ADMIN_ALLOWED_HOSTS)');
    }
    // Browsers add Origin to cross-origin requests and to every POST, and Sec-Fetch-Site to
    // everything; "none" means the user typed the URL. No web page may talk to the admin API.
    const site = ctx.get('sec-fetch-site').toLowerCase();
    if (ctx.get('origin') !== '' || (site !== '' && site !== 'none')) {
      throw new VeilError('forbidden', 'requests made by a web page are refused by the admin API');
    }
    const hasBody = BODY_METHODS.has(ctx.method) || Number(ctx.get('content-length') || 0) > 0 || ctx.get('transfer-encoding') !== '';
    // Media types are case-insensitive (RFC 9110 §8.3.1); `is` compares them so.
    if (hasBody && ctx.is('application/json') !== 'application/json') {
      throw new VeilError('unsupported_media_type', 'the request body must be application/json');
    }
    const probe = PROBES.has(ctx.path) && (ctx.method === 'GET' || ctx.method === 'HEAD');
    if (!(openProbes && probe)) {
      const header = ctx.get('authorization');
      // The scheme is case-insensitive (RFC 9110 §11.1).
      const presented = /^bearer +/i.test(header) ? header.replace(/^bearer +/i, '').trim() : '';
      if (!presented || !sameSecret(presented, token)) {
        ctx.set('WWW-Authenticate', 'Bearer realm="veil-admin"');
        throw new VeilError('unauthorized', 'a valid admin bearer token is required');
      }
    }
    await next();
  };
}
