/** `/admin/clients`: OAuth clients, addressed by `client_id`. */
import type { Router } from '@koa/router';
import { VeilError } from '../../errors/veil-error.js';
import { jsonBody } from '../../http/body.js';
import { createClientBody, updateClientBody } from '../contract.js';
import { parse } from '../parse.js';
import type { AdminDeps } from '../server.js';

const noSuchClient = () => new VeilError('not_found', 'no such client');

export function registerClientRoutes(router: Router, deps: Pick<AdminDeps, 'clients'>): void {
  const json = jsonBody();

  router.get('/admin/clients', async (ctx) => {
    ctx.body = { clients: await deps.clients.list() };
  });

  router.post('/admin/clients', json, async (ctx) => {
    const body = parse(createClientBody, ctx.request.body);
    const created = await deps.clients.create(body);
    ctx.status = 201;
    ctx.body = created;
  });

  // Changes a client in place (validated like a create; a refused change changes nothing).
  router.patch('/admin/clients/:clientId', json, async (ctx) => {
    const body = parse(updateClientBody, ctx.request.body);
    const client = await deps.clients.update(ctx.params.clientId!, body);
    if (!client) throw noSuchClient();
    ctx.body = { client };
  });

  router.delete('/admin/clients/:clientId', async (ctx) => {
    if (!(await deps.clients.delete(ctx.params.clientId!))) throw noSuchClient();
    ctx.status = 204;
  });
}
