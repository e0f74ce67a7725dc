/** `/admin/resources`: resource servers (APIs), addressed by their identifier URI (one encoded path segment). */
import type { Router } from '@koa/router';
import { VeilError } from '../../errors/veil-error.js';
import { jsonBody } from '../../http/body.js';
import { createResourceBody, toPublicResource, updateResourceBody, type CreatedResource } from '../contract.js';
import { parse } from '../parse.js';
import type { AdminDeps } from '../server.js';

export function registerResourceRoutes(router: Router, deps: Pick<AdminDeps, 'registry' | 'clients' | 'defaultAccessTokenTtl'>): void {
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
      heClaims: body.he_claims,
      subjectMode: body.subject,
    });
    ctx.status = 201;
    ctx.body = { resource: toPublicResource(record), ...credentials } satisfies CreatedResource;
  });

  router.patch('/admin/resources/:identifier', json, async (ctx) => {
    const body = parse(updateResourceBody, ctx.request.body);
    let record = await deps.registry.find(ctx.params.identifier!);
    if (record && body.he_claims) record = (await deps.registry.setHeClaims(record.identifier, body.he_claims)) ?? null;
    // A subject mode change is refused (409) while tokens for the API may be live, unless forced.
    if (record && body.subject) record = (await deps.registry.update(record.identifier, { subjectMode: body.subject, force: body.force })) ?? null;
    if (!record) throw new VeilError('not_found', 'no such resource server');
    ctx.body = { resource: toPublicResource(record) };
  });

  router.delete('/admin/resources/:identifier', async (ctx) => {
    // Its clients no longer name it (so whoever registers the identifier later starts with none).
    const deleted = await deps.registry.delete(ctx.params.identifier!, (identifier) => deps.clients.forgetResource(identifier));
    if (!deleted) throw new VeilError('not_found', 'no such resource server');
    ctx.status = 204;
  });
}
