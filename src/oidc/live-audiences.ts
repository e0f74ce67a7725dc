/**
 * Per audience, until when tokens issued for it may be live: noted by the token edge for every
 * sealed token, read before an API's subject mode changes (resource-registry/registry.ts).
 * Each process writes the marker once per SLOT_SECONDS of expiry per audience, not per token:
 * the marker it writes is rounded up to the end of the slot, so it still covers every token
 * noted in it (the store only ever moves a marker later).
 */
import { LRUCache } from 'lru-cache';
import type { AudienceExpiry } from '../store/short-lived-store.js';

const SLOT_SECONDS = 10;

export class LiveAudiences {
  /** The marker this process last wrote, per audience. */
  readonly #written = new LRUCache<string, number>({ max: 10_000 });

  constructor(private readonly store: AudienceExpiry) {}

  /** Notes a token for `audience` expiring at `exp` (seconds). */
  async note(audience: string, exp: number): Promise<void> {
    const marker = Math.ceil(exp / SLOT_SECONDS) * SLOT_SECONDS;
    if ((this.#written.get(audience) ?? 0) >= marker) return;
    await this.store.noteAudienceExpiry(audience, marker);
    this.#written.set(audience, marker);
  }
}
