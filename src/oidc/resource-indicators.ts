/**
 * RFC 8707 resource indicators: the registry in PostgreSQL decides which audiences exist,
 * what scopes they accept and how their access tokens look. Unknown or malformed resource
 * values are `invalid_target`.
 */
import { errors, type Configuration, type ResourceServer } from 'oidc-provider';
import type { ResourceServerRepository } from '../store/resource-servers.js';
import { toProtocolError } from './errors.js';

type ResourceIndicatorsFeature = NonNullable<NonNullable<Configuration['features']>['resourceIndicators']>;

/** Signed-JWT access tokens for resource servers; the sealed (encrypted) format replaces this. */
const ACCESS_TOKEN_SIGNING_ALG = 'ES256';

export function resourceIndicatorsFeature(resources: ResourceServerRepository): ResourceIndicatorsFeature {
  return {
    enabled: true,
    // A single requested resource is the default target when the token request names none.
    defaultResource: async (_ctx, _client, oneOf) => oneOf,
    useGrantedResource: async () => true,
    getResourceServerInfo: async (_ctx, resourceIndicator): Promise<ResourceServer> => {
      let record;
      try {
        record = await resources.find(resourceIndicator);
      } catch (err) {
        throw toProtocolError(err);
      }
      if (!record) throw new errors.InvalidTarget(`unknown resource: ${resourceIndicator}`);
      return {
        audience: record.identifier,
        scope: record.scopes.join(' '),
        accessTokenTTL: record.accessTokenTtl,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: ACCESS_TOKEN_SIGNING_ALG } },
      };
    },
  };
}
