/**
 * The public app for one set of signing keys: oidc-provider configured for Veil, with Veil's
 * middleware around its routes, outermost first:
 *   metrics -> error boundary -> security headers -> 404 page -> demo callback -> stylesheet
 *   -> JWKS cache headers -> client throttle -> interactions, account pages -> token edge,
 *   introspection, revocation -> oidc-provider's routes
 * oidc-provider reads its keys once, so a key rotation builds a new one (provider-host.ts).
 */
import type { EventEmitter } from 'node:events';
import type { Context, Next } from 'koa';
import Provider, { type Adapter } from 'oidc-provider';
import { clientRateLimit } from '../abuse/client-throttle.js';
import type { SigningJwk } from '../crypto/keys.js';
import { errorBoundary } from '../http/error-boundary.js';
import { jwksPolicy, safeRemoteJWKSet } from '../http/remote-jwks.js';
import { jwksCacheHeaders } from '../http/jwks-cache.js';
import { notFound } from '../http/not-found.js';
import { securityHeaders } from '../http/security-headers.js';
import { statusListRoute } from '../status-list/route.js';
import { accountRoutes } from '../interactions/account-routes.js';
import { demoCallbackRoute } from '../interactions/demo.js';
import { interactionRoutes } from '../interactions/routes.js';
import type { Views } from '../interactions/views.js';
import { errorFields } from '../observability/logger.js';
import type { Services } from '../services.js';
import { buildConfiguration } from './configuration.js';
import type { ResourcePolicy } from './resource-indicators.js';
import type { Liveness } from './introspection.js';
import { TOKEN_EXCHANGE_GRANT_TYPE, TOKEN_EXCHANGE_PARAMETERS, TOKEN_EXCHANGE_REPEATABLE, tokenExchangeGrant, tokenExchangeOutcome } from './token-exchange.js';
import { mountTokenEndpoints, type KeyBoundTokenServices } from './token-services.js';
import { mountHeDecisions } from '../he/decisions/mount.js';
import { heJwksRoute } from '../he/he-jwks-route.js';

/**
 * A grant type added to the token endpoint (`registerGrantType`): its access tokens are sealed by
 * the token edge like every other grant's, with nothing added for them.
 */
export interface GrantRegistration {
  type: string;
  handler: Parameters<Provider['registerGrantType']>[1];
  parameters?: string[];
}

export interface PublicProviderParts {
  signingKeys: SigningJwk[];
  grants: readonly GrantRegistration[];
  keyBound: KeyBoundTokenServices;
  adapter: (model: string) => Adapter;
  resources: ResourcePolicy;
}

/** The model a token request redeems, by grant type (the audit's `kind`). */
const REDEEMED_MODEL: Record<string, string> = { authorization_code: 'AuthorizationCode', refresh_token: 'RefreshToken' };

function stylesheet(views: Views) {
  return async (ctx: Context, next: Next) => {
    if (ctx.path !== '/static/veil.css') {
      await next();
      return;
    }
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.set('ETag', views.stylesheet.etag);
    ctx.type = 'text/css';
    if (ctx.get('if-none-match') === views.stylesheet.etag) {
      ctx.status = 304;
      return;
    }
    ctx.body = views.stylesheet.body;
  };
}

