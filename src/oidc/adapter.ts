/**
 * oidc-provider storage adapter: routes each model to its store.
 *   Client, Grant                    -> PostgreSQL (durable, relational, queried by admins)
 *   AccessToken, ClientCredentials   -> ModelStore, without the user claims (token-claims.ts);
 *                                       a resource-bound one is reachable only through its
 *                                       sealed value, which the token edge indexes (token-edge.ts)
 *   everything else                  -> ModelStore (Redis or in-process), TTL-driven
 *   ReplayDetection                  -> claimed atomically (SET NX) through the ReplayGuard
 * The adapter knows nothing of requests or sealing.
 * Store failures (StoreUnavailableError) leave here as 503 via src/oidc/errors.ts; a write for
 * a grant revoked meanwhile (GrantRevokedError) as invalid_grant. A code or refresh token
 * redeemed twice at once is reuse: the losing consume revokes the whole grant. Before a code is
 * consumed, `beforeConsume` may still refuse the request (resource-indicators.ts), leaving it usable.
 */
import { LRUCache } from 'lru-cache';
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import { enforceClientPolicy } from '../clients/client-policy.js';
import type { ClientRepository } from '../store/clients.js';
import type { GrantRepository } from '../store/grants.js';
import type { InvalidationBus } from '../store/invalidation.js';
import { type GrantTokenStore, type ModelStore, type ReplayGuard, type RevocationList } from '../store/short-lived-store.js';
import { toProtocolError } from './errors.js';
import { GrantRevocation } from './grant-revocation.js';
import { withoutUserClaims } from './token-claims.js';
import type { TokenStatuses } from '../status-list/token-statuses.js';

export interface AdapterStores {
  clients: ClientRepository;
  bus: InvalidationBus;
  grants: GrantRepository;
  shortLived: ShortLivedSlice;
  /** How long a revoked grant stays marked revoked: longer than any of its tokens can live. */
  revokedGrantTtl: number;
  /** Told when a lost consume revoked a grant (logs, audit): never the token itself. */
  onReuse?: ((event: ReuseEvent) => void) | undefined;
  /**
   * Checks run, per model, just before a record is consumed, with its payload: a refusal here
   * leaves it unconsumed. oidc-provider consumes a code before it resolves the resource and
   * issues, and offers no hook in between (refresh tokens have `rotateRefreshToken`).
   */
  beforeConsume?: BeforeConsume | undefined;
  /** Status lists: a revoked grant's access tokens are set INVALID there too. */
  statuses?: Pick<TokenStatuses, 'revokeGrant'> | undefined;
}

/** The slices of the short-lived store the adapter uses. */
export type ShortLivedSlice = ModelStore & GrantTokenStore & RevocationList & ReplayGuard;

export type BeforeConsume = Partial<Record<string, (payload: AdapterPayload) => Promise<void>>>;

/** A code or refresh token redeemed again while its first redemption was under way. */
export interface ReuseEvent {
  model: string;
  clientId: string | undefined;
  grantId: string;
}

/**
 * How long a replay claim holds by itself. oidc-provider's `ReplayDetection.unique` looks up,
 * then saves with the real lifetime; the look-up is where the claim is made, before that
 * lifetime is known. Client assertions and DPoP proofs live well under this; anything
 * longer-lived is also kept as a record until its own expiry (see ReplayDetectionAdapter).
 */
const REPLAY_CLAIM_SECONDS = 600;

async function guard<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    // Store outages become 503, a grant revoked meanwhile (GrantRevokedError) invalid_grant.
    throw toProtocolError(err);
  }
}

/**
 * Clients are read on every token request, so their metadata is cached: bounded, short-lived,
 * and dropped in every process when a client changes (InvalidationBus).
 */
class ClientAdapter implements Adapter {
  readonly #cache = new LRUCache<string, { metadata: AdapterPayload | null }>({ max: 1000, ttl: 60_000 });

  constructor(
    private readonly clients: ClientRepository,
    bus: InvalidationBus,
  ) {
    bus.subscribe((topic, key) => {
      if (topic === 'all') this.#cache.clear();
      else if (topic === 'client') this.#cache.delete(key);
    });
  }

  async find(id: string) {
    const hit = this.#cache.get(id);
    if (hit) return hit.metadata ?? undefined;
    const metadata = await guard(() => this.clients.find(id));
    const payload = metadata ? (enforceClientPolicy(metadata) as AdapterPayload) : null;
    this.#cache.set(id, { metadata: payload });
    return payload ?? undefined;
  }
  // Clients are managed through the admin API, never written by oidc-provider itself.
  async upsert(): Promise<void> {
    throw new Error('clients are managed through the admin API');
  }
  async destroy(): Promise<void> {}
  async consume(): Promise<void> {}
  async findByUid() {
    return undefined;
  }
  async findByUserCode() {
    return undefined;
  }
  async revokeByGrantId(): Promise<void> {}
}

