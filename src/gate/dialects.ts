/**
 * How each gateway says where the original request was going, and how the gate's answer is spelled
 * for it.
 *
 * nginx `auth_request` (https://nginx.org/en/docs/http/ngx_http_auth_request_module.html): a
 * subrequest to `/check` carrying the original request's headers (Authorization included), with
 * `X-Original-Method`, `X-Original-URI` and `X-Original-Host` set by the nginx configuration
 * (`proxy_set_header ... $request_method / $request_uri / $host`; set, so a client cannot supply
 * them). nginx acts on 2xx, 401 and 403 only (anything else becomes a 500 to the client) and copies
 * nothing by itself: the configuration copies the answer's headers with `auth_request_set`.
 *
 * Traefik ForwardAuth (https://doc.traefik.io/traefik/middlewares/http/forwardauth/): a GET to the
 * configured address (`/check/traefik`) with the original headers and `X-Forwarded-Method`,
 * `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Forwarded-Uri`, `X-Forwarded-For` (Traefik sets them
 * itself unless `trustForwardHeader`). A non-2xx answer goes to the client as it is (status,
 * headers, body). On a 2xx, each header listed in `authResponseHeaders` is deleted from the request
 * and set from the answer when the answer has it: so listing `Authorization` there removes the
 * incoming one unless the gate answers one.
 *
 * Envoy ext_authz, HTTP service
 * (https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/filters/http/ext_authz/v3/ext_authz.proto):
 * the check request has the original method, the original path (and query) appended to
 * `path_prefix` (`/check/envoy`), the original `:authority` as Host, and Authorization (sent by
 * default; other headers through `authorization_request.allowed_headers`), with an empty body. A
 * 200 lets the request through with the answer's headers matched by
 * `authorization_response.allowed_upstream_headers` set on it (overriding the client's), and the
 * names in `x-envoy-auth-headers-to-remove` removed
 * (https://www.envoyproxy.io/docs/envoy/latest/api-v3/service/auth/v3/external_auth.proto, OkHttpResponse.headers_to_remove);
 * any other status goes to the client with the headers `allowed_client_headers` lets through
 * (WWW-Authenticate by default).
 */
import type { IncomingMessage } from 'node:http';
import type { Decision, OriginalRequest } from './decide.js';
import type { Dialect } from './metrics.js';

export const CHECK_PATHS: Record<Dialect, string> = { nginx: '/check', traefik: '/check/traefik', envoy: '/check/envoy' };

/** The gateway's request could not say where the original request went: a 400 naming the header. */
export interface BadCheckRequest {
  missing: string;
  description: string;
}

const METHOD = /^[A-Z][A-Z-]{0,19}$/;
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::\d{1,5})?$/;

function one(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name.toLowerCase()];
  const text = Array.isArray(value) ? value[0] : value;
  return text?.trim() || undefined;
}

/** The original scheme, when the gateway says it (anything else: unsaid, and DPoP assumes https). */
function protoOf(req: IncomingMessage, name: string): { proto?: 'http' | 'https' } {
  const value = one(req, name)?.toLowerCase();
  return value === 'http' || value === 'https' ? { proto: value } : {};
}

function original(req: IncomingMessage, names: { method: string; uri: string; host: string; proto: string }): OriginalRequest | BadCheckRequest {
  const method = one(req, names.method);
  const uri = one(req, names.uri);
  const host = one(req, names.host);
  if (!method) return { missing: names.method, description: `the gateway sent no ${names.method} header` };
  if (!uri) return { missing: names.uri, description: `the gateway sent no ${names.uri} header` };
  if (!host) return { missing: names.host, description: `the gateway sent no ${names.host} header` };
  if (!METHOD.test(method)) return { missing: names.method, description: `${names.method} is not an HTTP method` };
  if (!HOST.test(host)) return { missing: names.host, description: `${names.host} must name one host` };
  return { method, host, uri, authorization: req.headers.authorization, header: (name) => req.headers[name], ...protoOf(req, names.proto) };
}

