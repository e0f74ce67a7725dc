/**
 * Admin HTTP API (its own listener; see docs/ADMIN_API.md). Always bearer-token protected, behind
 * the Host/browser/JSON checks of ./guard.ts. The CLI is a client of exactly this surface, so keep
 * it stable.
 */
import { Router } from '@koa/router';
import Koa, { type Context, type Next } from 'koa';
import { errors } from 'oidc-provider';
import type { z } from 'zod';
import { AUDIT_LIMIT_DEFAULT, auditQuery, createClientBody, createResourceBody, createUserBody, emailBody, toPublicAuditEvent, toPublicResource, updateClientBody, type Consent, type CreatedResource } from './contract.js';
import type { AuditLog } from '../audit/audit-log.js';
import { InvalidAccountInput, toPublicAccount, type AccountService } from '../accounts/account-service.js';
import { InvalidClientInput, type ClientService } from '../clients/client-service.js';
import { BadRequestBody, jsonBody } from '../http/body.js';
import type { ReadinessReport } from '../observability/health.js';
import { errorFields, type Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { DuplicateAccountError } from '../store/accounts.js';
import { KeyFileError } from '../crypto/keys.js';
import type { GrantRevocation } from '../oidc/grant-revocation.js';
import { keysRoutes, type KeysRoutesDeps } from './keys-routes.js';
import { DuplicateResourceServer, InvalidResourceServer, type ResourceServerRegistry } from '../resource-registry/registry.js';
import type { GrantRepository } from '../store/grants.js';
import { StoreUnavailableError } from '../store/errors.js';
import { operationsRoutes } from './operations.js';
import { adminGuard } from './guard.js';

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
  /** Records admin changes and serves `GET /admin/audit` when given. */
  audit?: AuditLog | undefined;
  /** Serves the signing-key lifecycle under /admin/keys when given. */
  keys?: Pick<KeysRoutesDeps, 'keysDir' | 'envelope' | 'graceSeconds' | 'changed'> | undefined;
}