/**
 * Grants are read on every refresh and code exchange, so they are cached like clients: bounded,
 * short-lived, and dropped in every process when a grant changes or ends (InvalidationBus; the
 * revocation paths announce it, oidc/grant-revocation.ts). A copy served in the moment before an
 * announcement arrives cannot revive anything: ending a grant deletes its tokens in the same
 * step, so there is nothing left to redeem under it.
 */
class GrantAdapter implements Adapter {
  readonly #cache = new LRUCache<string, { payload: AdapterPayload | null }>({ max: 10_000, ttl: 30_000 });
  /** Counts invalidations: a read that an invalidation overtook is not cached (it may hold what was just withdrawn). */
  #epoch = 0;

  constructor(
    private readonly grants: GrantRepository,
    private readonly shortLived: ShortLivedSlice,
    private readonly revokedGrantTtl: number,
    private readonly bus: InvalidationBus,
  ) {
    bus.subscribe((topic, key) => {
      if (topic === 'all') this.#forget();
      else if (topic === 'grant') this.#forget(key);
    });
  }
  #forget(id?: string) {
    this.#epoch++;
    if (id === undefined) this.#cache.clear();
    else this.#cache.delete(id);
  }
  upsert(id: string, payload: AdapterPayload, expiresIn: number) {
    return guard(async () => {
      this.#forget(id);
      await this.grants.upsert(id, payload, expiresIn);
      await this.bus.publish('grant', id);
    });
  }
  // A copy each way: oidc-provider changes a found grant in place during consent, and an
  // unsaved change must never reach the cached copy.
  async find(id: string) {
    const hit = this.#cache.get(id);
    if (hit) return hit.payload ? structuredClone(hit.payload) : undefined;
    const epoch = this.#epoch;
    const payload = await guard(() => this.grants.find(id));
    if (epoch === this.#epoch) this.#cache.set(id, { payload: payload ? structuredClone(payload) : null });
    return payload;
  }
  async destroy(id: string) {
    await guard(async () => {
      this.#forget(id);
      await this.grants.destroy(id);
      await this.bus.publish('grant', id);
    });
  }
  async consume(): Promise<void> {}
  async findByUid() {
    return undefined;
  }
  async findByUserCode() {
    return undefined;
  }
  revokeByGrantId(grantId: string) {
    return guard(() => this.shortLived.revokeByGrantId(grantId, this.revokedGrantTtl));
  }
}

/** What the consume of codes and refresh tokens needs beyond the store. */
interface ReuseHandling {
  grantRevocation: Pick<GrantRevocation, 'revoke'>;
  onReuse?: ((event: ReuseEvent) => void) | undefined;
  beforeConsume?: BeforeConsume | undefined;
}

class ShortLivedAdapter implements Adapter {
  constructor(
    protected readonly model: string,
    protected readonly store: ShortLivedSlice,
    private readonly revokedGrantTtl: number,
    private readonly reuse?: ReuseHandling,
  ) {}
  upsert(id: string, payload: AdapterPayload, expiresIn: number) {
    return guard(() => this.store.upsert(this.model, id, payload, expiresIn));
  }
  find(id: string) {
    return guard(() => this.store.find(this.model, id));
  }
  findByUid(uid: string) {
    return guard(() => this.store.findByUid(this.model, uid));
  }
  findByUserCode(userCode: string) {
    return guard(() => this.store.findByUserCode(this.model, userCode));
  }
  async consume(id: string): Promise<void> {
    const check = this.reuse?.beforeConsume?.[this.model];
    if (check) {
      const payload = await guard(() => this.store.find(this.model, id));
      // Already consumed: a concurrent redemption won, and the consume below revokes the grant.
      if (payload && !payload.consumed) await check(payload);
    }
    const won = await guard(() => this.store.consume(this.model, id));
    if (won) return;
    // oidc-provider checks `consumed` after find(), and revokes the grant when it sees it; a
    // concurrent redemption gets past that check and loses here instead. That is reuse too
    // (RFC 9700 §4.14.2, RFC 6749 §4.1.2): one of the two holders may be an attacker, so
    // neither keeps anything. The winner's writes for the grant are refused from now on.
    await guard(async () => {
      const record = await this.store.find(this.model, id);
      const grantId = typeof record?.grantId === 'string' ? record.grantId : undefined;
      if (!grantId || !this.reuse) return;
      await this.reuse.grantRevocation.revoke(grantId);
      this.reuse.onReuse?.({ model: this.model, clientId: typeof record?.clientId === 'string' ? record.clientId : undefined, grantId });
    });
    throw new errors.InvalidGrant(`${this.model === 'RefreshToken' ? 'refresh token' : 'grant'} already used`);
  }
  destroy(id: string) {
    return guard(() => this.store.destroy(this.model, id));
  }
  revokeByGrantId(grantId: string) {
    return guard(() => this.store.revokeByGrantId(grantId, this.revokedGrantTtl));
  }
}

