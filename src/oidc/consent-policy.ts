/**
 * oidc-provider's interaction policy plus one consent check of Veil's: a user's token for an API
 * carries the user claims that API is registered to receive (email, name: see extraTokenClaims),
 * whatever scopes it asks, so the user must have consented to that API before any token for it
 * is issued. oidc-provider's own checks only prompt for scopes the grant lacks; an API requested
 * with no new scope (or none at all) would otherwise receive personal data the user never saw.
 *
 * What was consented is Veil's own record (store/grants.ts `grant_api_consents`, one row per
 * grant and API with the claims shown), written by the confirm route (interactions/routes.ts):
 * oidc-provider's Grant keeps scopes only, and drops an API with no scope. The user is asked
 * again when the API has since been registered to receive more claims; extraTokenClaims
 * (configuration.ts) releases only consented claims.
 */
import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import type { ResourceServerRegistry } from '../resource-registry/registry.js';
import type { GrantRepository } from '../store/grants.js';
import { toProtocolError } from './errors.js';

/** Prompt details key: the APIs with user claims the grant does not cover yet. */
export const UNCONSENTED_APIS = 'unconsentedApis';

const pending = Symbol('unconsentedApis');
type WithPending = KoaContextWithOIDC['oidc'] & { [pending]?: string[] };

/** The requested APIs whose user claims this grant has not (all) been consented to. */
async function unconsentedApis(ctx: KoaContextWithOIDC, registry: ResourceServerRegistry, grants: GrantRepository): Promise<string[]> {
  const grantId = ctx.oidc.grant?.jti;
  const missing: string[] = [];
  try {
    for (const identifier of Object.keys(ctx.oidc.resourceServers ?? {})) {
      const record = await registry.find(identifier);
      if (!record?.claims.length) continue;
      const consented = grantId ? await grants.apiConsent(grantId, identifier) : undefined;
      if (!consented || record.claims.some((claim) => !consented.includes(claim))) missing.push(identifier);
    }
  } catch (err) {
    throw toProtocolError(err);
  }
  return missing;
}

export function consentPolicy(registry: ResourceServerRegistry, grants: GrantRepository): interactionPolicy.DefaultPolicy {
  const policy = interactionPolicy.base();
  policy.get('consent')!.checks.add(
    new interactionPolicy.Check(
      'rs_claims_unconsented',
      'an API that receives user claims was not consented to',
      async (ctx) => {
        const missing = await unconsentedApis(ctx, registry, grants);
        if (!missing.length) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
        (ctx.oidc as WithPending)[pending] = missing;
        return interactionPolicy.Check.REQUEST_PROMPT;
      },
      (ctx) => ({ [UNCONSENTED_APIS]: (ctx.oidc as WithPending)[pending] }),
    ),
  );
  return policy;
}
