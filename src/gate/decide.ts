/**
 * One decision, whatever the gateway: the route for (method, host, path), the bearer token
 * checked by the route's audience verifier, the scopes, then what goes upstream (the configured
 * claims as headers, and the Authorization the upstream gets: an exchanged token, the incoming
 * one when the route keeps it, or none). Dialects only differ in how they say where the request
 * was going (request-target.ts) and how the answer is spelled (answers.ts).
 */
import type { DPoPRequest, VerifiedAccessToken } from '@veil/resource-server';
import type { ExchangeResult, TokenExchanger } from './exchange.js';
import type { PolicyRules } from './policy-rules.js';
import { matchRoute, normalizePath, type CompiledRoute } from './routes.js';
import { isUnavailable, reasonOf, VeilTokenError, type AudienceVerifiers, type TokenReason, type UnavailableReason } from './verifiers.js';

/** Tokens longer than this are refused before any parsing (the SDK's own bound too). */
export const MAX_TOKEN_LENGTH = 8192;

/** Where the original request was going, as the gateway said. */
export interface OriginalRequest {
  method: string;
  host: string;
  /** The request target as sent: path and query (or an absolute URI). */
  uri: string;
  /** The incoming Authorization header, if any. */
  authorization: string | undefined;
  /** Another header of the original request (lower-case name), for a route's amountFrom rule and DPoP. */
  header?: (name: string) => string | string[] | undefined;
  /** The original request's scheme, as the gateway says (X-Original-Proto, X-Forwarded-Proto); https when it does not: a DPoP proof's htu names it. */
  proto?: 'http' | 'https';
}

export type DenyReason =
  'missing' | TokenReason | 'insufficient_scope' | 'no_route' | 'method_not_allowed' | 'ambiguous_path' | 'exchange_refused' | 'policy_refused' | 'invalid_amount';

export type Decision =
  | {
      kind: 'allow';
      route: CompiledRoute;
      /** Header name → value, for the configured claims the token carries. */
      headers: Record<string, string>;
      /** Configured header names whose claim the token lacks: the gateway must not pass a client's copy. */
      absent: string[];
      /** What the upstream's Authorization must be; undefined: none (the gateway removes it). */
      upstreamAuthorization: string | undefined;
      reason: 'ok' | 'public';
    }
  | {
      kind: 'deny';
      status: 400 | 401 | 403;
      reason: DenyReason;
      route: CompiledRoute | undefined;
      /** RFC 6750 §3 challenge parameters (401 and insufficient_scope); undefined: no WWW-Authenticate. DPoP: RFC 9449 §7.1's scheme. */
      challenge: { realm: string; error?: string; description?: string; scope?: string; scheme?: 'DPoP' } | undefined;
      error: string;
      description: string;
    }
  | {
      kind: 'unavailable';
      status: 503;
      reason: UnavailableReason | 'exchange_unavailable' | 'policy_unavailable';
      route: CompiledRoute;
      /** For the log line: what failed, never a token. */
      detail: string;
    };

/** RFC 6750 §2.1: exactly one b64token after the scheme. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
/** Bearer, or DPoP (RFC 9449 §7.1: the token is bound, and the DPoP header carries the proof). */
const TOKEN_SCHEME = /^(Bearer|DPoP)(?: +|$)/i;
/** Token refusals that blame the DPoP proof, or ask for one: answered with a DPoP challenge. */
const DPOP_REASONS: ReadonlySet<DenyReason> = new Set(['bad_dpop_proof', 'dpop_required']);

export interface DecideDeps {
  routes: readonly CompiledRoute[];
  verifiers: AudienceVerifiers;
  exchanger: TokenExchanger | undefined;
  /** Decides routes' `require` rules (present when some route has them). */
  policies?: PolicyRules | undefined;
}