/**
 * oidc-provider's replay model (client assertions at /token and, through
 * `provider.ReplayDetection.unique`, at Veil's own endpoints; DPoP proofs). Its `unique` does
 * find(), then save(): find() makes the claim itself, atomically (SET NX), and reports "found"
 * unless this call created it, so two concurrent uses cannot both see "not found".
 */
class ReplayDetectionAdapter extends ShortLivedAdapter {
  override find(id: string) {
    return guard(async () => {
      const now = Math.floor(Date.now() / 1000);
      // A valid-looking record: oidc-provider checks exp on whatever find() returns.
      if (!(await this.store.claimOnce(`replay:${id}`, REPLAY_CLAIM_SECONDS))) return { iat: now, exp: now + REPLAY_CLAIM_SECONDS };
      // Claimed now; a use older than the claim's lifetime is still on record until its own exp.
      return this.store.find(this.model, id);
    });
  }

  override upsert(id: string, payload: AdapterPayload, expiresIn: number) {
    // The claim already covers REPLAY_CLAIM_SECONDS; only longer lives need the record.
    if (expiresIn <= REPLAY_CLAIM_SECONDS) return Promise.resolve();
    return super.upsert(id, payload, expiresIn);
  }
}

/**
 * Access tokens, stored without the user claims (those travel only inside the sealed token). A
 * resource-bound token's record is reachable only through its sealed value (or the inner JWS),
 * never by its bare id, which the resource server sees as `jti` and must not be able to use as a
 * bearer token here.
 */
class AccessTokenAdapter extends ShortLivedAdapter {
  constructor(
    model: string,
    store: ShortLivedSlice,
    revokedGrantTtl: number,
    private readonly statuses?: Pick<TokenStatuses, 'revokeGrant'>,
  ) {
    super(model, store, revokedGrantTtl);
  }

  // oidc-provider revokes a grant through each model's adapter (a consumed code or refresh token
  // presented again, logout): the grant's access tokens leave the status lists with it.
  override revokeByGrantId(grantId: string) {
    return guard(async () => {
      await super.revokeByGrantId(grantId);
      await this.statuses?.revokeGrant(grantId);
    });
  }

  override upsert(id: string, payload: AdapterPayload, expiresIn: number) {
    return guard(() => this.store.upsert(this.model, id, withoutUserClaims(payload), expiresIn));
  }

  override async find(id: string) {
    const payload = await super.find(id);
    return payload?.aud === undefined ? payload : undefined;
  }

  override destroy(id: string) {
    return guard(async () => {
      const payload = await this.store.find(this.model, id);
      await this.store.destroy(this.model, id);
      if (payload?.exp) await this.store.blacklist(id, payload.exp - Math.floor(Date.now() / 1000));
    });
  }
}

export function createAdapterFactory(stores: AdapterStores): (model: string) => Adapter {
  const clientAdapter = new ClientAdapter(stores.clients, stores.bus);
  const grantAdapter = new GrantAdapter(stores.grants, stores.shortLived, stores.revokedGrantTtl, stores.bus);
  const reuse: ReuseHandling = {
    grantRevocation: new GrantRevocation(stores.grants, stores.shortLived, stores.revokedGrantTtl, stores.bus, stores.statuses),
    onReuse: stores.onReuse,
    beforeConsume: stores.beforeConsume,
  };
  return (model) => {
    switch (model) {
      case 'Client':
        return clientAdapter;
      case 'Grant':
        return grantAdapter;
      case 'AccessToken':
      case 'ClientCredentials':
        return new AccessTokenAdapter(model, stores.shortLived, stores.revokedGrantTtl, stores.statuses);
      case 'ReplayDetection':
        return new ReplayDetectionAdapter(model, stores.shortLived, stores.revokedGrantTtl);
      default:
        return new ShortLivedAdapter(model, stores.shortLived, stores.revokedGrantTtl, reuse);
    }
  };
}
