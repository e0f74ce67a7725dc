/**
 * RFC 8707 resource indicators: the registry decides which audiences exist and what scopes
 * they accept, and each client's `allowed_resources` which of them it may ask for. Unknown,
 * malformed or not-allowed resource values are `invalid_target`.
 *
 * API scopes: oidc-provider grants, for a resource, only the scopes getResourceServerInfo
 * returns, and silently drops the rest. Veil returns the client's allow-list for that resource
 * (src/clients/api-scopes.ts, the one place that rule lives) and refuses, rather than drops,
 * any requested scope outside it: `invalid_scope`, before anything is issued. This runs for
 * every grant: at /auth (checkResource, after the redirect URI is validated, so the error goes
 * back to the client), and at /token for client_credentials and refresh_token (the `scope`
 * parameter). Authorization codes carry no `scope` parameter; their scopes were checked at /auth
 * and are intersected with the current allow-list again when the token is made.
 *
 * oidc-provider issues every token in its opaque format; tokens for a resource server are
 * sealed by the storage adapter (src/oidc/sealed-tokens.ts).
 *
 * Redemption: oidc-provider consumes a code, or rotates a refresh token, BEFORE it resolves the
 * resource and seals the access token; a refusal after that would cost the client its code or
 * refresh token, and its retry (a reuse) the whole grant. So everything that can refuse a
 * redemption runs first (`beforeRedemption`): which resource (one, and granted), the registry,
 * the scopes, and the resource server's encryption key (fetched now, cached for the seal).
 */
import Provider, { errors, type Client, type Configuration, type KoaContextWithOIDC, type ResourceServer } from 'oidc-provider';
import { allowedApiScopes } from '../clients/api-scopes.js';
import { ALLOWED_RESOURCES } from '../clients/client-service.js';
import type { ResourceServerRecord } from '../store/resource-servers.js';
import type { ResourceServerRegistry } from '../resource-registry/registry.js';
import type { EncryptionKeys } from '../resource-registry/encryption-keys.js';
import { toProtocolError } from './errors.js';

type ResourceIndicatorsFeature = NonNullable<NonNullable<Configuration['features']>['resourceIndicators']>;

export function allowedResources(client: Client): readonly string[] {
  const value = client.metadata()[ALLOWED_RESOURCES];
  return Array.isArray(value) ? (value as string[]) : [];
}

/** The `scope` parameter of this request, as scope tokens (none when it has no such parameter). */
function requestedScopes(ctx: KoaContextWithOIDC): string[] {
  const scope = (ctx.oidc?.params as { scope?: unknown } | undefined)?.scope;
  return typeof scope === 'string' ? [...new Set(scope.split(' ').filter(Boolean))] : [];
}

/** Every resource this request names (RFC 8707 allows several at /auth). */
function requestedResources(ctx: KoaContextWithOIDC, current: string): string[] {
  const param = (ctx.oidc?.params as { resource?: unknown } | undefined)?.resource;
  const named = Array.isArray(param) ? param : typeof param === 'string' ? [param] : [];
  return [...new Set([current, ...named.filter((r): r is string => typeof r === 'string')])];
}

const notAllowed = (scopes: string[]) => new errors.InvalidScope('requested scope is not allowed for this client and resource', scopes.join(' '));

/** What a code or refresh token was granted for (oidc-provider: none, one value, or an array of several). */
export interface RedemptionSource {
  resource?: unknown;
}

export interface ResourcePolicy {
  /** oidc-provider's `features.resourceIndicators`. */
  feature: ResourceIndicatorsFeature;
  /**
   * Every check that could refuse this refresh after rotation, run before it (see the module
   * comment). Called from `rotateRefreshToken`, while the refresh token is still unconsumed.
   */
  beforeRefresh(ctx: KoaContextWithOIDC): Promise<void>;
  /**
   * The same for an authorization code. oidc-provider has no hook between checking a code
   * (client, PKCE, redirect_uri) and consuming it, so the storage adapter calls this from its
   * consume(), inside the request (found through Provider.ctx).
   */
  beforeCodeConsumed(code: RedemptionSource): Promise<void>;
}

/** Where a resource server's encryption key comes from (resource-registry/encryption-keys.ts). */
export type ResourceKeys = Pick<EncryptionKeys, 'forResourceServer'>;