export function buildPublicProvider(services: Services, parts: PublicProviderParts): Provider {
  const { config, logger, events, metrics, views, repos, accounts, tokens, throttles, demo } = services;
  const provider = new Provider(
    config.issuer,
    buildConfiguration({
      config,
      adapter: parts.adapter,
      findAccount: accounts.findAccount,
      signingKeys: parts.signingKeys,
      cookieKeys: services.cookieKeys,
      grants: repos.grants,
      registry: tokens.registry,
      resources: parts.resources,
      views,
      subjects: tokens.subjects,
      statuses: tokens.statusLists?.statuses,
    }),
  );
  // RFC 8693 token exchange (token-exchange.ts) is always there; `StartOptions.grants` add more.
  const accountActive = async (accountId: string) => (await accounts.profile(accountId)) !== undefined;
  // Whether a subject token still stands: introspection's rules, over the same caches.
  const liveness: Liveness = { grants: repos.grants, clientExists: async (clientId) => (await provider.Client.find(clientId)) !== undefined, accountActive };
  provider.registerGrantType(
    TOKEN_EXCHANGE_GRANT_TYPE,
    tokenExchangeGrant({ registry: tokens.registry, tokens: parts.keyBound.tokenLookup, liveness }),
    new Set(TOKEN_EXCHANGE_PARAMETERS),
    new Set(TOKEN_EXCHANGE_REPEATABLE),
  );
  for (const grant of parts.grants) provider.registerGrantType(grant.type, grant.handler, grant.parameters ? new Set(grant.parameters) : undefined);
  // TRUST_PROXY: Koa takes the scheme (so cookies get Secure) and host from X-Forwarded-Proto
  // and -Host, and the client address from the last X-Forwarded-For entry: the one proxy in front.
  provider.proxy = config.trustProxy;
  if (config.trustProxy) provider.maxIpsCount = 1;
  provider.on('server_error', (ctx, err) => {
    logger.error({ err: errorFields(err), path: ctx.path }, 'server error');
  });
  // At /token, oidc-provider revokes a grant only when a consumed code or refresh token is
  // presented again (the concurrent cases are the adapter's and the token edge's onReuse).
  provider.on('grant.revoked', (ctx, grantId) => {
    const model = ctx.oidc?.route === 'token' ? REDEEMED_MODEL[String(ctx.oidc.params?.grant_type)] : undefined;
    if (!model) return;
    void events.emit({ type: 'token.reused', model, clientId: ctx.oidc.client?.clientId, grantId, concurrent: false });
  });
  // Koa's own last resort (errors no handler answered) would print a whole stack to stderr,
  // past redaction: through the logger instead.
  (provider as unknown as EventEmitter).on('error', (err: unknown, ctx?: { path?: string }) => {
    logger.error({ err: errorFields(err), path: ctx?.path }, 'request failed');
  });
  metrics.countIssuedTokens(provider);
  provider.use(metrics.httpMiddleware('public')); // first, so it times everything below
  provider.use(errorBoundary(views, logger)); // what escapes every handler below, in the protocol's format
  provider.use(securityHeaders(config.issuer));
  provider.use(notFound(views));
  if (demo) provider.use(demoCallbackRoute(config.issuer, demo, views));
  provider.use(stylesheet(views));
  provider.use(jwksCacheHeaders(config.keysReloadSeconds));
  // GET /status-lists/<id>: public, cacheable, answered before any client throttle.
  if (parts.keyBound.statusListRenderer) provider.use(statusListRoute(parts.keyBound.statusListRenderer));
  // GET /he/jwks (he_jwks_uri): the public Paillier keys, public and cacheable like /jwks.
  provider.use(heJwksRoute(() => services.he.keys, config.keysReloadSeconds));
  provider.use(clientRateLimit(throttles.tokens, (err) => throttles.failed(err)));
  const common = { provider, accounts, grants: repos.grants, resources: repos.resources, views, logger, events };
  for (const mw of interactionRoutes({ ...common, loginThrottle: throttles.login })) provider.use(mw);
  for (const mw of accountRoutes({ ...common, issuer: config.issuer, grantRevocation: tokens.grantRevocation, csrfSecret: services.cookieKeys[0]! })) provider.use(mw);
  // Outside the token edge, so it sees an exchange once the new token is sealed (token-exchange.ts).
  provider.use(tokenExchangeOutcome(events));
  mountTokenEndpoints(provider, tokens, parts.keyBound, {
    issuer: config.issuer,
    shortLived: services.shortLived,
    grants: repos.grants,
    accountActive,
    // private_key_jwt clients' jwks_uri at Veil's endpoints: the same SSRF rules as everywhere.
    clientKeySet: (url) => safeRemoteJWKSet(url, jwksPolicy(config)),
    // Fields named one by one: whatever else a hook's argument carries never reaches the log.
    onRevoked: ({ clientId, kind, grantId }) => void events.emit({ type: 'token.revoked', clientId, kind, grantId }),
    onReuse: ({ model, clientId, grantId }) => void events.emit({ type: 'token.reused', model, clientId, grantId, concurrent: true }),
  });
  // POST /he/decide and /he/aggregate: nodes' blinded decisions and aggregates (he/decisions/).
  // The ring is read at each request: a rotation replaces services.he's keys.
  mountHeDecisions(provider, {
    services,
    keys: { active: () => services.he.keys.active(), secret: (kid) => services.he.keys.secret(kid) },
    signingKeys: parts.signingKeys,
    tokens: parts.keyBound.tokenLookup,
    liveness,
    clientKeySet: (url) => safeRemoteJWKSet(url, jwksPolicy(config)),
  });
  return provider;
}