function tokenDenial(route: CompiledRoute, reason: DenyReason, description: string): Decision {
  const realm = route.config.audience ?? 'veil-gate';
  // RFC 6750 §3.1: a request without credentials gets a challenge with no error code.
  if (reason === 'missing') {
    return { kind: 'deny', status: 401, reason, route, challenge: { realm }, error: 'invalid_token', description: 'a Bearer access token is required' };
  }
  if (DPOP_REASONS.has(reason)) {
    const error = reason === 'bad_dpop_proof' ? 'invalid_dpop_proof' : 'invalid_token';
    return { kind: 'deny', status: 401, reason, route, challenge: { realm, error, description, scheme: 'DPoP' }, error, description };
  }
  return { kind: 'deny', status: 401, reason, route, challenge: { realm, error: 'invalid_token', description }, error: 'invalid_token', description };
}

/** What a DPoP proof must describe: the original request as the client made it. */
function dpopRequest(request: OriginalRequest): DPoPRequest {
  const proof = request.header?.('dpop');
  const url = /^https?:\/\//i.test(request.uri) ? request.uri : `${request.proto ?? 'https'}://${request.host}${request.uri}`;
  return { proof: typeof proof === 'string' ? proof : undefined, method: request.method, url };
}

function scopeDenial(route: CompiledRoute, needed: readonly string[], oneOf: boolean): Decision {
  const realm = route.config.audience ?? 'veil-gate';
  const scope = needed.join(' ');
  const description = oneOf ? `requires one of the scopes: ${scope}` : `requires the scopes: ${scope}`;
  return {
    kind: 'deny',
    status: 403,
    reason: 'insufficient_scope',
    route,
    challenge: { realm, error: 'insufficient_scope', description, scope },
    error: 'insufficient_scope',
    description,
  };
}

const VISIBLE_ASCII = /^[\x20-\x7e]*$/;

/** A claim as a header value: strings as they are, lists space-separated, objects as JSON; anything not printable ASCII percent-encoded (UTF-8). */
export function headerValue(value: unknown): string | undefined {
  let text: string;
  if (typeof value === 'string') text = value;
  else if (typeof value === 'number' || typeof value === 'boolean') text = String(value);
  else if (Array.isArray(value) && value.every((v) => typeof v === 'string' || typeof v === 'number')) text = value.join(' ');
  else if (typeof value === 'object' && value !== null) text = JSON.stringify(value);
  else return undefined;
  return VISIBLE_ASCII.test(text) ? text : encodeURIComponent(text);
}

function claimHeaders(route: CompiledRoute, token: VerifiedAccessToken): { headers: Record<string, string>; absent: string[] } {
  const headers: Record<string, string> = {};
  const absent: string[] = [];
  for (const [claim, header] of Object.entries(route.config.headers)) {
    const value = headerValue(token.claims[claim]);
    if (value === undefined || value === '') absent.push(header);
    else headers[header] = value;
  }
  return { headers, absent };
}

/** The route's scope rule: every one of `all`, at least one of `any`. */
function missingScopes(route: CompiledRoute, token: VerifiedAccessToken): Decision | undefined {
  const { all, any } = route.config.scopes ?? {};
  if (all?.some((s) => !token.scopes.includes(s))) return scopeDenial(route, all, false);
  if (any && !any.some((s) => token.scopes.includes(s))) return scopeDenial(route, any, true);
  return undefined;
}

function exchangeDecision(route: CompiledRoute, result: Exclude<ExchangeResult, { ok: true }>): Decision {
  switch (result.kind) {
    case 'subject_refused':
      // Veil says the subject token is not good (revoked, expired): the token's fault.
      return tokenDenial(route, 'revoked', 'the token is not active');
    case 'scope_refused':
      return scopeDenial(route, (route.config.exchange?.scope ?? '').split(' ').filter(Boolean), false);
    default:
      return { kind: 'unavailable', status: 503, reason: 'exchange_unavailable', route, detail: `token exchange failed: ${result.kind} (${result.error})` };
  }
}

