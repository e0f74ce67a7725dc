/**
 * ShortLivedStore in process memory, for the embedded default (one process, no Redis).
 * Same semantics as RedisStore: TTLs, grant lists, uid/userCode indexes, atomic consume.
 */
import type { AdapterPayload } from 'oidc-provider';
import {
  GRANTABLE_MODELS,
  GRANT_LIST_MAX,
  GrantRevokedError,
  SEALED_MODELS,
  type IssuedTokenRecord,
  type IssuedIndexEntry,
  type RefreshRotation,
  type RotationOutcome,
  type ShortLivedStore,
} from './short-lived-store.js';

interface Entry {
  value: string;
  expiresAt: number;
}

const SWEEP_INTERVAL_MS = 60_000;

export class MemoryStore implements ShortLivedStore {
  readonly kind = 'memory';
  readonly #entries = new Map<string, Entry>();
  readonly #grants = new Map<string, { keys: Set<string>; expiresAt: number }>();
  readonly #sweeper: NodeJS.Timeout;

  constructor() {
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS);
    this.#sweeper.unref();
  }

  #set(key: string, value: string, expiresIn: number) {
    this.#entries.set(key, { value, expiresAt: Date.now() + expiresIn * 1000 });
  }

  #get(key: string): string | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  #sweep() {
    const now = Date.now();
    for (const [key, entry] of this.#entries) if (entry.expiresAt <= now) this.#entries.delete(key);
    for (const [key, grant] of this.#grants) if (grant.expiresAt <= now) this.#grants.delete(key);
  }

  // Single-threaded and without awaits, each method below is one atomic step, like the Lua
  // scripts of RedisStore.
  async upsert(model: string, id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    if (GRANTABLE_MODELS.has(model) && payload.grantId && this.#get(`revoked-grant:${payload.grantId}`)) throw new GrantRevokedError();
    this.#write(model, id, payload, expiresIn);
  }

  #write(model: string, id: string, payload: AdapterPayload, expiresIn: number) {
    const key = `${model}:${id}`;
    this.#set(key, JSON.stringify(payload), expiresIn);
    if (GRANTABLE_MODELS.has(model) && payload.grantId) {
      const grant = this.#grants.get(payload.grantId) ?? { keys: new Set<string>(), expiresAt: 0 };
      grant.keys.delete(key); // re-listed as the newest
      grant.keys.add(key);
      if (grant.keys.size >= 2 * GRANT_LIST_MAX && grant.keys.size % GRANT_LIST_MAX === 0) this.#bound(grant.keys);
      grant.expiresAt = Math.max(grant.expiresAt, Date.now() + expiresIn * 1000);
      this.#grants.set(payload.grantId, grant);
    }
    if (payload.userCode) this.#set(`${model}:userCode:${payload.userCode}`, id, expiresIn);
    if (payload.uid) this.#set(`${model}:uid:${payload.uid}`, id, expiresIn);
  }

  async indexIssued({ model, jti, tokenHash, expiresIn }: IssuedIndexEntry): Promise<void> {
    this.#set(`issued:${tokenHash}`, `${model}:${jti}`, expiresIn);
  }

  async rotateRefreshToken({ consumed, successor, accessToken }: RefreshRotation): Promise<RotationOutcome> {
    if (this.#get(`revoked-grant:${successor.payload.grantId}`)) return 'grant-revoked';
    if (this.#get(`RefreshToken:${consumed}`) === undefined) return 'gone';
    if (!this.#consume('RefreshToken', consumed)) return 'reused';
    this.#write('RefreshToken', successor.id, successor.payload, successor.expiresIn);
    if (accessToken) this.#set(`issued:${accessToken.tokenHash}`, `${accessToken.model}:${accessToken.jti}`, accessToken.expiresIn);
    return 'rotated';
  }

  /** See GRANT_LIST_MAX: drop dead entries, keep live refresh tokens and the newest live access tokens, revoke older ones. */
  #bound(keys: Set<string>) {
    let accessTokens = 0;
    for (const key of [...keys].reverse()) {
      const raw = this.#get(key);
      if (raw === undefined || (JSON.parse(raw) as AdapterPayload).consumed) {
        keys.delete(key);
      } else if (key.startsWith(`${SEALED_MODELS[0]}:`) && ++accessTokens > GRANT_LIST_MAX) {
        keys.delete(key);
        this.#revokeEntry(key);
      }
    }
  }

  /** Deletes an entry of a grant; an access token's jti is blacklisted until it would expire. */
  #revokeEntry(key: string) {
    const entry = this.#entries.get(key);
    if (entry && key.startsWith(`${SEALED_MODELS[0]}:`)) {
      this.#entries.set(`revoked-jti:${key.slice(SEALED_MODELS[0].length + 1)}`, { value: '1', expiresAt: entry.expiresAt });
    }
    this.#entries.delete(key);
  }

  #issued(ref: string): IssuedTokenRecord | undefined {
    const raw = this.#get(ref);
    if (!raw) return undefined;
    const sep = ref.indexOf(':');
    const jti = ref.slice(sep + 1);
    return { model: ref.slice(0, sep), jti, payload: JSON.parse(raw) as AdapterPayload, revoked: this.#get(`revoked-jti:${jti}`) !== undefined };
  }

  async findIssuedByHash(tokenHash: string): Promise<IssuedTokenRecord | undefined> {
    const ref = this.#get(`issued:${tokenHash}`);
    return ref ? this.#issued(ref) : undefined;
  }

  async findIssuedByJti(jti: string): Promise<IssuedTokenRecord | undefined> {
    for (const model of SEALED_MODELS) {
      const found = this.#issued(`${model}:${jti}`);
      if (found) return found;
    }
    return undefined;
  }

  async claimOnce(key: string, ttl: number): Promise<boolean> {
    if (this.#get(`once:${key}`)) return false;
    this.#set(`once:${key}`, '1', ttl);
    return true;
  }

  async noteAudienceExpiry(audience: string, exp: number): Promise<void> {
    const key = `audience-exp:${audience}`;
    const now = Date.now() / 1000;
    if (exp > now && exp > Number(this.#get(key) ?? 0)) this.#set(key, String(exp), exp - now);
  }

  async audienceExpiry(audience: string): Promise<number | undefined> {
    const exp = this.#get(`audience-exp:${audience}`);
    return exp === undefined ? undefined : Number(exp);
  }

  async blacklist(jti: string, expiresIn: number): Promise<void> {
    if (expiresIn > 0) this.#set(`revoked-jti:${jti}`, '1', expiresIn);
  }

  async find(model: string, id: string): Promise<AdapterPayload | undefined> {
    const raw = this.#get(`${model}:${id}`);
    return raw ? (JSON.parse(raw) as AdapterPayload) : undefined;
  }

  async findByUid(model: string, uid: string) {
    const id = this.#get(`${model}:uid:${uid}`);
    return id ? this.find(model, id) : undefined;
  }

  async findByUserCode(model: string, userCode: string) {
    const id = this.#get(`${model}:userCode:${userCode}`);
    return id ? this.find(model, id) : undefined;
  }

  async consume(model: string, id: string): Promise<boolean> {
    return this.#consume(model, id);
  }

  #consume(model: string, id: string): boolean {
    const key = `${model}:${id}`;
    const entry = this.#entries.get(key);
    if (!entry || entry.expiresAt <= Date.now()) return false;
    const payload = JSON.parse(entry.value) as AdapterPayload;
    if (payload.consumed) return false;
    payload.consumed = Math.floor(Date.now() / 1000);
    entry.value = JSON.stringify(payload);
    return true;
  }

  async destroy(model: string, id: string): Promise<void> {
    this.#entries.delete(`${model}:${id}`);
  }

  async revokeByGrantId(grantId: string, markerTtl: number): Promise<void> {
    this.#set(`revoked-grant:${grantId}`, '1', markerTtl);
    const grant = this.#grants.get(grantId);
    if (!grant) return;
    for (const key of grant.keys) this.#revokeEntry(key);
    this.#grants.delete(grantId);
  }

  /** How many entries are listed for a grant (tests, diagnostics). */
  listedForGrant(grantId: string): number {
    return this.#grants.get(grantId)?.keys.size ?? 0;
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#entries.clear();
    this.#grants.clear();
  }
}
