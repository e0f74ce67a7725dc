/**
 * The framework-independent half of the middleware: reads `Authorization: Bearer`, verifies the
 * token and the scopes, and describes the RFC 6750 answer. Koa and Express adapters only copy
 * the outcome onto their response objects.
 */
import { VeilTokenError } from './errors.js';
import type { AccessTokenVerifier, VerifiedAccessToken } from './verifier.js';

export interface RequireAccessTokenOptions {
  /** Every one of these scopes must be in the token's `scope` claim, else 403 insufficient_scope. */
  scopes?: readonly string[];
}

export interface ErrorBody {
  error: string;
  error_description: string;
}

export type BearerOutcome = { ok: true; accessToken: VerifiedAccessToken } | { ok: false; status: 400 | 401 | 403 | 503; headers: Record<string, string>; body: ErrorBody };

/** RFC 6750 §2.1 b64token, exactly one, after a case-insensitive "Bearer" and spaces. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

const quote = (value: string) => `"${value.replace(/["\\]/g, '\\$&')}"`;

function challenge(realm: string, attributes: Record<string, string> = {}): string {
  const params = [`realm=${quote(realm)}`, ...Object.entries(attributes).map(([k, v]) => `${k}=${quote(v)}`)];
  return `Bearer ${params.join(', ')}`;
}

export function normalizeScopes(scopes: readonly string[] | undefined): string[] {
  const list = [...(scopes ?? [])];
  for (const scope of list) if (!SCOPE_TOKEN.test(scope)) throw new TypeError(`invalid scope ${JSON.stringify(scope)}`);
  return list;
}

export async function authenticateBearer(verifier: AccessTokenVerifier, authorization: string | undefined, requiredScopes: readonly string[]): Promise<BearerOutcome> {
  const realm = verifier.audience;
  const reject = (status: 400 | 401 | 403, error: string, description: string, extra: Record<string, string> = {}): BearerOutcome => ({
    ok: false,
    status,
    headers: { 'www-authenticate': challenge(realm, { error, error_description: description, ...extra }), 'cache-control': 'no-store' },
    body: { error, error_description: description },
  });

  // RFC 6750 §3.1: a request without credentials gets a challenge with no error attribute.
  if (!authorization || !/^Bearer(?: |$)/i.test(authorization)) {
    return {
      ok: false,
      status: 401,
      headers: { 'www-authenticate': challenge(realm), 'cache-control': 'no-store' },
      body: { error: 'unauthorized', error_description: 'a Bearer access token is required' },
    };
  }
  const match = BEARER.exec(authorization);
  if (!match) return reject(400, 'invalid_request', 'the Authorization header must carry exactly one Bearer token');

  let accessToken: VerifiedAccessToken;
  try {
    accessToken = await verifier.verify(match[1]!);
  } catch (err) {
    if (!(err instanceof VeilTokenError)) throw err;
    // Veil unreachable: still rejected (fail closed), but not blamed on the client's token.
    if (err.unavailable) {
      return { ok: false, status: 503, headers: { 'cache-control': 'no-store' }, body: { error: 'temporarily_unavailable', error_description: err.code } };
    }
    return reject(401, 'invalid_token', err.code);
  }

  const missing = requiredScopes.filter((scope) => !accessToken.scopes.includes(scope));
  if (missing.length > 0) {
    return reject(403, 'insufficient_scope', `requires scope: ${requiredScopes.join(' ')}`, { scope: requiredScopes.join(' ') });
  }
  return { ok: true, accessToken };
}