export function resourcePolicy(registry: ResourceServerRegistry, oidcScopes: readonly string[], keys: ResourceKeys): ResourcePolicy {
  const oidc = new Set(oidcScopes);

  const find = async (identifier: string): Promise<ResourceServerRecord | null> => {
    try {
      return await registry.find(identifier);
    } catch (err) {
      throw toProtocolError(err);
    }
  };

  /** A resource this client may use, as the registry has it now; invalid_target otherwise. */
  const resourceFor = async (client: Client, resourceIndicator: string): Promise<ResourceServerRecord> => {
    // One answer for "no such resource" and "not for this client": no probing the registry.
    const notForYou = () => new errors.InvalidTarget('the resource is unknown or not allowed for this client');
    if (!allowedResources(client).includes(resourceIndicator)) throw notForYou();
    const record = await find(resourceIndicator);
    if (!record) throw notForYou();
    return record;
  };

  /** Every API scope asked must be allowed for one of the resources this request names. */
  const assertScopesAllowed = async (ctx: KoaContextWithOIDC, client: Client, record: ResourceServerRecord, scopes: readonly string[]) => {
    const asked = requestedScopes(ctx).filter((s) => !oidc.has(s) && !scopes.includes(s));
    if (!asked.length) return;
    const elsewhere = new Set<string>();
    for (const other of requestedResources(ctx, record.identifier)) {
      if (other === record.identifier || !allowedResources(client).includes(other)) continue;
      const otherRecord = await find(other);
      if (otherRecord) for (const s of allowedApiScopes(client.metadata(), otherRecord)) elsewhere.add(s);
    }
    const refused = asked.filter((s) => !elsewhere.has(s));
    if (refused.length) throw notAllowed(refused);
  };

  const feature: ResourceIndicatorsFeature = {
    enabled: true,
    // A single requested resource is the default target when the token request names none.
    // With no resource at all, a request may ask for OIDC scopes only: an API scope without
    // its API is refused rather than dropped (oidc-provider would drop it).
    defaultResource: async (ctx, _client, oneOf) => {
      if (oneOf === undefined) {
        const apiScopes = requestedScopes(ctx).filter((s) => !oidc.has(s));
        if (apiScopes.length) throw notAllowed(apiScopes);
      }
      return oneOf;
    },
    useGrantedResource: async () => true,
    getResourceServerInfo: async (ctx, resourceIndicator, client): Promise<ResourceServer> => {
      const record = await resourceFor(client, resourceIndicator);
      const scopes = allowedApiScopes(client.metadata(), record);
      await assertScopesAllowed(ctx, client, record, scopes);
      return {
        audience: record.identifier,
        scope: scopes.join(' '),
        accessTokenTTL: record.accessTokenTtl,
        accessTokenFormat: 'opaque',
      };
    },
  };

  /**
   * The resource oidc-provider will issue for (lib/helpers/resolve_resource.js, with
   * useGrantedResource on): the `resource` parameter, else what was granted; an array goes
   * through defaultResource, and one still left is refused, as oidc-provider would refuse it.
   */
  const redemptionTarget = async (ctx: KoaContextWithOIDC, client: Client, source: RedemptionSource): Promise<string | undefined> => {
    const param = (ctx.oidc.params as { resource?: unknown }).resource;
    const granted = [source.resource ?? []].flat().filter((r): r is string => typeof r === 'string');
    let target: unknown = param ? param : granted.length ? source.resource : undefined;
    if (Array.isArray(target)) target = await feature.defaultResource!(ctx, client, target as string[]);
    if (Array.isArray(target)) {
      // RFC 8707 §2.2: one access token, one audience. Which of several APIs is the client's to
      // say; answering with none of them (a userinfo-only token) would fail later, at the API.
      throw new errors.InvalidTarget(
        param ? 'only a single resource indicator value must be requested' : 'this grant covers several resources: name the one wanted with the resource parameter',
      );
    }
    if (target === undefined || target === '') return undefined; // OIDC scopes only
    if (typeof target !== 'string' || !granted.includes(target)) throw new errors.InvalidTarget();
    return target;
  };

  /** The resource server's key, fetched now (jwks_uri) and cached for the seal; 503 when it cannot be had. */
  const assertKeyAvailable = async (record: ResourceServerRecord) => {
    try {
      await keys.forResourceServer(record);
    } catch (err) {
      throw toProtocolError(err); // EncryptionKeyError: 503 temporarily_unavailable
    }
  };

  const beforeRedemption = async (ctx: KoaContextWithOIDC, source: RedemptionSource | undefined) => {
    const client = ctx.oidc.client;
    if (!client || !source) return;
    const resource = await redemptionTarget(ctx, client, source);
    if (resource === undefined) return;
    const record = await resourceFor(client, resource);
    await assertScopesAllowed(ctx, client, record, allowedApiScopes(client.metadata(), record));
    await assertKeyAvailable(record);
  };

  return {
    feature,
    beforeRefresh: (ctx) => beforeRedemption(ctx, ctx.oidc.entities.RefreshToken),
    async beforeCodeConsumed(code) {
      const ctx = Provider.ctx;
      // Codes are consumed only by the token endpoint; anything else is none of this check's business.
      if (!ctx?.oidc || ctx.oidc.route !== 'token') return;
      await beforeRedemption(ctx, code);
    },
  };
}