/** Where the original request went, from the check request of `dialect`. */
export function originalRequest(dialect: Dialect, req: IncomingMessage, target: string): OriginalRequest | BadCheckRequest {
  switch (dialect) {
    case 'nginx':
      return original(req, { method: 'X-Original-Method', uri: 'X-Original-URI', host: 'X-Original-Host', proto: 'X-Original-Proto' });
    case 'traefik':
      return original(req, { method: 'X-Forwarded-Method', uri: 'X-Forwarded-Uri', host: 'X-Forwarded-Host', proto: 'X-Forwarded-Proto' });
    case 'envoy': {
      // The original path follows the prefix; Envoy forwards the method and Host as they were.
      const uri = target.slice(CHECK_PATHS.envoy.length) || '/';
      const host = one(req, 'Host');
      if (!host) return { missing: 'Host', description: 'the gateway sent no Host header' };
      if (!HOST.test(host)) return { missing: 'Host', description: 'Host must name one host' };
      return {
        method: req.method ?? 'GET',
        host,
        uri: uri.startsWith('/') ? uri : `/${uri}`,
        authorization: req.headers.authorization,
        header: (name) => req.headers[name],
        ...protoOf(req, 'X-Forwarded-Proto'),
      };
    }
  }
}

export const isBadCheckRequest = (value: OriginalRequest | BadCheckRequest): value is BadCheckRequest => 'missing' in value;

export interface Answer {
  status: number;
  /** Every header of the answer, content-length included. */
  headers: Record<string, string>;
  body: string;
}

const quote = (value: string) => `"${value.replace(/["\\]/g, '\\$&')}"`;

function challenge(c: { realm: string; error?: string; description?: string; scope?: string; scheme?: 'DPoP' }): string {
  const params = [`realm=${quote(c.realm)}`];
  if (c.error) params.push(`error=${quote(c.error)}`);
  if (c.description) params.push(`error_description=${quote(c.description)}`);
  if (c.scope) params.push(`scope=${quote(c.scope)}`);
  return `${c.scheme ?? 'Bearer'} ${params.join(', ')}`;
}

/** Headers always sent with a JSON body; the body's length is added by `jsonAnswer`. */
function jsonAnswer(status: number, body: Record<string, string>, extra?: Record<string, string>): Answer {
  const text = JSON.stringify(body);
  const headers: Record<string, string> = { 'cache-control': 'no-store', 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) };
  if (extra) Object.assign(headers, extra);
  return { status, headers, body: text };
}

/** The header every dialect gets with the Authorization the upstream must carry (absent: none). */
export const UPSTREAM_AUTHORIZATION_HEADER = 'X-Veil-Authorization';

const UNAVAILABLE = { error: 'temporarily_unavailable', error_description: 'the authorization server cannot be reached' };

export function answerFor(dialect: Dialect, decision: Decision): Answer {
  if (decision.kind === 'deny') {
    const body = { error: decision.error, error_description: decision.description };
    return jsonAnswer(decision.status, body, decision.challenge && { 'www-authenticate': challenge(decision.challenge) });
  }
  if (decision.kind === 'unavailable') return jsonAnswer(503, UNAVAILABLE, { 'retry-after': '5' });

  // Built field by field, no spreads: this is the hot path of every allowed request.
  const headers: Record<string, string> = { 'cache-control': 'no-store', 'content-length': '0' };
  for (const name in decision.headers) headers[name] = decision.headers[name]!;
  const upstream = decision.upstreamAuthorization;
  if (upstream !== undefined) headers[UPSTREAM_AUTHORIZATION_HEADER] = upstream;
  if (dialect === 'traefik' && upstream !== undefined) {
    // With Authorization in authResponseHeaders, Traefik replaces the incoming one with this, or
    // deletes it when the answer has none.
    headers.Authorization = upstream;
  }
  if (dialect === 'envoy') {
    const remove = decision.absent.map((h) => h.toLowerCase());
    // Envoy keeps the client's Authorization unless told: replace it (allowed_upstream_headers)
    // with the exchanged token, leave it when the route keeps it, remove it otherwise.
    if (decision.route.config.exchange && upstream !== undefined) headers.authorization = upstream;
    else if (upstream === undefined) remove.push('authorization');
    if (remove.length) headers['x-envoy-auth-headers-to-remove'] = remove.join(', ');
  }
  return { status: 200, headers, body: '' };
}

export function badRequestAnswer(bad: BadCheckRequest): Answer {
  return jsonAnswer(400, { error: 'invalid_request', error_description: bad.description });
}
