/** `/admin/clients`: OAuth clients, addressed by `client_id`. */
import type { Router } from '@koa/router';
import { VeilError } from '../../errors/veil-error.js';
import { jsonBody } from '../../http/body.js';
import { createClientBody, updateClientBody } from '../contract.js';
import { parse } from '../parse.js';
import type { AdminDeps } from '../server.js';

const noSuchClient = () => new VeilError('not_found', 'no such client');

export function registerClientRoutes(router: Router, deps: Pick<AdminDeps, 'clients' | 'logger' | 'audit'>): void {
  const json = jsonBody();

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
    if (!client) throw noSuchClient();
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
    if (!(await deps.clients.delete(ctx.params.clientId!))) throw noSuchClient();
    deps.logger.info({ event: 'client.deleted', clientId: ctx.params.clientId }, 'client deleted');
    await deps.audit?.clientDeleted(ctx.params.clientId!);
    ctx.status = 204;
  });
}
