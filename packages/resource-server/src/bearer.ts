/**
 * The framework-independent half of the middleware: reads `Authorization: Bearer` or
 * `Authorization: DPoP` (with its `DPoP` proof header, RFC 9449 §7), verifies the token, the
 * proof and the scopes, and describes the RFC 6750 / RFC 9449 answer. Koa and Express adapters
 * only copy the outcome onto their response objects.
 */
import { VeilTokenError, type VeilTokenErrorCode } from './errors.js';
import type { AccessTokenVerifier, VerifiedAccessToken } from './verifier.js';

export interface RequireAccessTokenOptions {
  /** Every one of these scopes must be in the token's `scope` claim, else 403 insufficient_scope. */
  scopes?: readonly string[];
  /**
   * The origin clients call the API at (`https://api.example.com`), for the URL a DPoP proof's
   * `htu` must name. Default: the request's own scheme and Host header, as the server sees them
   * (behind a proxy or TLS terminator, set this).
   */
  publicOrigin?: string;
}

export interface ErrorBody {
  error: string;
  error_description: string;
}

export type BearerOutcome = { ok: true; accessToken: VerifiedAccessToken } | { ok: false; status: 400 | 401 | 403 | 503; headers: Record<string, string>; body: ErrorBody };

/** What the middleware knows of the request, for DPoP: its method, full URL and `DPoP` header. */
export interface RequestFacts {
  method: string;
  url: string | URL;
  dpop: string | undefined;
}

/** RFC 6750 §2.1 b64token (RFC 9449 §7.1 too), exactly one, after a case-insensitive scheme and spaces. */
const CREDENTIALS = /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*) *$/i;
const SCHEME = /^(Bearer|DPoP)(?: |$)/i;
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

/** Codes that say the DPoP proof (not the token) is wrong: RFC 9449 §7.1 `invalid_dpop_proof`. */
const PROOF_CODES: ReadonlySet<VeilTokenErrorCode> = new Set([
  'invalid_dpop_proof',
  'dpop_htm_mismatch',
  'dpop_htu_mismatch',
  'dpop_proof_stale',
  'dpop_ath_mismatch',
  'dpop_key_mismatch',
  'dpop_replay',
]);

const quote = (value: string) => `"${value.replace(/["\\]/g, '\\$&')}"`;

function challenge(scheme: 'Bearer' | 'DPoP', realm: string, attributes: Record<string, string> = {}): string {
  const params = [`realm=${quote(realm)}`, ...Object.entries(attributes).map(([k, v]) => `${k}=${quote(v)}`)];
  return `${scheme} ${params.join(', ')}`;
}

export function normalizeScopes(scopes: readonly string[] | undefined): string[] {
  const list = [...(scopes ?? [])];
  for (const scope of list) if (!SCOPE_TOKEN.test(scope)) throw new TypeError(`invalid scope ${JSON.stringify(scope)}`);
  return list;
}

/** The `publicOrigin` option, checked once when the middleware is made. */
export function normalizeOrigin(origin: string | undefined): string | undefined {
  if (origin === undefined) return undefined;
  const url = URL.parse(origin);
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.pathname !== '/' || url.search || url.hash) {
    throw new TypeError('publicOrigin must be an http(s) origin such as https://api.example.com');
  }
  return url.origin;
}

/**
 * `request` is needed for DPoP; without it (a caller that cannot say the method and URL), an
 * `Authorization: DPoP` request is refused.
 */
export async function authenticateBearer(
  verifier: AccessTokenVerifier,
  authorization: string | undefined,
  requiredScopes: readonly string[],
  request?: RequestFacts,
): Promise<BearerOutcome> {
  const realm = verifier.audience;
  const algs = verifier.dpopAlgorithms.join(' ');
  const reject = (scheme: 'Bearer' | 'DPoP', status: 400 | 401 | 403, error: string, description: string, extra: Record<string, string> = {}): BearerOutcome => ({
    ok: false,
    status,
    headers: {
      'www-authenticate': challenge(scheme, realm, { error, error_description: description, ...extra, ...(scheme === 'DPoP' ? { algs } : {}) }),
      'cache-control': 'no-store',
    },
    body: { error, error_description: description },
  });

  // RFC 6750 §3.1 / RFC 9449 §7.1: a request without credentials gets both challenges, with no error attribute.
  if (!authorization || !SCHEME.test(authorization)) {
    return {
      ok: false,
      status: 401,
      headers: { 'www-authenticate': `${challenge('Bearer', realm)}, ${challenge('DPoP', realm, { algs })}`, 'cache-control': 'no-store' },
      body: { error: 'unauthorized', error_description: 'a Bearer or DPoP access token is required' },
    };
  }
  const match = CREDENTIALS.exec(authorization);
  const scheme = /^dpop/i.test(authorization) ? 'DPoP' : 'Bearer';
  if (!match) return reject(scheme, 400, 'invalid_request', `the Authorization header must carry exactly one ${scheme} token`);
  if (scheme === 'DPoP' && !request) return reject('DPoP', 400, 'invalid_request', 'DPoP is not supported here');

  let accessToken: VerifiedAccessToken;
  try {
    accessToken = await verifier.verify(match[2]!, scheme === 'DPoP' ? { proof: request!.dpop, method: request!.method, url: request!.url } : undefined);
  } catch (err) {
    if (!(err instanceof VeilTokenError)) throw err;
    // Veil unreachable: still rejected (fail closed), but not blamed on the client's token.
    if (err.unavailable) {
      return { ok: false, status: 503, headers: { 'cache-control': 'no-store' }, body: { error: 'temporarily_unavailable', error_description: err.code } };
    }
    if (PROOF_CODES.has(err.code)) return reject('DPoP', 401, 'invalid_dpop_proof', err.code);
    // A bound token sent as Bearer: the answer tells the client which scheme it needs (RFC 9449 §7.2).
    return reject(err.code === 'dpop_required' ? 'DPoP' : scheme, 401, 'invalid_token', err.code);
  }

  const missing = requiredScopes.filter((scope) => !accessToken.scopes.includes(scope));
  if (missing.length > 0) {
    return reject(scheme, 403, 'insufficient_scope', `requires scope: ${requiredScopes.join(' ')}`, { scope: requiredScopes.join(' ') });
  }
  return { ok: true, accessToken };
}
