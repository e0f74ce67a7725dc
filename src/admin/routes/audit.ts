/** `GET /admin/audit`: the audit trail, newest first (docs/ADMIN_API.md). */
import type { Router } from '@koa/router';
import { VeilError } from '../../errors/veil-error.js';
import { AUDIT_LIMIT_DEFAULT, auditQuery, toPublicAuditEvent } from '../contract.js';
import { parse } from '../parse.js';
import type { AdminDeps } from '../server.js';

export function registerAuditRoutes(router: Router, deps: Pick<AdminDeps, 'audit'>): void {
  router.get('/admin/audit', async (ctx) => {
    if (!deps.audit) throw new VeilError('not_found', 'the audit trail is not enabled');
    const q = parse(auditQuery, ctx.query);
    const events = await deps.audit.list({ since: q.since, until: q.until, type: q.type, limit: q.limit ?? AUDIT_LIMIT_DEFAULT });
    ctx.body = { events: events.map(toPublicAuditEvent) };
  });
}
