/**
 * ShortLivedStore in process memory, for the embedded default (one process, no Redis).
 * Same semantics as RedisStore: TTLs, grant lists, uid/userCode indexes, atomic consume.
 */
import type { AdapterPayload } from 'oidc-provider';
import { GRANTABLE_MODELS, type ShortLivedStore } from './short-lived-store.js';

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

  async upsert(model: string, id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const key = `${model}:${id}`;
    this.#set(key, JSON.stringify(payload), expiresIn);
    if (GRANTABLE_MODELS.has(model) && payload.grantId) {
      const grant = this.#grants.get(payload.grantId) ?? { keys: new Set<string>(), expiresAt: 0 };
      grant.keys.add(key);
      grant.expiresAt = Math.max(grant.expiresAt, Date.now() + expiresIn * 1000);
      this.#grants.set(payload.grantId, grant);
    }
    if (payload.userCode) this.#set(`${model}:userCode:${payload.userCode}`, id, expiresIn);
    if (payload.uid) this.#set(`${model}:uid:${payload.uid}`, id, expiresIn);
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
    // Single-threaded: no await between read and write, so this is atomic.
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

  async revokeByGrantId(grantId: string): Promise<void> {
    const grant = this.#grants.get(grantId);
    if (!grant) return;
    for (const key of grant.keys) this.#entries.delete(key);
    this.#grants.delete(grantId);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#entries.clear();
    this.#grants.clear();
  }
}
