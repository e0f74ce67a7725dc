/**
 * Prometheus metrics. Each Veil owns its own registry (several Veils can run in one process, as
 * in the tests), served on the admin listener. Every label value comes from a bounded set:
 * route names, grant types, registered resource identifiers, fixed outcomes. Never a raw path
 * (interaction paths carry uids), a token, an account or an email.
 */
import type { Context, Middleware, Next } from 'koa';
import Provider, { type AccessToken, type ClientCredentials } from 'oidc-provider';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export type LoginOutcome = 'success' | 'failure' | 'locked';
export type ListenerName = 'public' | 'admin';
export type StoreName = 'postgres' | 'redis';

/** What oidc-provider exposes on a request it routed; absent on Veil's own routes. */
type RoutedContext = Context & { oidc?: { route?: string }; _matchedRoute?: string | RegExp };

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** A bounded name for the route a request hit. */
export function routeLabel(ctx: Context): string {
  const routed = ctx as RoutedContext;
  // oidc-provider defines `ctx.oidc` only on its own routes; its route names are fixed.
  if (Object.hasOwn(routed, 'oidc') && routed.oidc?.route) return routed.oidc.route;
  // @koa/router records the matched pattern (`/interaction/:uid/login`), not the path.
  if (typeof routed._matchedRoute === 'string') return routed._matchedRoute;
  if (ctx.path.startsWith('/interaction/')) return 'interaction';
  if (ctx.path.startsWith('/static/')) return 'static';
  return 'other';
}

/** The audience label: a registered resource identifier, or what the token is for without one. */
function audienceLabel(token: AccessToken | ClientCredentials): string {
  const resource = token.resourceServer?.identifier();
  if (resource) return resource;
  return token.kind === 'AccessToken' ? 'userinfo' : 'none';
}

function grantTypeLabel(token: AccessToken | ClientCredentials): string {
  // Only supported grant types get as far as issuing a token, so the parameter is bounded.
  const param = Provider.ctx?.oidc?.params?.grant_type;
  if (typeof param === 'string' && param) return param;
  if (token.kind === 'ClientCredentials') return 'client_credentials';
  // `gty` is the chain of grants behind the token ("authorization_code refresh_token").
  return token.gty?.split(' ').at(-1) ?? 'unknown';
}

export class Metrics {
  readonly registry = new Registry();
  readonly #tokens: Counter<'grant_type' | 'audience'>;
  readonly #logins: Counter<'outcome'>;
  readonly #requests: Histogram<'listener' | 'method' | 'route' | 'status'>;
  readonly #storeUp: Gauge<'store'>;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#tokens = new Counter({
      name: 'veil_tokens_issued_total',
      help: 'Access tokens issued, by grant type and audience (resource identifier, "userinfo" or "none").',
      labelNames: ['grant_type', 'audience'],
      registers,
    });
    this.#logins = new Counter({
      name: 'veil_logins_total',
      help: 'Password sign-in attempts, by outcome.',
      labelNames: ['outcome'],
      registers,
    });
    this.#requests = new Histogram({
      name: 'veil_http_request_duration_seconds',
      help: 'Time to handle an HTTP request, by listener, method, route name and status.',
      labelNames: ['listener', 'method', 'route', 'status'],
      registers,
    });
    this.#storeUp = new Gauge({
      name: 'veil_store_up',
      help: 'Whether a backing store answered the last readiness probe (1) or not (0).',
      labelNames: ['store'],
      registers,
    });
  }

  /** Called by the metrics subscriber of the domain events (events/subscribers/metrics.ts). */
  login(outcome: LoginOutcome): void {
    this.#logins.inc({ outcome });
  }

  storeUp(store: StoreName, up: boolean): void {
    this.#storeUp.set({ store }, up ? 1 : 0);
  }

  /** The store gauges from a readiness probe's checks. */
  storesProbed(checks: Record<StoreName, string>): void {
    for (const store of ['postgres', 'redis'] as const) this.storeUp(store, checks[store] !== 'down');
  }

  /**
   * Counts every access token oidc-provider issues. Each save emits exactly one event:
   * `*.saved` when the token is stored (opaque format), `*.issued` when it is not (JWT).
   * `AccessToken` covers authorization_code and refresh_token, `ClientCredentials` its grant.
   */
  countIssuedTokens(provider: Provider): void {
    const count = (token: AccessToken | ClientCredentials) => {
      this.#tokens.inc({ grant_type: grantTypeLabel(token), audience: audienceLabel(token) });
    };
    provider.on('access_token.saved', count);
    provider.on('access_token.issued', count);
    provider.on('client_credentials.saved', count);
    provider.on('client_credentials.issued', count);
  }

  /** Times every request; mount it before any other middleware of the listener. */
  httpMiddleware(listener: ListenerName): Middleware {
    return async (ctx: Context, next: Next) => {
      const stop = this.#requests.startTimer();
      let status: number | undefined;
      try {
        await next();
      } catch (err) {
        // Koa's own error handler answers with the error's status (500 without one).
        status = (err as { status?: number }).status ?? 500;
        throw err;
      } finally {
        stop({
          listener,
          method: METHODS.has(ctx.method) ? ctx.method : 'other',
          route: routeLabel(ctx),
          status: String(status ?? ctx.status),
        });
      }
    };
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
