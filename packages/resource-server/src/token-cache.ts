/**
 * What the verifier remembers between requests: tokens it already verified (so the same token
 * on every request does not pay decryption and signature verification again) and the `jti`s it
 * has learnt are revoked. Both are bounded Maps used as LRUs (a Map iterates in insertion order,
 * and every use re-inserts), small enough to write here rather than add a dependency.
 */
import { createHash } from 'node:crypto';

/** Cache keys are SHA-256 hashes: raw tokens are never held, and a one-character change is another key. */
export function tokenKey(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/** Drops the least recently used entries until the map has room for one more. */
function makeRoom<K, V>(map: Map<K, V>, maxEntries: number): void {
  while (map.size >= maxEntries) {
    const oldest = map.keys().next();
    if (oldest.done) return;
    map.delete(oldest.value);
  }
}

interface Entry<T> {
  value: T;
  jti: string;
  /** Epoch ms after which the entry is never used: the token's exp, or sooner by maxAge. */
  usableUntil: number;
}

export class VerifiedTokenCache<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    private readonly maxEntries: number,
    private readonly maxAgeMs: number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string, now: number): T | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (now >= entry.usableUntil) return undefined;
    this.entries.set(key, entry); // most recently used goes last
    return entry.value;
  }

  /** `expMs` is the token's exp; an entry that would already be unusable is not stored. */
  set(key: string, value: T, jti: string, expMs: number, now: number): void {
    const usableUntil = Math.min(expMs, now + this.maxAgeMs);
    this.entries.delete(key);
    if (usableUntil <= now) return;
    makeRoom(this.entries, this.maxEntries);
    this.entries.set(key, { value, jti, usableUntil });
  }

  delete(key: string): boolean {
    return this.entries.delete(key);
  }

  /** Drops every entry for this jti; returns the latest time (epoch ms) one of them was usable until. */
  deleteJti(jti: string): number | undefined {
    let latest: number | undefined;
    // A scan: revocations are rare, and an index per jti would cost every insertion.
    for (const [key, entry] of this.entries) {
      if (entry.jti !== jti) continue;
      latest = Math.max(latest ?? 0, entry.usableUntil);
      this.entries.delete(key);
    }
    return latest;
  }
}

/** jtis the API has been told are revoked, each kept until the token would have expired anyway. */
export class RevokedJtis {
  private readonly until = new Map<string, number>();

  constructor(private readonly maxEntries: number) {}

  add(jti: string, untilMs: number, now: number): void {
    const previous = this.until.get(jti);
    this.until.delete(jti);
    const keepUntil = Math.max(previous ?? 0, untilMs);
    if (keepUntil <= now) return;
    makeRoom(this.until, this.maxEntries);
    this.until.set(jti, keepUntil);
  }

  has(jti: string, now: number): boolean {
    const keepUntil = this.until.get(jti);
    if (keepUntil === undefined) return false;
    if (now < keepUntil) return true;
    this.until.delete(jti);
    return false;
  }
}
