/**
 * `/admin/users`: end-user accounts, addressed by id (`User.id`). `GET /admin/users?email=` finds
 * the id for an address; the CLI resolves `--email` through it.
 */
import type { Router } from '@koa/router';
import { toPublicAccount, type AccountAttributes } from '../../accounts/account-service.js';
import { attributesJson } from '../../accounts/attributes.js';
import { VeilError } from '../../errors/veil-error.js';
import { jsonBody } from '../../http/body.js';
import { createUserBody, emptyBody, setAttributeBody, usersQuery, type UserAttributes } from '../contract.js';
import { parse } from '../parse.js';
import type { AdminDeps } from '../server.js';

const noSuchUser = () => new VeilError('not_found', 'no such user');
const attributesBody = (a: AccountAttributes): UserAttributes => ({ attributes: attributesJson(a.stored), derived: attributesJson(a.derived) });

export function registerUserRoutes(router: Router, deps: Pick<AdminDeps, 'accounts'>): void {
  const json = jsonBody();

  router.get('/admin/users', async (ctx) => {
    const { email } = parse(usersQuery, ctx.query);
    if (email !== undefined) {
      const user = await deps.accounts.findByEmail(email);
      ctx.body = { users: user ? [toPublicAccount(user)] : [] };
      return;
    }
    ctx.body = { users: (await deps.accounts.list()).map(toPublicAccount) };
  });

  router.get('/admin/users/:id', async (ctx) => {
    const user = await deps.accounts.get(ctx.params.id!);
    if (!user) throw noSuchUser();
    ctx.body = { user: toPublicAccount(user) };
  });

  router.post('/admin/users', json, async (ctx) => {
    const body = parse(createUserBody, ctx.request.body);
    const user = await deps.accounts.create({ email: body.email, password: body.password, name: body.name, emailVerified: body.email_verified, attributes: body.attributes });
    ctx.status = 201;
    ctx.body = { user: toPublicAccount(user) };
  });

  // Attributes: values only here, for the operator; a refused value changes nothing.
  router.get('/admin/users/:id/attributes', async (ctx) => {
    const attributes = await deps.accounts.attributes(ctx.params.id!);
    if (!attributes) throw noSuchUser();
    ctx.body = attributesBody(attributes);
  });

  router.put('/admin/users/:id/attributes/:name', json, async (ctx) => {
    const { value } = parse(setAttributeBody, ctx.request.body);
    const attributes = await deps.accounts.setAttribute(ctx.params.id!, ctx.params.name!, value);
    if (!attributes) throw noSuchUser();
    ctx.body = attributesBody(attributes);
  });

  router.delete('/admin/users/:id/attributes/:name', async (ctx) => {
    const deleted = await deps.accounts.deleteAttribute(ctx.params.id!, ctx.params.name!);
    if (deleted === null) throw noSuchUser();
    if (!deleted) throw new VeilError('not_found', 'the user has no such attribute');
    ctx.status = 204;
  });

  for (const [action, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    router.post(`/admin/users/:id/${action}`, json, async (ctx) => {
      parse(emptyBody, ctx.request.body);
      const user = await deps.accounts.setDisabled(ctx.params.id!, disabled);
      if (!user) throw noSuchUser();
      ctx.body = { user: toPublicAccount(user) };
    });
  }
}
