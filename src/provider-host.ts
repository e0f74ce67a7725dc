/**
 * Owns the current public provider. oidc-provider reads its signing keys once, so when the key
 * ring changes (this process's admin API, another process's, or the CLI on KEYS_DIR) the host
 * builds a new provider and key-bound token services for the new ring and swaps them in for new
 * requests; requests already under way finish on the one they started with. Nothing else holds
 * the current keys: everything asks the host.
 */
import type http from 'node:http';
import type Provider from 'oidc-provider';
import { readKeyRing, type KeyRing } from './crypto/key-ring.js';
import type { SigningJwk } from './crypto/keys.js';
import { KeyWatcher } from './crypto/key-watcher.js';
import type { CleanupStack } from './lifecycle/cleanup-stack.js';
import { createAdapterFactory } from './oidc/adapter.js';
import { OIDC_SCOPES } from './oidc/oidc-scopes.js';
import { buildPublicProvider, type GrantRegistration } from './oidc/public-provider.js';
import { resourcePolicy } from './oidc/resource-indicators.js';
import { bindSigningKeys } from './oidc/token-services.js';
import { errorFields } from './observability/logger.js';
import type { Services } from './services.js';

interface Current {
  signingKeys: SigningJwk[];
  provider: Provider;
  handle: (req: http.IncomingMessage, res: http.ServerResponse) => void;
}

export class ProviderHost {
  #current: Current;
  #retireTimer: NodeJS.Timeout | undefined;
  #watcher: KeyWatcher | undefined;
  readonly #build: (signingKeys: SigningJwk[]) => Current;

  private constructor(
    private readonly services: Services,
    grants: readonly GrantRegistration[],
  ) {
    const { config, repos, shortLived, bus, tokens, events } = services;
    // Resource indicators; also what must hold before a code or refresh token is consumed.
    const resources = resourcePolicy(tokens.registry, OIDC_SCOPES, tokens.encryptionKeys);
    // The adapter maps models to stores; it does not depend on keys, so it outlives rotations.
    const adapter = createAdapterFactory({
      clients: repos.clients,
      grants: repos.grants,
      shortLived,
      bus,
      revokedGrantTtl: tokens.revokedGrantTtl,
      statuses: tokens.statusLists?.statuses,
      onReuse: ({ model, clientId, grantId }) => void events.emit({ type: 'token.reused', model, clientId, grantId, concurrent: true }),
      beforeConsume: { AuthorizationCode: (code) => resources.beforeCodeConsumed(code) },
    });
    this.#build = (signingKeys) => {
      const keyBound = bindSigningKeys(tokens, { issuer: config.issuer, shortLived, signingKeys });
      const provider = buildPublicProvider(services, { signingKeys, keyBound, adapter, resources, grants });
      const handle = provider.callback();
      return { signingKeys, provider, handle: (req: http.IncomingMessage, res: http.ServerResponse) => void handle(req, res) };
    };
    this.#current = this.#build(services.keyRing.signingJwks(services.envelope));
  }

  /** Builds the first provider and starts following the key ring. */
  static async start(services: Services, cleanup: CleanupStack, grants: readonly GrantRegistration[] = []): Promise<ProviderHost> {
    const host = new ProviderHost(services, grants);
    host.#watcher = await KeyWatcher.start({
      store: services.keyStore,
      intervalSeconds: services.config.keysReloadSeconds,
      bus: services.bus,
      reload: () => host.#reload(),
      onError: (err) => services.logger.error({ err: errorFields(err) }, 'reloading signing keys failed; keeping the current ones'),
    });
    host.#scheduleRetirement(services.keyRing);
    cleanup.push(() => {
      host.#watcher?.stop();
      clearTimeout(host.#retireTimer);
    });
    return host;
  }

  get provider(): Provider {
    return this.#current.provider;
  }

  get signingKeysLoaded(): boolean {
    return this.#current.signingKeys.length > 0;
  }

  /** The request handler for the public listener: always the current provider's. */
  readonly handle = (req: http.IncomingMessage, res: http.ServerResponse): void => this.#current.handle(req, res);

  /** Checks the key ring now (after a rotation through this process's admin API). */
  async keysChanged(): Promise<void> {
    await this.#watcher?.check(true);
  }

  async #reload(): Promise<void> {
    const ring = await readKeyRing(this.services.keyStore);
    if (!ring) return;
    this.#current = this.#build(ring.signingJwks(this.services.envelope));
    this.services.logger.info({ keys: ring.live().map((k) => `${k.alg}:${k.kid}:${k.status}`) }, 'signing keys loaded');
    this.#scheduleRetirement(ring);
  }

  /** A retiring key leaves the JWKS when its date passes, with no file change to notice. */
  #scheduleRetirement(ring: KeyRing): void {
    clearTimeout(this.#retireTimer);
    const next = Math.min(
      ...ring
        .live()
        .filter((k) => k.retire_after)
        .map((k) => Date.parse(k.retire_after!)),
    );
    if (Number.isFinite(next)) {
      this.#retireTimer = setTimeout(() => void this.#watcher?.check(true), Math.min(Math.max(next - Date.now(), 0) + 1000, 2 ** 31 - 1));
      this.#retireTimer.unref();
    }
  }
}