export async function decide(deps: DecideDeps, request: OriginalRequest): Promise<Decision> {
  const path = normalizePath(request.uri);
  if (path === undefined) {
    return { kind: 'deny', status: 403, reason: 'ambiguous_path', route: undefined, challenge: undefined, error: 'access_denied', description: 'the request path is ambiguous' };
  }
  const match = matchRoute(deps.routes, request.method, request.host, path);
  if (!match.ok) {
    const description = match.reason === 'method_not_allowed' ? 'no route allows this method here' : 'no route allows this request';
    return { kind: 'deny', status: 403, reason: match.reason, route: undefined, challenge: undefined, error: 'access_denied', description };
  }
  const { route } = match;
  const { config } = route;
  if (config.public) {
    const kept = config.keepAuthorization ? request.authorization : undefined;
    return { kind: 'allow', route, headers: {}, absent: [], upstreamAuthorization: kept, reason: 'public' };
  }

  const authorization = request.authorization;
  const scheme = authorization && TOKEN_SCHEME.exec(authorization)?.[1];
  if (!authorization || !scheme) return tokenDenial(route, 'missing', '');
  const dpop = scheme.toLowerCase() === 'dpop';
  const token = authorization.replace(TOKEN_SCHEME, '').trim();
  if (token.length > MAX_TOKEN_LENGTH) return tokenDenial(route, 'oversized', 'the token is too large');
  if (!token || !B64TOKEN.test(token)) return tokenDenial(route, 'malformed', `the Authorization header must carry exactly one ${dpop ? 'DPoP' : 'Bearer'} token`);

  let verified: VerifiedAccessToken;
  try {
    verified = await deps.verifiers.get(config.audience!).verify(token, dpop ? dpopRequest(request) : undefined);
  } catch (err) {
    if (!(err instanceof VeilTokenError)) throw err;
    const reason = reasonOf(err);
    if (isUnavailable(reason)) return { kind: 'unavailable', status: 503, reason, route, detail: err.message };
    // A proof's failure is named by the SDK's code (dpop_replay, dpop_htu_mismatch, ...), as the SDK's middleware does.
    return tokenDenial(route, reason, reason === 'bad_dpop_proof' ? err.code : DESCRIPTIONS[reason]);
  }

  const scopeProblem = missingScopes(route, verified);
  if (scopeProblem) return scopeProblem;

  if (config.require) {
    if (!deps.policies) throw new Error('a route with require rules without a policy node');
    const outcome = await deps.policies.check(config.require, token, verified, { uri: request.uri, header: request.header ?? (() => undefined) });
    if (outcome.kind === 'unavailable') return { kind: 'unavailable', status: 503, reason: outcome.reason, route, detail: outcome.detail };
    if (outcome.kind === 'deny') {
      if (outcome.reason === 'revoked') return tokenDenial(route, 'revoked', outcome.description);
      return { kind: 'deny', status: outcome.status, reason: outcome.reason, route, challenge: undefined, error: outcome.error, description: outcome.description };
    }
  }

  const { headers, absent } = claimHeaders(route, verified);
  let upstreamAuthorization = config.keepAuthorization ? authorization : undefined;
  if (config.exchange) {
    // Veil refuses to exchange a bound token (it would come back a bearer token): said here, not as an outage.
    if (verified.claims.cnf) return tokenDenial(route, 'unsupported_token', 'a DPoP-bound token cannot be exchanged');
    if (!deps.exchanger) throw new Error('an exchange route without a token exchanger');
    const result = await deps.exchanger.exchange(token, { resource: config.exchange.resource, scope: config.exchange.scope });
    if (!result.ok) return exchangeDecision(route, result);
    upstreamAuthorization = `Bearer ${result.accessToken}`;
  }
  return { kind: 'allow', route, headers, absent, upstreamAuthorization, reason: 'ok' };
}

/** What a 401 says: the class of problem, never anything from the token. */
const DESCRIPTIONS: Record<TokenReason, string> = {
  malformed: 'the token is malformed',
  oversized: 'the token is too large',
  expired: 'the token has expired',
  not_yet_valid: 'the token is not valid yet',
  revoked: 'the token is not active',
  wrong_audience: 'the token is not for this API',
  wrong_issuer: 'the token is from another issuer',
  bad_signature: 'the token signature is invalid',
  undecryptable: 'the token cannot be decrypted',
  unsupported_token: 'the token is not a bearer access token',
  dpop_required: 'the token is DPoP-bound: send it with Authorization: DPoP and a DPoP proof',
  bad_dpop_proof: 'the DPoP proof is invalid, reused, or not for this request or key',
};
