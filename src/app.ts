/**
 * Wires Veil together and starts it:
 *   buildServices (services.ts)      config -> stores -> key material -> repositories -> services
 *   ProviderHost (provider-host.ts)  the current public provider, rebuilt when the keys rotate
 *   the admin app                    over the same services
 *   listeners (http/listeners.ts)    public and admin, drained on close
 * Everything opened goes on one cleanup stack, closed in reverse.
 */
import { heKeyGraceSeconds } from './he/he-keys.js';
import type { AddressInfo } from 'node:net';
import type Provider from 'oidc-provider';
import { hostMatcher } from './admin/guard.js';
import { createAdminApp } from './admin/server.js';
import { ClientService } from './clients/client-service.js';
import { HePolicyService } from './he/decisions/policies.js';
import { HePolicyRepository } from './store/he-policies.js';
import { derivedLifetimes, isLoopback, type VeilConfig } from './config.js';
import { assertClientJwksUri, jwksPolicy } from './http/remote-jwks.js';
import { createListener, drainServer, listen, type Listener } from './http/listeners.js';
import { CleanupStack } from './lifecycle/cleanup-stack.js';
import { OIDC_SCOPES } from './oidc/oidc-scopes.js';
import type { GrantRegistration } from './oidc/public-provider.js';
import { readiness } from './observability/health.js';
import type { Logger } from './observability/logger.js';
import { ProviderHost } from './provider-host.js';
import { demoBanner, type DemoLogin } from './seed.js';
import { buildServices } from './services.js';
import type { Database } from './store/database.js';
import type { ShortLivedStore } from './store/short-lived-store.js';

export { describeUrl } from './services.js';

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
  /** Grant types added to the token endpoint (their access tokens are sealed like every other's). */
  grants?: readonly GrantRegistration[];
}

export async function startVeil(config: VeilConfig, { logger, print = (t) => process.stdout.write(`${t}\n`), admin: serveAdmin = true, grants = [] }: StartOptions): Promise<Veil> {
  const started = performance.now();
  const cleanup = new CleanupStack();
  try {
    const services = await buildServices(config, logger, cleanup);
    const { database, shortLived, bus, tokens, repos } = services;
    const host = await ProviderHost.start(services, cleanup, grants);

    const clients = new ClientService(
      repos.clients,
      repos.grants,
      async (metadata) => {
        await host.provider.Client.validate(metadata);
        await assertClientJwksUri(metadata, jwksPolicy(config)); // SSRF rules, as for resource servers
      },
      (identifier) => tokens.registry.find(identifier),
      bus,
      { production: config.production, oidcScopes: OIDC_SCOPES },
      services.events,
    );

    // Both listeners drain side by side, before the stores below them are closed.
    const listeners: Listener[] = [];
    cleanup.push(async () => {
      const timeoutMs = config.shutdownTimeoutSeconds * 1000;
      const onDeadline = () => logger.warn({ timeoutSeconds: config.shutdownTimeoutSeconds }, 'shutdown deadline reached; closing connections still open');
      await Promise.all(listeners.map((server) => drainServer(server, timeoutMs, onDeadline)));
    });
    const publicServer = createListener(host.handle, config.tls);
    const publicUrl = await listen(publicServer, config.http.host, config.http.port);
    listeners.push(publicServer);

    // The Host names served depend on the bound port (ADMIN_PORT may be 0): set once listening.
    let adminHostAllowed: (host: string) => boolean = () => false;
    const adminApp = createAdminApp({
      token: services.adminToken,
      hostAllowed: (name) => adminHostAllowed(name),
      openProbes: isLoopback(config.admin.host),
      accounts: services.accounts,
      clients,
      registry: tokens.registry,
      grants: repos.grants,
      grantRevocation: tokens.grantRevocation,
      logger,
      defaultAccessTokenTtl: config.ttl.accessToken,
      keys: {
        store: services.keyStore,
        envelope: services.envelope,
        graceSeconds: derivedLifetimes(config.ttl).signingKeyGrace,
        async changed() {
          await host.keysChanged();
          await bus.publish('keys', '');
        },
      },
      heKeys: {
        store: services.he.store,
        envelope: services.envelope,
        bits: config.he.keyBits,
        graceSeconds: heKeyGraceSeconds(config.ttl),
        refresh: () => services.he.refresh(),
      },
      metrics: services.metrics,
      audit: services.audit,
      policies: new HePolicyService(new HePolicyRepository(database.prisma), repos.clients, services.events),
      events: services.events,
      readiness: () =>
        readiness({
          pingDatabase: () => database.ping(),
          pingShortLived: () => shortLived.ping(),
          keysLoaded: () => host.signingKeysLoaded,
          embedded: { database: database.kind === 'pglite', shortLived: shortLived.kind === 'memory' },
        }),
    });
    let adminUrl = '';
    if (serveAdmin) {
      const handleAdmin = adminApp.callback();
      const adminServer = createListener((req, res) => void handleAdmin(req, res), config.admin.tls);
      adminUrl = await listen(adminServer, config.admin.host, config.admin.port);
      adminHostAllowed = hostMatcher(config.admin.host, (adminServer.address() as AddressInfo).port, config.admin.tls ? 'https' : 'http', config.admin.allowedHosts);
      listeners.push(adminServer);
    }

    logger.info({ issuer: config.issuer, public: publicUrl, admin: adminUrl || 'none', startupMs: Math.round(performance.now() - started) }, 'Veil is ready');
    if (services.demo) print(demoBanner(services.demo));

    return {
      config,
      get provider() {
        return host.provider;
      },
      database,
      shortLived,
      publicUrl,
      adminUrl,
      adminToken: services.adminToken,
      demo: services.demo,
      close: () => cleanup.run(),
    };
  } catch (err) {
    await cleanup.run();
    throw err;
  }
}
