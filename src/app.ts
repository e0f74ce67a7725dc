/**
 * Wires Veil together: config -> stores -> keys -> domain services -> oidc-provider ->
 * listeners. The only module that knows every other one; everything else receives what it
 * needs as arguments.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';
import { AccountService } from './accounts/account-service.js';
import { PasswordHasher } from './accounts/passwords.js';
import { createAdminApp } from './admin/server.js';
import { ClientService } from './clients/client-service.js';
import type { VeilConfig } from './config.js';
import { loadOrCreateCookieKeys, loadOrCreateSigningKeys } from './crypto/keys.js';
import { notFound } from './http/not-found.js';
import { demoCallbackRoute } from './interactions/demo.js';
import { interactionRoutes } from './interactions/routes.js';
import { Views } from './interactions/views.js';
import { createAdapterFactory } from './oidc/adapter.js';
import { buildConfiguration } from './oidc/configuration.js';
import { errorFields, type Logger } from './observability/logger.js';
import { demoBanner, seedDemo, type DemoLogin } from './seed.js';
import { AccountRepository } from './store/accounts.js';
import { ClientRepository } from './store/clients.js';
import { openDatabase, reachDatabase, type Database } from './store/database.js';
import { GrantRepository } from './store/grants.js';
import { MemoryStore } from './store/memory-store.js';
import { migrate, readMigrations } from './store/migrator.js';
import { RedisStore } from './store/redis-store.js';
import { ResourceServerRepository } from './store/resource-servers.js';
import type { ShortLivedStore } from './store/short-lived-store.js';

export interface Veil {
  config: VeilConfig;
  provider: Provider;
  database: Database;
  shortLived: ShortLivedStore;
  publicUrl: string;
  adminUrl: string;
  demo: DemoLogin | undefined;
  close(): Promise<void>;
}

export interface StartOptions {
  logger: Logger;
  /** Where human-facing start-up text (the demo banner) goes; defaults to stdout. */
  print?: (text: string) => void;
}

export function describeUrl(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

async function listen(server: http.Server, host: string, port: number): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${shownHost === '0.0.0.0' ? '127.0.0.1' : shownHost}:${address.port}`;
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

export async function startVeil(config: VeilConfig, { logger, print = (t) => process.stdout.write(`${t}\n`) }: StartOptions): Promise<Veil> {
  const started = performance.now();
  const cleanups: Array<() => Promise<void>> = [];
  try {
    const database = await openDatabase(config.database);
    cleanups.push(() => database.close());
    if (config.migrateOnStart) {
      const runner = await reachDatabase(() => database.openSqlRunner());
      try {
        const result = await migrate(runner, await readMigrations());
        if (result.applied.length) logger.info({ applied: result.applied }, 'database migrations applied');
      } finally {
        await runner.close();
      }
    }
    await reachDatabase(() => database.ping());

    const shortLived: ShortLivedStore =
      config.redis.kind === 'redis'
        ? await RedisStore.connect({ url: config.redis.url, keyPrefix: config.redis.keyPrefix })
        : new MemoryStore();
    cleanups.push(() => shortLived.close());

    logger.info(
      {
        durable: config.database.kind === 'postgres' ? `PostgreSQL ${describeUrl(config.database.url)}` : `embedded PGlite at ${config.database.dataDir}`,
        shortLived: config.redis.kind === 'redis' ? `Redis ${describeUrl(config.redis.url)} (prefix "${config.redis.keyPrefix}")` : 'in-process memory (embedded; not shared, lost on restart)',
      },
      'stores in use',
    );

    const { keys: signingKeys, created } = await loadOrCreateSigningKeys(config.keysDir);
    if (created) logger.info({ keysDir: config.keysDir, kids: signingKeys.map((k) => k.kid) }, 'generated signing keys');
    const cookieKeys = config.cookieKeys ?? (await loadOrCreateCookieKeys(config.keysDir));

    const prisma = database.prisma;
    const accountRepo = new AccountRepository(prisma);
    const clientRepo = new ClientRepository(prisma);
    const grantRepo = new GrantRepository(prisma);
    const resourceRepo = new ResourceServerRepository(prisma);
    const accounts = new AccountService(accountRepo, new PasswordHasher(config.argon2));
    const views = new Views(config.brand);

    const provider = new Provider(
      config.issuer,
      buildConfiguration({
        config,
        adapter: createAdapterFactory({ clients: clientRepo, grants: grantRepo, shortLived }),
        findAccount: accounts.findAccount,
        signingKeys,
        cookieKeys,
        grants: grantRepo,
        resources: resourceRepo,
        views,
      }),
    );
    provider.on('server_error', (ctx, err) => {
      logger.error({ err: errorFields(err), path: ctx.path }, 'server error');
    });

    const clients = new ClientService(clientRepo, grantRepo, (metadata) => provider.Client.validate(metadata));

    provider.use(notFound(views));
    let demo: DemoLogin | undefined;
    if (config.seed) {
      demo = await seedDemo({ issuer: config.issuer, accounts, accountRepo, clients: clientRepo });
      provider.use(demoCallbackRoute(config.issuer, demo, views));
    }

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
    for (const mw of interactionRoutes({ provider, accounts, resources: resourceRepo, views, logger })) provider.use(mw);

    const publicServer = http.createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 30_000, headersTimeout: 15_000 }, provider.callback());
    const publicUrl = await listen(publicServer, config.http.host, config.http.port);
    cleanups.push(() => closeServer(publicServer));

    const adminApp = createAdminApp({
      token: config.admin.token,
      accounts,
      clients,
      resources: resourceRepo,
      logger,
      defaultAccessTokenTtl: config.ttl.accessToken,
    });
    const adminServer = http.createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 30_000 }, adminApp.callback());
    const adminUrl = await listen(adminServer, config.admin.host, config.admin.port);
    cleanups.push(() => closeServer(adminServer));

    logger.info(
      { issuer: config.issuer, public: publicUrl, admin: adminUrl, startupMs: Math.round(performance.now() - started) },
      'Veil is ready',
    );
    if (demo) print(demoBanner(demo));

    return {
      config,
      provider,
      database,
      shortLived,
      publicUrl,
      adminUrl,
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
