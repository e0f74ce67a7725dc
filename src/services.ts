/**
 * The service registry: every long-lived part of Veil, built once from the configuration, in
 * dependency order (stores -> key material -> repositories -> domain services). Nothing here
 * depends on the current signing keys; what does is built per key set by the ProviderHost.
 * Whatever is opened is registered on the cleanup stack as it is opened.
 */
import { createTokenLimits } from './abuse/client-throttle.js';
import { LoginThrottle } from './abuse/login-throttle.js';
import { AccountService } from './accounts/account-service.js';
import { PasswordHasher } from './accounts/passwords.js';
import { AuditLog } from './audit/audit-log.js';
import { DomainEvents } from './events/domain-events.js';
import { auditSubscriber } from './events/subscribers/audit.js';
import { logSubscriber } from './events/subscribers/log.js';
import { metricsSubscriber } from './events/subscribers/metrics.js';
import type { VeilConfig } from './config.js';
import type { KeyRing } from './crypto/key-ring.js';
import type { KeyStore } from './crypto/key-store.js';
import type { Envelope } from './crypto/master-key.js';
import { applyMigrations, loadKeyMaterial } from './key-material.js';
import { Views } from './interactions/views.js';
import type { CleanupStack } from './lifecycle/cleanup-stack.js';
import { createTokenServices, type TokenServices } from './oidc/token-services.js';
import { HeClaims } from './oidc/he-claims.js';
import { buildHeServices, type HeServices } from './he/he-services.js';
import { registerHeMetrics } from './he/he-metrics.js';
import { statusListSubscriber } from './status-list/subscriber.js';
import { errorFields, type Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { seedDemo, type DemoLogin } from './seed.js';
import { AccountRepository } from './store/accounts.js';
import { envelopeAtRest } from './store/at-rest.js';
import { AuditEventRepository } from './store/audit-events.js';
import { ClientRepository } from './store/clients.js';
import { openDatabase, reachDatabase, type Database } from './store/database.js';
import { GrantRepository } from './store/grants.js';
import { LocalInvalidationBus, RedisInvalidationBus, type InvalidationBus } from './store/invalidation.js';
import { MemoryStore } from './store/memory-store.js';
import { closeRedis, connectRedis, describeRedis, type RedisClient } from './store/redis-connection.js';
import { RedisStore } from './store/redis-store.js';
import { ResourceServerRepository } from './store/resource-servers.js';
import type { ShortLivedStore } from './store/short-lived-store.js';

export interface Services {
  config: VeilConfig;
  logger: Logger;
  database: Database;
  /** The process's one Redis connection (store, bus, throttles); undefined in embedded mode. */
  redis: RedisClient | undefined;
  shortLived: ShortLivedStore;
  bus: InvalidationBus;
  envelope: Envelope;
  /** The signing-key ring as read at start-up; the ProviderHost follows later changes. */
  keyRing: KeyRing;
  /** Where the ring lives (KEYS_STORE): KEYS_DIR or PostgreSQL. */
  keyStore: KeyStore;
  cookieKeys: string[];
  adminToken: string;
  repos: {
    accounts: AccountRepository;
    clients: ClientRepository;
    grants: GrantRepository;
    resources: ResourceServerRepository;
  };
  /** The audit trail's read side (GET /admin/audit); rows are written by the audit subscriber. */
  audit: AuditLog;
  metrics: Metrics;
  /** Domain events: services emit, the audit, log and metrics subscribers write the side effects. */
  events: DomainEvents;
  views: Views;
  accounts: AccountService;
  tokens: TokenServices;
  /** Confidential claims (issue 10): the Paillier key ring and the encryptor of `hec` claims (src/he/). */
  he: HeServices;
  throttles: {
    login: LoginThrottle;
    tokens: ReturnType<typeof createTokenLimits>;
    /** A throttle whose store failed lets the request through, and says so. */
    failed(err: unknown): void;
  };
  demo: DemoLogin | undefined;
}

/** A store URL as it may be logged: scheme, host, port and path; never user, password or query (which may hold one). */
export function describeUrl(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
}

export async function buildServices(config: VeilConfig, logger: Logger, cleanup: CleanupStack): Promise<Services> {
  const database = await openDatabase(config.database);
  cleanup.push(() => database.close());
  if (config.migrateOnStart) await applyMigrations(database, logger);
  await reachDatabase(() => database.ping());

  const { envelope, keyStore, keyRing, cookieKeys, pairwiseSecret, adminToken } = await loadKeyMaterial(config, logger, database);

  const he = await buildHeServices({ config, logger, database, envelope, cleanup });

  const redis = config.redis ? await connectRedis(config.redis) : undefined;
  const keyPrefix = config.redis?.keyPrefix ?? '';
  if (redis) cleanup.push(() => closeRedis(redis));
  const shortLived: ShortLivedStore = redis
    ? new RedisStore(redis, { keyPrefix, atRest: envelopeAtRest(envelope), waitReplicas: config.redis?.kind === 'sentinel' ? config.redis.waitReplicas : 0 })
    : new MemoryStore();
  cleanup.push(() => shortLived.close());
  const bus: InvalidationBus = redis ? await RedisInvalidationBus.connect(redis, keyPrefix) : new LocalInvalidationBus();
  cleanup.push(() => bus.close());

  logger.info(
    {
      durable: config.database.kind === 'postgres' ? `PostgreSQL ${describeUrl(config.database.url)}` : `embedded PGlite at ${config.database.dataDir}`,
      shortLived: config.redis ? `${describeRedis(config.redis)} (prefix "${keyPrefix}")` : 'in-process memory (embedded; not shared, lost on restart)',
    },
    'stores in use',
  );
  if (config.production && config.resourceJwks.allowPrivate) {
    logger.warn('RESOURCE_JWKS_ALLOW_PRIVATE is on: jwks_uri fetches may reach loopback and private addresses');
  }

  const prisma = database.prisma;
  const repos = {
    accounts: new AccountRepository(prisma, envelope),
    clients: new ClientRepository(prisma, envelope),
    grants: new GrantRepository(prisma),
    resources: new ResourceServerRepository(prisma),
  };
  // The audit trail (PostgreSQL; a failed write is logged, never thrown), the log line and the
  // metric of every domain event, each from its one subscriber.
  const audit = new AuditLog(new AuditEventRepository(prisma), logger);
  const metrics = new Metrics();
  registerHeMetrics(metrics.registry, he.pool);
  const events = new DomainEvents(logger);
  events.subscribe('audit', auditSubscriber(audit));
  events.subscribe('log', logSubscriber(logger));
  events.subscribe('metrics', metricsSubscriber(metrics));
  const accounts = new AccountService(repos.accounts, new PasswordHasher(config.argon2), bus, events);
  // hec claims: the account's attributes, encrypted with factors from the HE pool (worker threads).
  const heClaims = new HeClaims({ values: (id, names) => accounts.valuesForToken(id, names), encryptor: he.encryptor });
  // Status lists share the short-lived store's Redis and its replica confirmation.
  const tokenRedis = redis && { client: redis, keyPrefix, waitReplicas: config.redis?.kind === 'sentinel' ? config.redis.waitReplicas : 0 };
  const failed = (err: unknown) => logger.warn({ err: errorFields(err) }, 'throttle check failed; request let through');
  const services: Services = {
    config,
    logger,
    database,
    redis,
    shortLived,
    bus,
    envelope,
    keyRing: keyRing.ring,
    keyStore,
    cookieKeys,
    adminToken,
    repos,
    audit,
    metrics,
    events,
    views: new Views(config.brand),
    accounts,
    he,
    tokens: createTokenServices({ config, bus, shortLived, grants: repos.grants, resources: repos.resources, redis: tokenRedis, heClaims, events, pairwiseSecret }),
    throttles: {
      login: new LoginThrottle({
        ...config.throttle.login,
        secret: cookieKeys[0]!,
        redis: redis && { client: redis, keyPrefix },
        onError: failed,
      }),
      tokens: createTokenLimits(config.throttle.tokenPerClient, config.throttle.tokenPerAddress),
      failed,
    },
    demo: config.seed ? await seedDemo({ issuer: config.issuer, accounts, accountRepo: repos.accounts, clients: repos.clients }) : undefined,
  };
  // Client deletions and user (dis/en)ablings reach the status lists (grants: GrantRevocation).
  const statusLists = services.tokens.statusLists;
  if (statusLists) {
    const accountDisabled = async (id: string) => (await accounts.profile(id)) === undefined;
    events.subscribe('status-lists', statusListSubscriber({ statuses: statusLists.statuses, accountDisabled, logger }));
  }
  return services;
}
