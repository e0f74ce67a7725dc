/**
 * Wires Veil together: config -> stores -> keys -> domain services -> oidc-provider ->
 * listeners. The only module that knows every other one; everything else receives what it
 * needs as arguments.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';
import { clientRateLimit, createTokenLimits } from './abuse/client-throttle.js';
import { LoginThrottle } from './abuse/login-throttle.js';
import { AccountService } from './accounts/account-service.js';
import { AuditLog } from './audit/audit-log.js';
import { PasswordHasher } from './accounts/passwords.js';
import { createAdminApp } from './admin/server.js';
import { hostMatcher } from './admin/guard.js';
import { ClientService } from './clients/client-service.js';
import { isLoopback, type VeilConfig } from './config.js';
import { MAX_RESOURCE_ACCESS_TOKEN_TTL } from './admin/contract.js';
import { readKeyRing, type KeyRing } from './crypto/key-ring.js';
import { KeyWatcher } from './crypto/key-watcher.js';
import { jwksCacheHeaders } from './http/jwks-cache.js';
import { applyMigrations, loadKeyMaterial } from './key-material.js';
import { envelopeAtRest } from './store/at-rest.js';
import { notFound } from './http/not-found.js';
import { securityHeaders } from './http/security-headers.js';
import { demoCallbackRoute } from './interactions/demo.js';
import { accountRoutes } from './interactions/account-routes.js';
import { interactionRoutes } from './interactions/routes.js';
import { Views } from './interactions/views.js';
import { createAdapterFactory } from './oidc/adapter.js';
import { buildConfiguration } from './oidc/configuration.js';
import { OIDC_SCOPES } from './oidc/oidc-scopes.js';
import { resourcePolicy } from './oidc/resource-indicators.js';
import { bindSigningKeys, createInvalidationBus, createTokenServices, mountTokenEndpoints } from './oidc/token-services.js';
import { assertClientJwksUri, jwksPolicy, safeRemoteJWKSet } from './http/remote-jwks.js';
import { readiness } from './observability/health.js';
import { errorFields, type Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { demoBanner, seedDemo, type DemoLogin } from './seed.js';
import { AccountRepository } from './store/accounts.js';
import { AuditEventRepository } from './store/audit-events.js';
import { ClientRepository } from './store/clients.js';
import { openDatabase, reachDatabase, type Database } from './store/database.js';
import { GrantRepository } from './store/grants.js';
import { MemoryStore } from './store/memory-store.js';
import { RedisStore } from './store/redis-store.js';
import { ResourceServerRepository } from './store/resource-servers.js';
import type { ShortLivedStore } from './store/short-lived-store.js';

export interface Veil {
  config: VeilConfig;
  provider: Provider;
  database: Database;
  shortLived: ShortLivedStore;
  publicUrl: string;
  /** Empty when this process serves no admin listener (`StartOptions.admin: false`). */
  adminUrl: string;
  /** The admin API's bearer token: configured, or generated into KEYS_DIR/admin-token. */
  adminToken: string;
  demo: DemoLogin | undefined;
  close(): Promise<void>;
}

export interface StartOptions {
  logger: Logger;
  /** Where human-facing start-up text (the demo banner) goes; defaults to stdout. */
  print?: (text: string) => void;
  /** Bind the admin listener (default true). Cluster mode serves it from one worker only. */
  admin?: boolean;
}

/** A store URL as it may be logged: scheme, host, port and path; never user, password or query (which may hold one). */
export function describeUrl(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
}

async function listen(server: http.Server | https.Server, host: string, port: number): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const scheme = server instanceof https.Server ? 'https' : 'http';
  return `${scheme}://${shownHost === '0.0.0.0' ? '127.0.0.1' : shownHost}:${address.port}`;
}

/** The model a token request redeems, by grant type (the audit's `kind`). */
const REDEEMED_MODEL: Record<string, string> = { authorization_code: 'AuthorizationCode', refresh_token: 'RefreshToken' };

/**
 * Graceful drain: stop accepting, close keep-alive connections as soon as they are idle (also
 * those whose request finishes during the drain), let in-flight requests finish, and cut what is
 * left when `timeoutMs` is up.
 */
function drainServer(server: http.Server | https.Server, timeoutMs: number, onDeadline: () => void): Promise<void> {
  return new Promise((resolve) => {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearInterval(idle);
      clearTimeout(deadline);
      clearTimeout(giveUp);
      resolve();
    };
    server.close(finish);
    server.closeIdleConnections();
    const idle = setInterval(() => server.closeIdleConnections(), 100);
    const deadline = setTimeout(() => {
      onDeadline();
      server.closeAllConnections();
    }, timeoutMs);
    // Sockets that never became HTTP connections (e.g. a TLS handshake left hanging) are not
    // closed by closeAllConnections; do not wait for them forever.
    const giveUp = setTimeout(finish, timeoutMs + 2000);
  });
}

