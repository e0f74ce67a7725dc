/**
 * `/admin/policies`: confidential-claim policies (src/he/decisions/policies.ts), addressed by id.
 * The request schema lives here, beside its one route, and the CLI imports its types.
 */
import type { Router } from '@koa/router';
import { z } from 'zod';
import { VeilError } from '../../errors/veil-error.js';
import { jsonBody } from '../../http/body.js';
import { toPublicPolicy, type HePolicyService, type PublicPolicy } from '../../he/decisions/policies.js';
import { parse } from '../parse.js';

export type { PublicPolicy as Policy };

export const createPolicyBody = z.object({
  id: z.string().max(64).optional(),
  node: z.string().min(1).max(256),
  claim: z.string().min(1).max(100),
  kind: z.enum(['decision', 'aggregate']).default('decision'),
  op: z.enum(['gte', 'lte', 'gt', 'lt', 'sum']),
  purpose: z.string().min(1).max(200),
});
/** What a thin client sends (the kind may be left out: decision). */
export type CreatePolicyRequest = z.input<typeof createPolicyBody>;

const policiesQuery = z.object({ node: z.string().max(256).optional() });

export function registerPolicyRoutes(router: Router, deps: { policies: HePolicyService }): void {
  const json = jsonBody();

  router.get('/admin/policies', async (ctx) => {
    const { node } = parse(policiesQuery, ctx.query);
    ctx.body = { policies: (await deps.policies.list(node)).map(toPublicPolicy) };
  });

  router.post('/admin/policies', json, async (ctx) => {
    const body = parse(createPolicyBody, ctx.request.body);
    ctx.status = 201;
    ctx.body = { policy: toPublicPolicy(await deps.policies.create(body)) };
  });

  router.delete('/admin/policies/:id', async (ctx) => {
    if (!(await deps.policies.delete(ctx.params.id!))) throw new VeilError('not_found', 'no such policy');
    ctx.status = 204;
  });
}
