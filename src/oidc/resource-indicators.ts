/**
 * RFC 8707 resource indicators: the registry decides which audiences exist and what scopes
 * they accept, and each client's `allowed_resources` which of them it may ask for. Unknown,
 * malformed or not-allowed resource values are `invalid_target`.
 *
 * oidc-provider issues every token in its opaque format; tokens for a resource server are
 * sealed by the storage adapter (src/oidc/sealed-tokens.ts).
 */
import { errors, type Client, type Configuration, type ResourceServer } from 'oidc-provider';
import { ALLOWED_RESOURCES } from '../clients/client-service.js';
import type { ResourceServerRegistry } from '../resource-servers/registry.js';
import { toProtocolError } from './errors.js';

type ResourceIndicatorsFeature = NonNullable<NonNullable<Configuration['features']>['resourceIndicators']>;

export function allowedResources(client: Client): readonly string[] {
  const value = client.metadata()[ALLOWED_RESOURCES];
  return Array.isArray(value) ? (value as string[]) : [];
}

export function resourceIndicatorsFeature(registry: ResourceServerRegistry): ResourceIndicatorsFeature {
  return {
    enabled: true,
    // A single requested resource is the default target when the token request names none.
    defaultResource: async (_ctx, _client, oneOf) => oneOf,
    useGrantedResource: async () => true,
    getResourceServerInfo: async (_ctx, resourceIndicator, client): Promise<ResourceServer> => {
      // One answer for "no such resource" and "not for this client": no probing the registry.
      const notForYou = () => new errors.InvalidTarget('the resource is unknown or not allowed for this client');
      if (!allowedResources(client).includes(resourceIndicator)) throw notForYou();
      let record;
      try {
        record = await registry.find(resourceIndicator);
      } catch (err) {
        throw toProtocolError(err);
      }
      if (!record) throw notForYou();
      return {
        audience: record.identifier,
        scope: record.scopes.join(' '),
        accessTokenTTL: record.accessTokenTtl,
        accessTokenFormat: 'opaque',
      };
    },
  };
}
