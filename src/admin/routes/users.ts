/**
 * `/admin/users`: end-user accounts, addressed by id (`User.id`). `GET /admin/users?email=` finds
 * the id for an address; the CLI resolves `--email` through it.
 */
import type { Router } from '@koa/router';
import { toPublicAccount } from '../../accounts/account-service.js';
import { VeilError } from '../../errors/veil-error.js';
import { jsonBody } from '../../http/body.js';
import { createUserBody, emptyBody, usersQuery } from '../contract.js';
import { parse } from '../parse.js';
import type { AdminDeps } from '../server.js';

const noSuchUser = () => new VeilError('not_found', 'no such user');

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
    const user = await deps.accounts.create({ email: body.email, password: body.password, name: body.name, emailVerified: body.email_verified });
    ctx.status = 201;
    ctx.body = { user: toPublicAccount(user) };
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
