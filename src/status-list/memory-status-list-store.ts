/**
 * Status lists in process memory, for the embedded mode (one process, no Redis): the semantics
 * of store.ts, as RedisStatusListStore keeps them. No method awaits between reading and
 * writing, so each is one atomic step, as a Lua script is in Redis.
 */
import { TokenStatus, listByteLength, readStatus, storedValue, writeStatus, type StatusBits } from './format.js';
import { STATUS_LIST_DEFAULTS } from './options.js';
import {
  LIST_KEEP_SECONDS,
  PROBES,
  byList,
  checkExp,
  newListId,
  randomCandidates,
  type CandidateSource,
  type StatusListSnapshot,
  type StatusListStore,
  type StatusSlot,
} from './store.js';

export interface MemoryStatusListStoreOptions {
  size?: number;
  bits?: StatusBits;
  reuseGraceSeconds?: number;
  /** Tests only: where the indexes tried come from. */
  candidates?: CandidateSource;
}

interface MemoryList {
  size: number;
  bits: StatusBits;
  status: Uint8Array;
  /** Per index, the `exp` of its last token (0: never used). */
  held: Uint32Array;
  /** Seconds: the list is dropped after this (see LIST_KEEP_SECONDS). */
  keepUntil: number;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

export class MemoryStatusListStore implements StatusListStore {
  readonly kind = 'memory';
  readonly #lists = new Map<string, MemoryList>();
  #current: string | undefined;
  readonly #size: number;
  readonly #bits: StatusBits;
  readonly #grace: number;
  readonly #candidates: CandidateSource;

  constructor(options: MemoryStatusListStoreOptions = {}) {
    this.#size = options.size ?? STATUS_LIST_DEFAULTS.size;
    this.#bits = options.bits ?? STATUS_LIST_DEFAULTS.bits;
    this.#grace = options.reuseGraceSeconds ?? STATUS_LIST_DEFAULTS.reuseGraceSeconds;
    this.#candidates = options.candidates ?? randomCandidates;
  }

  /** A live list by id; one past its lease is forgotten here (no timer: lists are few). */
  #list(id: string, now: number): MemoryList | undefined {
    const list = this.#lists.get(id);
    if (list && list.keepUntil <= now) {
      this.#lists.delete(id);
      return undefined;
    }
    return list;
  }

  /** A new current list; the old one is only read and changed from now on (one process: nobody else allocates from it). */
  #rotate(now: number): [string, MemoryList] {
    for (const [id, list] of this.#lists) if (list.keepUntil <= now) this.#lists.delete(id);
    const id = newListId();
    const list: MemoryList = {
      size: this.#size,
      bits: this.#bits,
      status: new Uint8Array(listByteLength(this.#size, this.#bits)),
      held: new Uint32Array(this.#size),
      keepUntil: now + LIST_KEEP_SECONDS,
    };
    this.#lists.set(id, list);
    this.#current = id;
    return [id, list];
  }

  async allocate(exp: number): Promise<StatusSlot> {
    checkExp(exp);
    const now = nowSeconds();
    let id = this.#current;
    let list = id === undefined ? undefined : this.#list(id, now);
    if (id === undefined || list === undefined) [id, list] = this.#rotate(now);
    let idx = this.#take(list, exp, now);
    if (idx === undefined) {
      // Every probe held: retire the list, start a new one.
      [id, list] = this.#rotate(now);
      idx = this.#take(list, exp, now);
    }
    // A fresh list has every index free: a miss there means the candidate source is broken.
    if (idx === undefined) throw new Error('no status list index could be allocated');
    return { list: id, idx, exp };
  }

  #take(list: MemoryList, exp: number, now: number): number | undefined {
    for (const idx of this.#candidates(list.size, PROBES)) {
      if (!(idx >= 0 && idx < list.size)) continue;
      if (list.held[idx]! + this.#grace > now || readStatus(list.status, idx, list.bits) !== TokenStatus.VALID) continue;
      list.held[idx] = exp;
      if (exp + this.#grace >= list.keepUntil) list.keepUntil = exp + this.#grace + LIST_KEEP_SECONDS;
      return idx;
    }
    return undefined;
  }

  async setStatus(slot: StatusSlot, status: TokenStatus): Promise<boolean> {
    return (await this.setStatuses([slot], status)) === 1;
  }

  async setStatuses(slots: readonly StatusSlot[], status: TokenStatus): Promise<number> {
    const now = nowSeconds();
    let set = 0;
    for (const [id, group] of byList(slots)) {
      const list = this.#list(id, now);
      if (!list) continue;
      const value = storedValue(status, list.bits);
      for (const { idx, exp } of group) {
        if (!(Number.isInteger(idx) && idx >= 0 && idx < list.size) || exp + this.#grace <= now) continue;
        const current = readStatus(list.status, idx, list.bits);
        if (current === value) set++;
        else if (current !== TokenStatus.INVALID) {
          writeStatus(list.status, idx, list.bits, value);
          set++;
        }
      }
    }
    return set;
  }

  async read(id: string): Promise<StatusListSnapshot | undefined> {
    const list = this.#list(id, nowSeconds());
    return list && { id, size: list.size, bits: list.bits, bytes: Buffer.from(list.status) };
  }
}
