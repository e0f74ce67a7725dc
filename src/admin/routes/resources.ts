/** `/admin/resources`: resource servers (APIs), addressed by their identifier URI (one encoded path segment). */
import type { Router } from '@koa/router';
import { VeilError } from '../../errors/veil-error.js';
import { jsonBody } from '../../http/body.js';
import { createResourceBody, toPublicResource, type CreatedResource } from '../contract.js';
import { parse } from '../parse.js';
import type { AdminDeps } from '../server.js';

export function registerResourceRoutes(router: Router, deps: Pick<AdminDeps, 'registry' | 'clients' | 'logger' | 'audit' | 'defaultAccessTokenTtl'>): void {
  const json = jsonBody();

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
    if (!(await deps.registry.delete(ctx.params.identifier!))) throw new VeilError('not_found', 'no such resource server');
    const clients = await deps.clients.forgetResource(ctx.params.identifier!);
    deps.logger.info({ event: 'resource.deleted', identifier: ctx.params.identifier, clients: clients.length }, 'resource server deleted');
    await deps.audit?.resourceDeleted(ctx.params.identifier!, clients);
    ctx.status = 204;
  });
}