export async function startVeil(
  config: VeilConfig,
  { logger, print = (t) => process.stdout.write(`${t}\n`), admin: serveAdmin = true }: StartOptions,
): Promise<Veil> {
  const started = performance.now();
  const cleanups: Array<() => Promise<void>> = [];
  try {
    const database = await openDatabase(config.database);
    cleanups.push(() => database.close());
    if (config.migrateOnStart) await applyMigrations(database, logger);
    await reachDatabase(() => database.ping());

    const { envelope, keyRing, cookieKeys, adminToken } = await loadKeyMaterial(config, logger);

    const shortLived: ShortLivedStore =
      config.redis.kind === 'redis'
        ? await RedisStore.connect({ url: config.redis.url, keyPrefix: config.redis.keyPrefix, atRest: envelopeAtRest(envelope) })
        : new MemoryStore();
    cleanups.push(() => shortLived.close());

    logger.info(
      {
        durable: config.database.kind === 'postgres' ? `PostgreSQL ${describeUrl(config.database.url)}` : `embedded PGlite at ${config.database.dataDir}`,
        shortLived: config.redis.kind === 'redis' ? `Redis ${describeUrl(config.redis.url)} (prefix "${config.redis.keyPrefix}")` : 'in-process memory (embedded; not shared, lost on restart)',
      },
      'stores in use',
    );

    let signingKeys = keyRing.ring.signingJwks(envelope);

    const prisma = database.prisma;
    const accountRepo = new AccountRepository(prisma, envelope);
    const clientRepo = new ClientRepository(prisma, envelope);
    const grantRepo = new GrantRepository(prisma);
    const resourceRepo = new ResourceServerRepository(prisma);
    // The audit trail (PostgreSQL). Its helpers never throw; pass it to whatever records events.
    const auditLog = new AuditLog(new AuditEventRepository(prisma), logger);
    const views = new Views(config.brand);
    const bus = await createInvalidationBus(shortLived, config.redis.keyPrefix);
    cleanups.push(() => bus.close());
    const accounts = new AccountService(accountRepo, new PasswordHasher(config.argon2), bus);
    const tokens = createTokenServices({ config, bus, shortLived, grants: grantRepo, resources: resourceRepo });
    if (config.production && config.resourceJwks.allowPrivate) {
      logger.warn('RESOURCE_JWKS_ALLOW_PRIVATE is on: jwks_uri fetches may reach loopback and private addresses');
    }
    const metrics = new Metrics();
    const throttleStore = shortLived instanceof RedisStore ? { client: shortLived.client, keyPrefix: config.redis.keyPrefix } : undefined;
    const throttleFailed = (err: unknown) => logger.warn({ err: errorFields(err) }, 'throttle check failed; request let through');
    const loginThrottle = new LoginThrottle({ ...config.throttle.login, secret: cookieKeys[0]!, redis: throttleStore, onError: throttleFailed });
    const tokenLimiter = createTokenLimits(config.throttle.tokenPerClient, config.throttle.tokenPerAddress);

    let demo: DemoLogin | undefined;
    if (config.seed) demo = await seedDemo({ issuer: config.issuer, accounts, accountRepo, clients: clientRepo });

    // Everything that signs or verifies with Veil's keys is built per key set (oidc-provider reads
    // its keys once); the adapter reaches the current sealer through this reference.
    let keyBound = bindSigningKeys(tokens, { issuer: config.issuer, shortLived, signingKeys });
    // Resource indicators; also what must hold before a code or refresh token is consumed.
    const resources = resourcePolicy(tokens.registry, OIDC_SCOPES, tokens.encryptionKeys);
    const adapter = createAdapterFactory({
      clients: clientRepo,
      grants: grantRepo,
      shortLived,
      bus,
      sealer: { seal: (jti, payload) => keyBound.sealer.seal(jti, payload) },
      revokedGrantTtl: tokens.revokedGrantTtl,
      onReuse: ({ model, clientId, grantId }) => {
        logger.warn({ event: 'token.reused', model, clientId, grantId, concurrent: true }, 'code or refresh token redeemed twice at once; grant revoked');
        void auditLog.tokenReused(clientId, model, grantId);
      },
      beforeConsume: { AuthorizationCode: (code) => resources.beforeCodeConsumed(code) },
    });

    /** The public app for one set of signing keys; a rotation builds a new one and swaps it in. */
    const buildProvider = (): Provider => {
      const provider = new Provider(
        config.issuer,
        buildConfiguration({
          config,
          adapter,
          findAccount: accounts.findAccount,
          signingKeys,
          cookieKeys,
          grants: grantRepo,
          registry: tokens.registry,
          resources,
          views,
        }),
      );
      // TRUST_PROXY: Koa takes the scheme (so cookies get Secure) and host from X-Forwarded-Proto
      // and -Host, and the client address from the last X-Forwarded-For entry: the one proxy in front.
      provider.proxy = config.trustProxy;
      if (config.trustProxy) provider.maxIpsCount = 1;
      provider.on('server_error', (ctx, err) => {
        logger.error({ err: errorFields(err), path: ctx.path }, 'server error');
      });
      // At /token, oidc-provider revokes a grant only when a consumed code or refresh token is
      // presented again (the concurrent case is the adapter's onReuse above).
      provider.on('grant.revoked', (ctx, grantId) => {
        const model = ctx.oidc?.route === 'token' ? REDEEMED_MODEL[String(ctx.oidc.params?.grant_type)] : undefined;
        if (!model) return;
        const clientId = ctx.oidc.client?.clientId;
        logger.warn({ event: 'token.reused', model, clientId, grantId, concurrent: false }, 'consumed code or refresh token presented again; grant revoked');
        void auditLog.tokenReused(clientId, model, grantId, false);
      });
      // Koa's own last resort (errors no handler answered) would print a whole stack to stderr,
      // past redaction: through the logger instead.
      (provider as unknown as import('node:events').EventEmitter).on('error', (err: unknown, ctx?: { path?: string }) => {
        logger.error({ err: errorFields(err), path: ctx?.path }, 'request failed');
      });
      metrics.countIssuedTokens(provider);
      provider.use(metrics.httpMiddleware('public')); // first, so it times everything below
      provider.use(securityHeaders(config.issuer));
      provider.use(notFound(views));
      if (demo) provider.use(demoCallbackRoute(config.issuer, demo, views));
      provider.use(async (ctx, next) => {
        if (ctx.path !== '/static/veil.css') return next();
        ctx.set('Cache-Control', 'public, max-age=3600');
        ctx.set('ETag', views.stylesheet.etag);
        ctx.type = 'text/css';
        if (ctx.get('if-none-match') === views.stylesheet.etag) {
          ctx.status = 304;
          return;
        }
        ctx.body = views.stylesheet.body;
      });
      provider.use(jwksCacheHeaders(config.keysReloadSeconds));
      provider.use(clientRateLimit(tokenLimiter, throttleFailed));
      for (const mw of interactionRoutes({ provider, accounts, resources: resourceRepo, grants: grantRepo, views, logger, metrics, loginThrottle, audit: auditLog })) provider.use(mw);
      for (const mw of accountRoutes({
        provider,
        issuer: config.issuer,
        accounts,
        grants: grantRepo,
        grantRevocation: tokens.grantRevocation,
        resources: resourceRepo,
        views,
        logger,
        csrfSecret: cookieKeys[0]!,
        audit: auditLog,
      })) provider.use(mw);
      mountTokenEndpoints(provider, tokens, keyBound, {
        issuer: config.issuer,
        shortLived,
        grants: grantRepo,
        accountActive: async (accountId) => (await accounts.profile(accountId)) !== undefined,
        // private_key_jwt clients' jwks_uri at Veil's endpoints: the same SSRF rules as everywhere.
        clientKeySet: (url) => safeRemoteJWKSet(url, jwksPolicy(config)),
        onRevoked: (event) => {
          logger.info({ event: 'token.revoked', ...event }, 'token revoked');
          void auditLog.tokenRevoked(event.clientId, event.kind, event.grantId);
        },
      });
      return provider;
    };
    let provider = buildProvider();
    let handleRequest = provider.callback();

    const clients = new ClientService(
      clientRepo,
      grantRepo,
      async (metadata) => {
        await provider.Client.validate(metadata);
        await assertClientJwksUri(metadata, jwksPolicy(config)); // SSRF rules, as for resource servers
      },
      (identifier) => tokens.registry.find(identifier),
      bus,
      { production: config.production, oidcScopes: OIDC_SCOPES },
    );

    // Rotated keys (this process's admin API, another process's, or the CLI on KEYS_DIR) are
    // picked up without a restart: new key set -> new provider, swapped in for new requests.
    let retireTimer: NodeJS.Timeout | undefined;
    const reloadKeys = async () => {
      const ring = await readKeyRing(config.keysDir);
      if (!ring) return;
      signingKeys = ring.signingJwks(envelope);
      keyBound = bindSigningKeys(tokens, { issuer: config.issuer, shortLived, signingKeys });
      provider = buildProvider();
      handleRequest = provider.callback();
      logger.info({ keys: ring.live().map((k) => `${k.alg}:${k.kid}:${k.status}`) }, 'signing keys loaded');
      scheduleRetirement(ring);
    };
    // A retiring key leaves the JWKS when its date passes, with no file change to notice.
    const scheduleRetirement = (ring: KeyRing) => {
      clearTimeout(retireTimer);
      const next = Math.min(...ring.live().filter((k) => k.retire_after).map((k) => Date.parse(k.retire_after!)));
      if (Number.isFinite(next)) {
        retireTimer = setTimeout(() => void keyWatcher.check(true), Math.min(Math.max(next - Date.now(), 0) + 1000, 2 ** 31 - 1));
        retireTimer.unref();
      }
    };
    const keyWatcher = await KeyWatcher.start({
      keysDir: config.keysDir,
      intervalSeconds: config.keysReloadSeconds,
      bus,
      reload: reloadKeys,
      onError: (err) => logger.error({ err: errorFields(err) }, 'reloading signing keys failed; keeping the current ones'),
    });
    scheduleRetirement(keyRing.ring);
    cleanups.push(async () => {
      keyWatcher.stop();
      clearTimeout(retireTimer);
    });

    const limits = { maxHeaderSize: 16 * 1024, requestTimeout: 30_000, headersTimeout: 15_000 };
    const publicServer = config.tls
      ? https.createServer({ ...limits, cert: config.tls.cert, key: config.tls.key }, (req, res) => handleRequest(req, res))
      : http.createServer(limits, (req, res) => handleRequest(req, res));
    const publicUrl = await listen(publicServer, config.http.host, config.http.port);
    // Both listeners drain side by side, before the stores below them are closed.
    const listeners: Array<http.Server | https.Server> = [publicServer];
    cleanups.push(async () => {
      const timeoutMs = config.shutdownTimeoutSeconds * 1000;
      const onDeadline = () => logger.warn({ timeoutSeconds: config.shutdownTimeoutSeconds }, 'shutdown deadline reached; closing connections still open');
      await Promise.all(listeners.map((server) => drainServer(server, timeoutMs, onDeadline)));
    });

    // The Host names served depend on the bound port (ADMIN_PORT may be 0): set once listening.
    let adminHostAllowed: (host: string) => boolean = () => false;
    const adminApp = createAdminApp({
      token: adminToken,
      hostAllowed: (host) => adminHostAllowed(host),
      openProbes: isLoopback(config.admin.host),
      accounts,
      clients,
      registry: tokens.registry,
      grants: grantRepo,
      grantRevocation: tokens.grantRevocation,
      logger,
      defaultAccessTokenTtl: config.ttl.accessToken,
      keys: {
        keysDir: config.keysDir,
        envelope,
        graceSeconds: Math.max(config.ttl.idToken, config.ttl.accessToken, MAX_RESOURCE_ACCESS_TOKEN_TTL),
        async changed() {
          await keyWatcher.check(true);
          await bus.publish('keys', '');
        },
      },
      metrics,
      audit: auditLog,
      readiness: () =>
        readiness({
          pingDatabase: () => database.ping(),
          pingShortLived: () => shortLived.ping(),
          keysLoaded: () => signingKeys.length > 0,
          embedded: { database: database.kind === 'pglite', shortLived: shortLived.kind === 'memory' },
        }),
    });
    let adminUrl = '';
    if (serveAdmin) {
      const adminLimits = { maxHeaderSize: 16 * 1024, requestTimeout: 30_000 };
      const adminServer = config.admin.tls
        ? https.createServer({ ...adminLimits, cert: config.admin.tls.cert, key: config.admin.tls.key }, adminApp.callback())
        : http.createServer(adminLimits, adminApp.callback());
      adminUrl = await listen(adminServer, config.admin.host, config.admin.port);
      adminHostAllowed = hostMatcher(config.admin.host, (adminServer.address() as AddressInfo).port, config.admin.tls ? 'https' : 'http', config.admin.allowedHosts);
      listeners.push(adminServer);
    }

    logger.info(
      { issuer: config.issuer, public: publicUrl, admin: adminUrl || 'none', startupMs: Math.round(performance.now() - started) },
      'Veil is ready',
    );
    if (demo) print(demoBanner(demo));

    return {
      config,
      get provider() {
        return provider;
      },
      database,
      shortLived,
      publicUrl,
      adminUrl,
      adminToken,
      demo,
      async close() {
        for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
      },
    };
  } catch (err) {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    throw err;
  }
}
