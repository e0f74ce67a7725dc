/**
 * Where status lists live: the allocation of an index to each sealed access token, status
 * changes, and the bytes a list is rendered from. Two implementations with the same semantics:
 * Redis (redis-status-list-store.ts, shared by every process) and process memory
 * (memory-status-list-store.ts, the embedded mode).
 *
 * The rules both keep:
 * - An index is handed out at random within the current list, and only when no token holding it
 *   is alive: its last token's `exp` plus the reuse grace has passed. Per index the store keeps
 *   that `exp` (the latest, since a later token can only take it after the earlier one expired).
 * - An index whose status is not VALID is never handed out again: a revoked or suspended token
 *   keeps its entry, so no copy of a list, however old, shows a newer token of that index as
 *   anything but VALID, and a revoked token never becomes VALID by reuse.
 * - INVALID is final: a later change to another status is ignored (enabling a user again lifts
 *   SUSPENDED, never a revocation).
 * - A status change for a token past `exp` plus the grace does nothing: no verifier accepts it
 *   any more, and its index may already belong to another token.
 * - When random probes find no free index the list is retired (closed) and a new one becomes
 *   current; a closed list is served until its last token has expired, then it goes away.
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { StatusBits, TokenStatus } from './format.js';

/** A token's place in a list, and its `exp`: what its record keeps so it can be revoked later. */
export interface StatusSlot {
  list: string;
  idx: number;
  exp: number;
}

/** A list as it is now: `bytes` is the whole byte array (size * bits / 8), unset entries VALID. */
export interface StatusListSnapshot {
  id: string;
  size: number;
  bits: StatusBits;
  bytes: Buffer;
}

export interface StatusListStore {
  readonly kind: 'redis' | 'memory';
  /** An index for a token that expires at `exp` (seconds): one store round trip on the issuing path. */
  allocate(exp: number): Promise<StatusSlot>;
  /** Sets one token's status; false when nothing was set (expired past the grace, list gone, or INVALID already). */
  setStatus(slot: StatusSlot, status: TokenStatus): Promise<boolean>;
  /** The same for many tokens (a grant, a client, a user): one step per list. Resolves to how many now have `status`. */
  setStatuses(slots: readonly StatusSlot[], status: TokenStatus): Promise<number>;
  /** The list's current bytes, or undefined for a list that does not exist (any more). */
  read(list: string): Promise<StatusListSnapshot | undefined>;
}

/** Indexes tried per allocation. A list is retired once all of them are held: at about 50-70% live entries, so allocation stays one step. */
export const PROBES = 16;

/** How long a list is kept after the last `exp` (plus grace) it has handed out; also a new list's first lease. */
export const LIST_KEEP_SECONDS = 3600;

/** Where the store draws the indexes it tries (whole numbers from 0 to size - 1): crypto-random by default; tests may force collisions. */
export type CandidateSource = (size: number, count: number) => number[];

export const randomCandidates: CandidateSource = (size, count) => Array.from({ length: count }, () => randomInt(size));

export function newListId(): string {
  return randomBytes(16).toString('base64url');
}

/** Slots by list, so each list changes in one step. */
export function byList(slots: readonly StatusSlot[]): Map<string, StatusSlot[]> {
  const out = new Map<string, StatusSlot[]>();
  for (const slot of slots) {
    const group = out.get(slot.list);
    if (group) group.push(slot);
    else out.set(slot.list, [slot]);
  }
  return out;
}

/** A slot as one string (`<list>.<idx>.<exp>`), for a record or an index kept elsewhere (a grant's, a client's). */
export function encodeSlot(slot: StatusSlot): string {
  return `${slot.list}.${slot.idx}.${slot.exp}`;
}

export function decodeSlot(value: string): StatusSlot | undefined {
  const m = /^([A-Za-z0-9_-]{22})\.(\d{1,8})\.(\d{1,12})$/.exec(value);
  return m ? { list: m[1]!, idx: Number(m[2]), exp: Number(m[3]) } : undefined;
}

/** Throws on an `exp` that is not a positive whole number of seconds (a programming error). */
export function checkExp(exp: number): void {
  if (!Number.isSafeInteger(exp) || exp <= 0 || exp >= 2 ** 32) throw new RangeError(`exp must be a positive whole number of seconds, got ${exp}`);
}
