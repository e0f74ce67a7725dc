/**
 * oidc-provider storage adapter: routes each model to its store.
 *   Client, Grant            -> PostgreSQL (durable, relational, queried by admins)
 *   everything else          -> ShortLivedStore (Redis or in-process), TTL-driven
 * Store failures (StoreUnavailableError) leave here as 503 via src/oidc/errors.ts.
 */
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import { enforceClientPolicy } from '../clients/client-policy.js';
import type { ClientRepository } from '../store/clients.js';
import type { GrantRepository } from '../store/grants.js';
import type { ShortLivedStore } from '../store/short-lived-store.js';
import { toProtocolError } from './errors.js';

export interface AdapterStores {
  clients: ClientRepository;
  grants: GrantRepository;
  shortLived: ShortLivedStore;
}

async function guard<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw toProtocolError(err);
  }
}

class ClientAdapter implements Adapter {
  constructor(private readonly clients: ClientRepository) {}
  async find(id: string) {
    const metadata = await guard(() => this.clients.find(id));
    return metadata ? (enforceClientPolicy(metadata) as AdapterPayload) : undefined;
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

class GrantAdapter implements Adapter {
  constructor(private readonly grants: GrantRepository, private readonly shortLived: ShortLivedStore) {}
  upsert(id: string, payload: AdapterPayload, expiresIn: number) {
    return guard(() => this.grants.upsert(id, payload, expiresIn));
  }
  find(id: string) {
    return guard(() => this.grants.find(id));
  }
  async destroy(id: string) {
    await guard(() => this.grants.destroy(id));
  }
  async consume(): Promise<void> {}
  async findByUid() {
    return undefined;
  }
  async findByUserCode() {
    return undefined;
  }
  revokeByGrantId(grantId: string) {
    return guard(() => this.shortLived.revokeByGrantId(grantId));
  }
}

class ShortLivedAdapter implements Adapter {
  constructor(private readonly model: string, private readonly store: ShortLivedStore) {}
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
    const won = await guard(() => this.store.consume(this.model, id));
    // oidc-provider checks `consumed` after find(); a concurrent redemption may still reach
    // here. Exactly one caller wins; the others fail as if they had seen it consumed.
    if (!won) throw new errors.InvalidGrant(`${this.model === 'RefreshToken' ? 'refresh token' : 'grant'} already used`);
  }
  destroy(id: string) {
    return guard(() => this.store.destroy(this.model, id));
  }
  revokeByGrantId(grantId: string) {
    return guard(() => this.store.revokeByGrantId(grantId));
  }
}

export function createAdapterFactory(stores: AdapterStores): (model: string) => Adapter {
  return (model) => {
    switch (model) {
      case 'Client':
        return new ClientAdapter(stores.clients);
      case 'Grant':
        return new GrantAdapter(stores.grants, stores.shortLived);
      default:
        return new ShortLivedAdapter(model, stores.shortLived);
    }
  };
}
