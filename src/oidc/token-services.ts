/**
 * Builds the pieces behind Veil's tokens (registry, keys, sealer, look-up, revocation) from
 * the stores and key material, and mounts Veil's own token endpoints on the provider. Kept out
 * of app.ts so that file stays a readable list of steps.
 */
import { createPrivateKey, type JsonWebKey } from 'node:crypto';
import type { JSONWebKeySet } from 'jose';
import type Provider from 'oidc-provider';
import { derivedLifetimes, type VeilConfig } from '../config.js';
import { ACCESS_TOKEN_SIGNING_ALG } from '../crypto/algorithms.js';
import type { SigningJwk } from '../crypto/keys.js';
import type { SigningKey } from '../crypto/sealer.js';
import { jwksPolicy } from '../http/remote-jwks.js';
import { EncryptionKeys } from '../resource-registry/encryption-keys.js';
import { ResourceServerRegistry } from '../resource-registry/registry.js';
import type { GrantRepository } from '../store/grants.js';
import type { InvalidationBus } from '../store/invalidation.js';
import type { ResourceServerRepository } from '../store/resource-servers.js';
import type { ShortLivedStore } from '../store/short-lived-store.js';
import type { ReuseEvent } from './adapter.js';
import { GrantRevocation } from './grant-revocation.js';
import { introspectionEndpoint } from './introspection.js';
import { revocationEndpoint, type RevocationDeps } from './revocation.js';
import { Sealer } from './sealed-tokens.js';
import type { HeClaims } from './he-claims.js';
import { tokenEdge } from './token-edge.js';
import { CallerAuthenticator, type CallerAuthDeps } from './token-endpoints.js';
import type { EventSink } from '../events/domain-events.js';
import { TokenLookup } from './token-lookup.js';
import { LiveAudiences } from './live-audiences.js';
import { IntrospectionJwt } from './introspection-jwt.js';
import { PairwiseSubjects } from './pairwise-subjects.js';
import type { RedisClient } from '../store/redis-connection.js';
import { MemoryStatusListStore } from '../status-list/memory-status-list-store.js';
import { statusListSettings } from '../status-list/options.js';
import { MemoryStatusOwnerIndex, RedisStatusOwnerIndex } from '../status-list/owner-index.js';
import { RedisStatusListStore } from '../status-list/redis-status-list-store.js';
import { StatusListRenderer } from '../status-list/renderer.js';
import { TokenStatuses } from '../status-list/token-statuses.js';

/** Token machinery that does not depend on Veil's signing keys: built once per process. */
export interface TokenServices {
  bus: InvalidationBus;
  registry: ResourceServerRegistry;
  encryptionKeys: EncryptionKeys;
  grantRevocation: GrantRevocation;
  /** How long a revoked grant stays marked: longer than any token of it lives. */
  revokedGrantTtl: number;
  /** Encrypted attributes (`hec`) for audiences with `he_claims`; undefined: none are issued. */
  heClaims?: HeClaims | undefined;
  /** Each API's (or client sector's) `sub` for a user. */
  subjects: PairwiseSubjects;
  /** Until when tokens for an audience may be live (noted at issuance). */
  liveAudiences: LiveAudiences;
  /** Token status lists (STATUS_LIST_ENABLED); undefined: tokens carry no `status`. */
  statusLists?: { statuses: TokenStatuses; ttlSeconds: number; expSeconds: number } | undefined;
}

/** What signs and verifies with Veil's current keys: rebuilt when the keys rotate. */
export interface KeyBoundTokenServices {
  sealer: Sealer;
  tokenLookup: TokenLookup;
  /** RFC 9701 introspection answers, signed with the active access-token key. */
  introspectionJwt: IntrospectionJwt;
  /** Renders status lists with the active key (when status lists are on). */
  statusListRenderer?: StatusListRenderer | undefined;
}

export function publicJwks(keys: SigningJwk[]): JSONWebKeySet {
  return {
    keys: keys.map(({ kty, crv, x, y, n, e, kid, alg, use }) => Object.fromEntries(Object.entries({ kty, crv, x, y, n, e, kid, alg, use }).filter(([, v]) => v !== undefined))),
  };
}

export function createTokenServices(deps: {
  config: VeilConfig;
  bus: InvalidationBus;
  shortLived: ShortLivedStore;
  grants: GrantRepository;
  resources: ResourceServerRepository;
  /** The registry emits resource.created / deleted. */
  events: EventSink;
  /** Encrypted attributes for audiences with `he_claims` (built once Veil's HE key is loaded). */
  heClaims?: HeClaims | undefined;
  /** The key of pairwise subjects (crypto/pairwise-secret.ts). */
  pairwiseSecret: Buffer;
  /** Status lists live here when set (shared by every process), else in this process's memory. */
  redis?: { client: RedisClient; keyPrefix: string; waitReplicas: number } | undefined;
}): TokenServices {
  const { config } = deps;
  const encryptionKeys = new EncryptionKeys({
    jwksCacheSeconds: config.resourceJwks.cacheSeconds,
    jwksCooldownSeconds: config.resourceJwks.cooldownSeconds,
    policy: jwksPolicy(config),
  });
  const revokedGrantTtl = derivedLifetimes(config.ttl).revokedGrant;
  const statusLists = config.statusLists && buildTokenStatuses(config.statusLists, deps.redis);
  return {
    bus: deps.bus,
    registry: new ResourceServerRegistry(deps.resources, encryptionKeys, deps.bus, deps.events, deps.shortLived),
    encryptionKeys,
    grantRevocation: new GrantRevocation(deps.grants, deps.shortLived, revokedGrantTtl, deps.bus, statusLists?.statuses),
    revokedGrantTtl,
    heClaims: deps.heClaims,
    subjects: new PairwiseSubjects(deps.pairwiseSecret),
    liveAudiences: new LiveAudiences(deps.shortLived),
    statusLists,
  };
}

