/**
 * Which route a request falls under: routes are tried in file order and the first whose host,
 * path (prefix or pattern) and method match wins. Nothing matched is a refusal; when some route
 * matched host and path but not the method, the refusal says `method_not_allowed`.
 *
 * Paths are compared in one normal form, so a gateway and the gate cannot disagree about which
 * route a request is for: the query is cut, percent-escapes decoded once and repeated slashes
 * merged. An encoded slash, backslash or NUL, a second level of encoding, or any `.` or `..`
 * segment is refused (`ambiguous_path`): an upstream may read it differently from the gate.
 */
import type { GateRouteConfig } from './config.js';

export interface CompiledRoute {
  config: GateRouteConfig;
  name: string;
  matchesHost(host: string): boolean;
  matchesPath(path: string): boolean;
  allows(method: string): boolean;
}

export type RouteMatch = { ok: true; route: CompiledRoute } | { ok: false; reason: 'no_route' | 'method_not_allowed' };

function hostMatcher(pattern: string | undefined): (host: string) => boolean {
  if (pattern === undefined) return () => true;
  const wanted = pattern.toLowerCase();
  const withPort = /:\d+$/.test(wanted);
  if (wanted.startsWith('*.')) {
    const suffix = wanted.slice(1); // ".example.com"
    return (host) => {
      const h = withPort ? host : stripPort(host);
      return h.endsWith(suffix) && h.length > suffix.length;
    };
  }
  return (host) => (withPort ? host : stripPort(host)) === wanted;
}

/** `Host` without its port; IPv6 literals keep their brackets. */
export function stripPort(host: string): string {
  const m = /^(\[[^\]]*\]|[^:]*)(?::\d*)?$/.exec(host);
  return m ? m[1]! : host;
}

function pathMatcher(config: GateRouteConfig): (path: string) => boolean {
  if (config.pattern !== undefined) {
    const re = new RegExp(`^(?:${config.pattern})$`);
    return (path) => re.test(path);
  }
  const prefix = config.path;
  if (prefix === undefined) return () => true;
  return (path) => path.startsWith(prefix);
}

export function compileRoutes(routes: readonly GateRouteConfig[]): CompiledRoute[] {
  return routes.map((config) => {
    const methods = config.methods && new Set<string>(config.methods);
    return {
      config,
      name: config.name,
      matchesHost: hostMatcher(config.host),
      matchesPath: pathMatcher(config),
      allows: (method: string) => !methods || methods.has(method),
    };
  });
}

export function matchRoute(routes: readonly CompiledRoute[], method: string, host: string, path: string): RouteMatch {
  let sawMethodMismatch = false;
  const h = host.toLowerCase();
  for (const route of routes) {
    if (!route.matchesHost(h) || !route.matchesPath(path)) continue;
    if (route.allows(method)) return { ok: true, route };
    sawMethodMismatch = true;
  }
  return { ok: false, reason: sawMethodMismatch ? 'method_not_allowed' : 'no_route' };
}

/**
 * A path with a `.` or `..` segment is refused, not resolved: the upstream behind the gateway may
 * resolve it differently (RFC 3986 keeps empty segments, so `/a//../b` is `/a/b` there but `/b`
 * after merging slashes), and then the gate would judge another route than the one served.
 */
function withoutDotSegments(path: string): string | undefined {
  return path.split('/').some((segment) => segment === '.' || segment === '..') ? undefined : path;
}

/**
 * The path of a request target (`/orders/1?x=y`, or an absolute URI) in the normal form routes
 * are matched against, or undefined when it has none.
 */
export function normalizePath(target: string): string | undefined {
  let raw = target;
  if (!raw.startsWith('/')) {
    // absolute-form (RFC 9112 §3.2.2), as some gateways forward it
    if (!/^https?:\/\//i.test(raw) || !URL.canParse(raw)) return undefined;
    const url = new URL(raw);
    raw = url.pathname + url.search;
  }
  const cut = raw.search(/[?#]/);
  const encoded = cut === -1 ? raw : raw.slice(0, cut);
  // Already in normal form (the common case): nothing to decode, merge or resolve.
  // eslint-disable-next-line no-control-regex -- control characters send a path down the slow path
  if (!/[%\\\0-\x1f\x7f]|\/\.|\/\//.test(encoded)) return encoded;
  // An escape for a separator, a backslash or NUL means another reading of the same path.
  if (/%(2f|5c|00)/i.test(encoded)) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(encoded);
  } catch {
    return undefined;
  }
  // A second level of encoding (%252e) or characters no gateway should pass on.
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (/%[0-9a-f]{2}/i.test(decoded) || /[\\\0-\x1f\x7f]/.test(decoded)) return undefined;
  return withoutDotSegments(decoded)?.replace(/\/{2,}/g, '/');
}