class AdminError extends Error {
  constructor(readonly status: number, readonly error: string, description: string) {
    super(description);
  }
}

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body ?? {});
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new AdminError(400, 'invalid_request', `${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  return result.data;
}

export function createAdminApp(deps: AdminDeps): Koa {
  const app = new Koa();
  const router = new Router();
  const json = jsonBody();

  if (deps.metrics) app.use(deps.metrics.httpMiddleware('admin'));
  app.use(async (ctx: Context, next: Next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw new AdminError(404, 'not_found', 'unknown route');
    } catch (err) {
      const e = err as { status?: number; expose?: boolean; message?: string; name?: string; error_description?: string };
      let status = 500;
      let body = { error: 'server_error', error_description: 'an unexpected error occurred' };
      if (err instanceof AdminError) {
        status = err.status;
        body = { error: err.error, error_description: err.message };
      } else if (err instanceof BadRequestBody) {
        status = err.status;
        body = { error: 'invalid_request', error_description: err.message };
      } else if (err instanceof errors.InvalidClientMetadata) {
        status = 400;
        body = { error: 'invalid_client_metadata', error_description: e.error_description ?? e.message ?? '' };
      } else if (err instanceof InvalidAccountInput || err instanceof InvalidClientInput || err instanceof InvalidResourceServer || err instanceof KeyFileError) {
        status = 400;
        body = { error: 'invalid_request', error_description: err.message };
      } else if (err instanceof DuplicateAccountError || err instanceof DuplicateResourceServer) {
        status = 409;
        body = { error: 'conflict', error_description: err.message };
      } else if (err instanceof StoreUnavailableError) {
        status = 503;
        body = { error: 'temporarily_unavailable', error_description: 'a backing store is unavailable' };
      } else if ((err as { code?: string }).code === 'P2002') {
        status = 409;
        body = { error: 'conflict', error_description: 'already exists' };
      } else if (e.expose && e.status && e.status < 500) {
        status = e.status;
        body = { error: 'invalid_request', error_description: e.message ?? 'invalid request' };
      }
      if (status >= 500) deps.logger.error({ err: errorFields(err), path: ctx.path }, 'admin request failed');
      ctx.status = status;
      ctx.body = body;
    }
  });

  // Before every route, the probes included (they skip only the token, and only on loopback).
  app.use(
    adminGuard({
      token: deps.token,
      hostAllowed: deps.hostAllowed,
      openProbes: deps.openProbes,
      refuse: (status, error, description) => new AdminError(status, error, description),
    }),
  );

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  app.use(operationsRoutes(deps));

  router.get('/admin/users', async (ctx) => {
    ctx.body = { users: (await deps.accounts.list()).map(toPublicAccount) };
  });

  router.post('/admin/users', json, async (ctx) => {
    const body = parse(createUserBody, ctx.request.body);
    const user = await deps.accounts.create({ email: body.email, password: body.password, name: body.name, emailVerified: body.email_verified });
    deps.logger.info({ event: 'user.created', accountId: user.id }, 'user created');
    await deps.audit?.userCreated(user.id);
    ctx.status = 201;
    ctx.body = { user: toPublicAccount(user) };
  });

  for (const [action, disabled] of [['disable', true], ['enable', false]] as const) {
    router.post(`/admin/users/${action}`, json, async (ctx) => {
      const { email } = parse(emailBody, ctx.request.body);
      const user = await deps.accounts.setDisabled(email, disabled);
      if (!user) throw new AdminError(404, 'not_found', 'no user with this email');
      deps.logger.info({ event: `user.${action}d`, accountId: user.id }, `user ${action}d`);
      await (disabled ? deps.audit?.userDisabled(user.id) : deps.audit?.userEnabled(user.id));
      ctx.body = { user: toPublicAccount(user) };
    });
  }

  router.get('/admin/clients', async (ctx) => {
    ctx.body = { clients: await deps.clients.list() };
  });

  router.post('/admin/clients', json, async (ctx) => {
    const body = parse(createClientBody, ctx.request.body);
    const created = await deps.clients.create(body);
    deps.logger.info({ event: 'client.created', clientId: created.client.client_id }, 'client created');
    await deps.audit?.clientCreated(created.client.client_id, { grantTypes: created.client.grant_types, authMethod: created.client.token_endpoint_auth_method });
    ctx.status = 201;
    ctx.body = created;
  });

  // Changes a client in place (validated like a create; a refused change changes nothing).
  router.patch('/admin/clients/:clientId', json, async (ctx) => {
    const body = parse(updateClientBody, ctx.request.body);
    const client = await deps.clients.update(ctx.params.clientId!, body);
    if (!client) throw new AdminError(404, 'not_found', 'no such client');
    deps.logger.info({ event: 'client.updated', clientId: client.client_id, fields: Object.keys(body) }, 'client updated');
    await deps.audit?.clientUpdated(client.client_id, {
      fields: Object.keys(body),
      scope: client.scope,
      resourceScopes: client.resource_scopes,
      grantTypes: client.grant_types,
    });
    ctx.body = { client };
  });

  router.delete('/admin/clients/:clientId', async (ctx) => {
    if (!(await deps.clients.delete(ctx.params.clientId!))) throw new AdminError(404, 'not_found', 'no such client');
    deps.logger.info({ event: 'client.deleted', clientId: ctx.params.clientId }, 'client deleted');
    await deps.audit?.clientDeleted(ctx.params.clientId!);
    ctx.status = 204;
  });

  router.get('/admin/resources', async (ctx) => {
    ctx.body = { resources: (await deps.registry.list()).map(toPublicResource) };
  });

  router.post('/admin/resources', json, async (ctx) => {
    const body = parse(createResourceBody, ctx.request.body);
    const { record, credentials } = await deps.registry.register({
      identifier: body.identifier,
      name: body.name,
      scopes: body.scopes,
      accessTokenTtl: body.access_token_ttl ?? deps.defaultAccessTokenTtl,
      jwk: body.jwk,
      jwksUri: body.jwks_uri,
      alg: body.alg,
      enc: body.enc,
      claims: body.claims,
    });
    deps.logger.info({ event: 'resource.created', identifier: record.identifier }, 'resource server created');
    await deps.audit?.resourceCreated(record.identifier, credentials.introspection_client_id);
    ctx.status = 201;
    ctx.body = { resource: toPublicResource(record), ...credentials } satisfies CreatedResource;
  });

  router.delete('/admin/resources/:identifier', async (ctx) => {
    if (!(await deps.registry.delete(ctx.params.identifier!))) throw new AdminError(404, 'not_found', 'no such resource server');
    const clients = await deps.clients.forgetResource(ctx.params.identifier!);
    deps.logger.info({ event: 'resource.deleted', identifier: ctx.params.identifier, clients: clients.length }, 'resource server deleted');
    await deps.audit?.resourceDeleted(ctx.params.identifier!, clients);
    ctx.status = 204;
  });

  if (deps.keys) {
    router.use(
      keysRoutes({
        ...deps.keys,
        badRequest: (message) => new AdminError(400, 'invalid_request', message),
        onRotated: async (key) => {
          deps.logger.info({ event: 'key.rotated', kid: key.kid, alg: key.alg }, 'signing key rotated');
          await deps.audit?.keyRotated(key.kid, key.alg, 'admin');
        },
        onRetired: async (kid) => {
          deps.logger.info({ event: 'key.retired', kid }, 'signing key retired');
          await deps.audit?.keyRetired(kid, 'admin');
        },
      }),
    );
  }

  // Consents (oidc-provider grants) of one user; withdrawing one ends every token issued under it.
  router.get('/admin/users/:id/consents', async (ctx) => {
    const grants = await deps.grants.listFor(ctx.params.id!);
    ctx.body = {
      consents: grants.map((g): Consent => ({ grant_id: g.id, client_id: g.clientId, created_at: g.createdAt.toISOString(), expires_at: g.expiresAt.toISOString() })),
    };
  });

  router.delete('/admin/users/:id/consents/:clientId', async (ctx) => {
    const withdrawn = await deps.grantRevocation.withdraw(ctx.params.id!, ctx.params.clientId!);
    if (!withdrawn) throw new AdminError(404, 'not_found', 'no consent of this user to this client');
    deps.logger.info({ event: 'consent.withdrawn', accountId: ctx.params.id, clientId: ctx.params.clientId }, 'consent withdrawn');
    await deps.audit?.consentWithdrawn(ctx.params.id!, ctx.params.clientId!, 'admin');
    ctx.status = 204;
  });

  // The audit trail, newest first (docs/ADMIN_API.md).
  router.get('/admin/audit', async (ctx) => {
    if (!deps.audit) throw new AdminError(404, 'not_found', 'the audit trail is not enabled');
    const q = parse(auditQuery, ctx.query);
    const events = await deps.audit.list({ since: q.since, until: q.until, type: q.type, limit: q.limit ?? AUDIT_LIMIT_DEFAULT });
    ctx.body = { events: events.map(toPublicAuditEvent) };
  });

  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  return app;
}