function buildTokenStatuses(given: NonNullable<VeilConfig['statusLists']>, redis: { client: RedisClient; keyPrefix: string; waitReplicas: number } | undefined) {
  const settings = statusListSettings({ size: given.size, ttlSeconds: given.ttlSeconds, expSeconds: given.expSeconds });
  const common = { size: settings.size, bits: settings.bits, reuseGraceSeconds: settings.reuseGraceSeconds };
  const statuses = redis
    ? new TokenStatuses(
        new RedisStatusListStore(redis.client, { keyPrefix: redis.keyPrefix, waitReplicas: redis.waitReplicas, ...common }),
        new RedisStatusOwnerIndex(redis.client, redis.keyPrefix, settings.reuseGraceSeconds),
      )
    : new TokenStatuses(new MemoryStatusListStore(common), new MemoryStatusOwnerIndex(settings.reuseGraceSeconds));
  return { statuses, ttlSeconds: settings.ttlSeconds, expSeconds: settings.expSeconds };
}

export function bindSigningKeys(services: TokenServices, deps: { issuer: string; shortLived: ShortLivedStore; signingKeys: SigningJwk[] }): KeyBoundTokenServices {
  // The active key: keys that only verify (next, retiring) carry key_ops ["verify"].
  const jwk = deps.signingKeys.find((k) => k.alg === ACCESS_TOKEN_SIGNING_ALG && !k.key_ops);
  if (!jwk) throw new Error(`no active ${ACCESS_TOKEN_SIGNING_ALG} signing key`);
  const signer: SigningKey = { kid: jwk.kid, alg: ACCESS_TOKEN_SIGNING_ALG, key: createPrivateKey({ key: jwk as unknown as JsonWebKey, format: 'jwk' }) };
  const lists = services.statusLists;
  return {
    sealer: new Sealer({ issuer: deps.issuer, signer, registry: services.registry, keys: services.encryptionKeys, heClaims: services.heClaims, subjects: services.subjects }),
    tokenLookup: new TokenLookup(deps.shortLived, deps.issuer, publicJwks(deps.signingKeys), [...new Set(deps.signingKeys.map((k) => k.alg))]),
    introspectionJwt: new IntrospectionJwt({ issuer: deps.issuer, signer, keys: services.encryptionKeys }),
    // Signed with the access-token key, so verifiers check lists with the keys they already have.
    statusListRenderer: lists && new StatusListRenderer({ store: lists.statuses.store, signer, issuer: deps.issuer, ttlSeconds: lists.ttlSeconds, expSeconds: lists.expSeconds }),
  };
}

/** Mounts the token edge (sealing), introspection and revocation (before oidc-provider's routes). */
export function mountTokenEndpoints(
  provider: Provider,
  services: TokenServices,
  bound: KeyBoundTokenServices,
  deps: {
    issuer: string;
    shortLived: ShortLivedStore;
    grants: GrantRepository;
    accountActive: (accountId: string) => Promise<boolean>;
    onRevoked?: RevocationDeps['onRevoked'];
    /** A refresh token redeemed twice at once (its grant is revoked by then). */
    onReuse?: (event: ReuseEvent) => void;
    /** Fetches a client's jwks_uri for private_key_jwt (jose's remote set when not given). */
    clientKeySet?: CallerAuthDeps['remoteKeySet'];
  },
): void {
  const callers = new CallerAuthenticator({ issuer: deps.issuer, provider, registry: services.registry, remoteKeySet: deps.clientKeySet });
  provider.use(
    tokenEdge({
      sealer: bound.sealer,
      store: deps.shortLived,
      liveAudiences: services.liveAudiences,
      onReuse: async ({ grantId, clientId }) => {
        await services.grantRevocation.revoke(grantId);
        deps.onReuse?.({ model: 'RefreshToken', clientId, grantId });
      },
    }),
  );
  const liveness = {
    grants: deps.grants,
    // Cached (and invalidated across processes) by the client adapter.
    clientExists: async (clientId: string) => (await provider.Client.find(clientId)) !== undefined,
    accountActive: deps.accountActive,
  };
  provider.use(
    introspectionEndpoint({
      issuer: deps.issuer,
      callers,
      tokens: bound.tokenLookup,
      liveness,
      registry: services.registry,
      subjects: services.subjects,
      jwtAnswers: bound.introspectionJwt,
    }),
  );
  provider.use(
    revocationEndpoint({
      issuer: deps.issuer,
      callers,
      tokens: bound.tokenLookup,
      store: deps.shortLived,
      grants: services.grantRevocation,
      statuses: services.statusLists?.statuses,
      onRevoked: deps.onRevoked,
    }),
  );
}
