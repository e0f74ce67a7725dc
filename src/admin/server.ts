/**
 * Admin HTTP API (its own listener; see docs/ADMIN_API.md). Bearer-token protected when
 * ADMIN_TOKEN is set. The CLI is a client of exactly this surface, so keep it stable.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { Router } from '@koa/router';
import Koa, { type Context, type Next } from 'koa';
import { errors } from 'oidc-provider';
import type { z } from 'zod';
import { createClientBody, createResourceBody, createUserBody, emailBody, toPublicResource } from './contract.js';
import { InvalidAccountInput, toPublicAccount, type AccountService } from '../accounts/account-service.js';
import { InvalidClientInput, type ClientService } from '../clients/client-service.js';
import { BadRequestBody, jsonBody } from '../http/body.js';
import { errorFields, type Logger } from '../observability/logger.js';
import { DuplicateAccountError } from '../store/accounts.js';
import type { ResourceServerRepository } from '../store/resource-servers.js';
import { StoreUnavailableError } from '../store/errors.js';

export interface AdminDeps {
  token: string | undefined;
  accounts: AccountService;
  clients: ClientService;
  resources: ResourceServerRepository;
  logger: Logger;
  defaultAccessTokenTtl: number;
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

function sameSecret(a: string, b: string): boolean {
  // Hash first so lengths match and timing does not reveal the token length.
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

export function createAdminApp(deps: AdminDeps): Koa {
  const app = new Koa();
  const router = new Router();
  const json = jsonBody();

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
      } else if (err instanceof InvalidAccountInput || err instanceof InvalidClientInput) {
        status = 400;
        body = { error: 'invalid_request', error_description: err.message };
      } else if (err instanceof DuplicateAccountError) {
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

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  // Everything under /admin requires the token when one is configured.
  router.use('/admin', async (ctx, next) => {
    if (deps.token) {
      const header = ctx.get('authorization');
      const presented = header.startsWith('Bearer ') ? header.slice(7) : '';
      if (!presented || !sameSecret(presented, deps.token)) {
        ctx.set('WWW-Authenticate', 'Bearer realm="veil-admin"');
        throw new AdminError(401, 'unauthorized', 'a valid admin bearer token is required');
      }
    }
    await next();
  });

  router.get('/admin/users', async (ctx) => {
    ctx.body = { users: (await deps.accounts.list()).map(toPublicAccount) };
  });

  router.post('/admin/users', json, async (ctx) => {
    const body = parse(createUserBody, ctx.request.body);
    const user = await deps.accounts.create({ email: body.email, password: body.password, name: body.name, emailVerified: body.email_verified });
    deps.logger.info({ event: 'user.created', accountId: user.id }, 'user created');
    ctx.status = 201;
    ctx.body = { user: toPublicAccount(user) };
  });

  for (const [action, disabled] of [['disable', true], ['enable', false]] as const) {
    router.post(`/admin/users/${action}`, json, async (ctx) => {
      const { email } = parse(emailBody, ctx.request.body);
      const user = await deps.accounts.setDisabled(email, disabled);
      if (!user) throw new AdminError(404, 'not_found', 'no user with this email');
      deps.logger.info({ event: `user.${action}d`, accountId: user.id }, `user ${action}d`);
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
    ctx.status = 201;
    ctx.body = created;
  });

  router.delete('/admin/clients/:clientId', async (ctx) => {
    if (!(await deps.clients.delete(ctx.params.clientId!))) throw new AdminError(404, 'not_found', 'no such client');
    deps.logger.info({ event: 'client.deleted', clientId: ctx.params.clientId }, 'client deleted');
    ctx.status = 204;
  });

  router.get('/admin/resources', async (ctx) => {
    ctx.body = { resources: (await deps.resources.list()).map(toPublicResource) };
  });

  router.post('/admin/resources', json, async (ctx) => {
    const body = parse(createResourceBody, ctx.request.body);
    if (await deps.resources.find(body.identifier)) throw new AdminError(409, 'conflict', 'a resource server with this identifier exists');
    const record = await deps.resources.create({
      identifier: body.identifier,
      name: body.name,
      scopes: [...new Set(body.scopes)],
      accessTokenTtl: body.access_token_ttl ?? deps.defaultAccessTokenTtl,
    });
    deps.logger.info({ event: 'resource.created', identifier: record.identifier }, 'resource server created');
    ctx.status = 201;
    ctx.body = { resource: toPublicResource(record) };
  });

  router.delete('/admin/resources/:identifier', async (ctx) => {
    if (!(await deps.resources.delete(ctx.params.identifier!))) throw new AdminError(404, 'not_found', 'no such resource server');
    deps.logger.info({ event: 'resource.deleted', identifier: ctx.params.identifier }, 'resource server deleted');
    ctx.status = 204;
  });

  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  return app;
}
