/** `/admin/users/:id/consents`: a user's consents (oidc-provider grants); withdrawing one ends every token issued under it. */
import type { Router } from '@koa/router';
import { VeilError } from '../../errors/veil-error.js';
import type { Consent } from '../contract.js';
import type { AdminDeps } from '../server.js';

export function registerConsentRoutes(router: Router, deps: Pick<AdminDeps, 'grants' | 'grantRevocation' | 'events'>): void {
  router.get('/admin/users/:id/consents', async (ctx) => {
    const grants = await deps.grants.listFor(ctx.params.id!);
    ctx.body = {
      consents: grants.map((g): Consent => ({ grant_id: g.id, client_id: g.clientId, created_at: g.createdAt.toISOString(), expires_at: g.expiresAt.toISOString() })),
    };
  });

  router.delete('/admin/users/:id/consents/:clientId', async (ctx) => {
    const withdrawn = await deps.grantRevocation.withdraw(ctx.params.id!, ctx.params.clientId!);
    if (!withdrawn) throw new VeilError('not_found', 'no consent of this user to this client');
    await deps.events.emit({ type: 'consent.withdrawn', accountId: ctx.params.id!, clientId: ctx.params.clientId!, actor: 'admin', grants: withdrawn });
    ctx.status = 204;
  });
}
