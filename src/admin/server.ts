/**
 * Admin HTTP API (its own listener; see docs/ADMIN_API.md): app set-up only. Every request
 * passes the error renderer (./errors.ts), then the Host/browser/JSON/bearer-token guard
 * (./guard.ts), then the routes, one file per resource under ./routes. The CLI is a client of
 * exactly this surface (types in ./contract.ts), so keep it stable.
 */
import { Router } from '@koa/router';
import Koa from 'koa';
import type { AuditLog } from '../audit/audit-log.js';
import type { AccountService } from '../accounts/account-service.js';
import type { EventSink } from '../events/domain-events.js';
import type { ClientService } from '../clients/client-service.js';
import type { ReadinessReport } from '../observability/health.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { GrantRevocation } from '../oidc/grant-revocation.js';
import type { ResourceServerRegistry } from '../resource-registry/registry.js';
import type { GrantRepository } from '../store/grants.js';
import type { HePolicyService } from '../he/decisions/policies.js';
import { adminErrors } from './errors.js';
import { adminGuard } from './guard.js';
import { registerAuditRoutes } from './routes/audit.js';
import { registerClientRoutes } from './routes/clients.js';
import { registerConsentRoutes } from './routes/consents.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerKeyRoutes, type KeysRoutesDeps } from './routes/keys.js';
import { registerHeKeyRoutes, type HeKeysRoutesDeps } from './routes/he-keys.js';
import { registerResourceRoutes } from './routes/resources.js';
import { registerPolicyRoutes } from './routes/policies.js';
import { registerUserRoutes } from './routes/users.js';

export interface AdminDeps {
  /** ADMIN_TOKEN / ADMIN_TOKEN_FILE or the generated KEYS_DIR/admin-token: there is always one. */
  token: string;
  /** Whether a Host header names this listener (guard.ts `hostMatcher`, built once the port is known). */
  hostAllowed: (host: string) => boolean;
  /** Probes without the token: only when the listener is bound to loopback. */
  openProbes: boolean;
  accounts: AccountService;
  clients: ClientService;
  registry: ResourceServerRegistry;
  grants: GrantRepository;
  grantRevocation: GrantRevocation;
  logger: Logger;
  defaultAccessTokenTtl: number;
  /** Serves `GET /metrics` and times admin requests when given. */
  metrics?: Metrics | undefined;
  /** Serves `GET /readyz` when given. */
  readiness?: (() => Promise<ReadinessReport>) | undefined;
  /** Serves `GET /admin/audit` when given (rows are written by the domain events' audit subscriber). */
  audit?: Pick<AuditLog, 'list'> | undefined;
  /** Where the routes that change things without a service (consent withdrawal, keys) say so. */
  events: EventSink;
  /** Serves the signing-key lifecycle under /admin/keys when given. */
  keys?: KeysRoutesDeps | undefined;
  /** Serves the Paillier keys of confidential claims under /admin/keys/he when given. */
  heKeys?: HeKeysRoutesDeps | undefined;
  /** Serves confidential-claim policies under /admin/policies when given. */
  policies?: HePolicyService | undefined;
}

export function createAdminApp(deps: AdminDeps): Koa {
  const app = new Koa();
  const router = new Router();

  if (deps.metrics) app.use(deps.metrics.httpMiddleware('admin'));
  app.use(adminErrors(deps.logger));
  // Before every route, the probes included (they skip only the token, and only on loopback).
  app.use(adminGuard({ token: deps.token, hostAllowed: deps.hostAllowed, openProbes: deps.openProbes }));

  registerHealthRoutes(router, deps);
  registerUserRoutes(router, deps);
  registerConsentRoutes(router, deps);
  registerClientRoutes(router, deps);
  registerResourceRoutes(router, deps);
  if (deps.heKeys) registerHeKeyRoutes(router, deps.heKeys, deps);
  if (deps.keys) registerKeyRoutes(router, deps.keys, deps);
  registerAuditRoutes(router, deps);
  if (deps.policies) registerPolicyRoutes(router, { policies: deps.policies });

  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  return app;
}
