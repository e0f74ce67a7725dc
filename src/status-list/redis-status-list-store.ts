/**
 * Status lists in Redis (one server, Sentinel or Cluster), shared by every process: the
 * semantics of store.ts in Lua scripts, each on one list's keys, which share a hash slot.
 *
 * Key layout (<p> = the configured prefix; {sl:<id>} = the list's Cluster hash tag):
 *   <p>status-list:current                the id of the list new tokens get indexes in
 *   <p>status-list:{sl:<id>}:meta         hash: size, bits, keep (unix seconds the keys live to), closed
 *   <p>status-list:{sl:<id>}:status       the list's byte array, exactly as the draft lays it out
 *                                         (BITFIELD at redisBitOffset); created by the first change,
 *                                         shorter than the list while its tail is all VALID
 *   <p>status-list:{sl:<id>}:held         per index, the `exp` of its last token (u32 at #idx)
 * A list's three keys expire together at `keep`, which allocation raises (an hour at a time) to
 * past the last `exp` plus grace it handed out. Allocation is one EVALSHA: the process caches
 * the current id, and a script answer of "full", "closed" or "unknown" makes it move on (compare
 * and set on `current`, in its own slot, so two processes retiring one list agree on the next).
 * Time in the scripts is Redis' (TIME), so processes with skewed clocks agree on expiry.
 */
import { VeilError } from '../errors/veil-error.js';
import { StoreUnavailableError } from '../store/errors.js';
import { LuaScript } from '../store/lua-script.js';
import type { RedisClient } from '../store/redis-connection.js';
import { listByteLength, type StatusBits, type TokenStatus } from './format.js';
import { STATUS_LIST_DEFAULTS, isListId } from './options.js';
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

// The entry's BITFIELD offset, as format.ts redisBitOffset computes it (Lua numbers are doubles: exact here).
const OFFSET = `
local function offset(idx, bits)
  local perByte = 8 / bits
  return math.floor(idx / perByte) * 8 + 8 - bits - (idx % perByte) * bits
end
`;

const FULL = -1;
const CLOSED = -2;
const UNKNOWN = -3;

// Takes the first free index among the candidates: no live token holds it (its last exp plus
// the grace has passed) and it is VALID (a revoked or suspended entry is never handed out again).
// Returns the index, or FULL (every candidate held), CLOSED (retired), UNKNOWN (no such list).
//   KEYS: meta, held, status   ARGV: exp, grace, keep seconds, candidates (one string, comma-separated:
//   one argument instead of sixteen is measurably cheaper for the client on the issuing path)
const ALLOCATE = new LuaScript<number>(`${OFFSET}
local meta = redis.call('HMGET', KEYS[1], 'size', 'bits', 'keep', 'closed')
if not meta[1] then return ${UNKNOWN} end
if meta[4] then return ${CLOSED} end
local size, bits, keep = tonumber(meta[1]), tonumber(meta[2]), tonumber(meta[3])
local now = tonumber(redis.call('TIME')[1])
local exp, grace = tonumber(ARGV[1]), tonumber(ARGV[2])
for candidate in string.gmatch(ARGV[4], '%d+') do
  local idx = tonumber(candidate)
  if idx < size
    and redis.call('BITFIELD', KEYS[2], 'GET', 'u32', '#' .. idx)[1] + grace <= now
    and redis.call('BITFIELD', KEYS[3], 'GET', 'u' .. bits, offset(idx, bits))[1] == 0 then
    redis.call('BITFIELD', KEYS[2], 'SET', 'u32', '#' .. idx, exp)
    if exp + grace >= keep then
      keep = exp + grace + tonumber(ARGV[3])
      redis.call('HSET', KEYS[1], 'keep', keep)
      for k = 1, 3 do redis.call('EXPIREAT', KEYS[k], keep) end
    end
    return idx
  end
end
return ${FULL}
`);

// Sets the status of live entries (exp plus grace not passed); INVALID is final, and a 1-bit
// list stores SUSPENDED as INVALID (storedValue in format.ts). Returns how many now hold the
// value.   KEYS: meta, status   ARGV: status, grace, then idx, exp pairs
const SET_STATUS = new LuaScript<number>(`${OFFSET}
local meta = redis.call('HMGET', KEYS[1], 'size', 'bits', 'keep')
if not meta[1] then return 0 end
local size, bits = tonumber(meta[1]), tonumber(meta[2])
local now = tonumber(redis.call('TIME')[1])
local value, grace = tonumber(ARGV[1]), tonumber(ARGV[2])
if bits == 1 and value > 1 then value = 1 end
local field = 'u' .. bits
local set = 0
for i = 3, #ARGV, 2 do
  local idx, exp = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  if idx >= 0 and idx < size and exp + grace > now then
    local at = offset(idx, bits)
    local current = redis.call('BITFIELD', KEYS[2], 'GET', field, at)[1]
    if current == value then
      set = set + 1
    elseif current ~= 1 then
      redis.call('BITFIELD', KEYS[2], 'SET', field, at, value)
      set = set + 1
    end
  end
end
if set > 0 then redis.call('EXPIREAT', KEYS[2], meta[3]) end
return set
`);

// Makes `candidate` current if `current` still names `expected` ('' for none); returns the id
// that is current afterwards.   KEYS: current   ARGV: expected, candidate
const REPLACE_CURRENT = new LuaScript<string>(`
local current = redis.call('GET', KEYS[1])
if (current or '') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return ARGV[2]
end
return current
`);

// Retires a list (if it still exists: HSET alone would create it).   KEYS: meta
const CLOSE = new LuaScript<number>(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'closed', '1')
return 1
`);

/** Pairs per SET_STATUS call, so one script never holds Redis for long (a user with thousands of live tokens). */
const SET_BATCH = 512;
/** How long a status change waits for the replicas behind Sentinel (REDIS_WAIT_REPLICAS), as the short-lived store does. */
const REPLICA_WAIT_MS = 250;
/** Moves per allocation from lists that cannot take more. Each lands on a list just made, with every index free, so in use one is the most; more than a few means something is broken (a list that answers full whatever it is asked). */
const MAX_MOVES = 16;

export interface RedisStatusListStoreOptions {
  keyPrefix: string;
  size?: number;
  bits?: StatusBits;
  reuseGraceSeconds?: number;
  /**
   * Replicas that must confirm a status change before it counts (Redis WAIT), as
   * REDIS_WAIT_REPLICAS: a revocation lost in a failover would be a revoked token accepted again.
   * Allocations are not waited for here: on the issuing path, the token's own confirmed write
   * (the short-lived store's WAIT) follows on the same connection and covers them.
   */
  waitReplicas?: number;
  /** Tests only: where the indexes tried come from. */
  candidates?: CandidateSource;
}

export class RedisStatusListStore implements StatusListStore {
  readonly kind = 'redis';
  readonly #client: RedisClient;
  readonly #prefix: string;
  readonly #size: number;
  readonly #bits: StatusBits;
  readonly #grace: number;
  readonly #waitReplicas: number;
  readonly #candidates: CandidateSource;
  /** The list this process allocates from, until a script says it cannot. */
  #current: string | undefined;
  /** The move in progress from the list named, shared by the allocations that found it unusable. */
  #moving: { from: string; next: Promise<string> } | undefined;

  constructor(client: RedisClient, options: RedisStatusListStoreOptions) {
    this.#client = client;
    this.#prefix = options.keyPrefix;
    this.#size = options.size ?? STATUS_LIST_DEFAULTS.size;
    this.#bits = options.bits ?? STATUS_LIST_DEFAULTS.bits;
    this.#grace = options.reuseGraceSeconds ?? STATUS_LIST_DEFAULTS.reuseGraceSeconds;
    this.#waitReplicas = options.waitReplicas ?? 0;
    this.#candidates = options.candidates ?? randomCandidates;
  }

  get currentKey(): string {
    return `${this.#prefix}status-list:current`;
  }

  /** The keys of one list, all in its slot. */
  keys(list: string): { meta: string; status: string; held: string } {
    const base = `${this.#prefix}status-list:{sl:${list}}`;
    return { meta: `${base}:meta`, status: `${base}:status`, held: `${base}:held` };
  }

  async allocate(exp: number): Promise<StatusSlot> {
    checkExp(exp);
    return this.#run(async () => {
      let list = this.#current ?? (await this.#moveFrom(undefined));
      for (let moves = 0; ; moves++) {
        const k = this.keys(list);
        const idx = await ALLOCATE.run(this.#client, [k.meta, k.held, k.status], [exp, this.#grace, LIST_KEEP_SECONDS, this.#candidates(this.#size, PROBES).join(',')]);
        if (idx >= 0) return { list, idx, exp };
        if (moves === MAX_MOVES) throw new VeilError('internal', `no status list index could be allocated (the list answered ${idx})`);
        list = await this.#moveFrom(list);
      }
    });
  }

  /**
   * The list to allocate from instead of `from` (full, closed, gone; undefined: none known
   * yet). One move per process at a time: concurrent allocations that found the same list
   * unusable wait for the same answer.
   */
  #moveFrom(from: string | undefined): Promise<string> {
    if (from !== undefined && this.#current !== from) return Promise.resolve(this.#current!);
    if (this.#moving && this.#moving.from === (from ?? '')) return this.#moving.next;
    const next = this.#replace(from).finally(() => {
      if (this.#moving?.next === next) this.#moving = undefined;
    });
    this.#moving = { from: from ?? '', next };
    return next;
  }

  async #replace(from: string | undefined): Promise<string> {
    // At start-up, take the current list others use, if there is one.
    if (from === undefined) {
      const current = await this.#client.get(this.currentKey);
      if (current !== null && isListId(current)) return (this.#current = current);
    }
    // A new list, made current only if `from` still is; if another process got there first,
    // its list is the one and ours goes.
    const candidate = newListId();
    const k = this.keys(candidate);
    const keep = Math.floor(Date.now() / 1000) + LIST_KEEP_SECONDS;
    await this.#client.multi().hset(k.meta, { size: this.#size, bits: this.#bits, keep }).expireat(k.meta, keep).exec();
    const winner = await REPLACE_CURRENT.run(this.#client, [this.currentKey], [from ?? '', candidate]);
    if (winner !== candidate) await this.#client.del(k.meta);
    if (from !== undefined) await CLOSE.run(this.#client, [this.keys(from).meta]);
    return (this.#current = winner);
  }

  async setStatus(slot: StatusSlot, status: TokenStatus): Promise<boolean> {
    return (await this.setStatuses([slot], status)) === 1;
  }

  async setStatuses(slots: readonly StatusSlot[], status: TokenStatus): Promise<number> {
    return this.#run(async () => {
      // Every list's calls at once: auto-pipelined, one round trip for a revocation that spans lists.
      const calls: Array<Promise<number>> = [];
      for (const [list, group] of byList(slots)) {
        if (!isListId(list)) continue;
        const k = this.keys(list);
        for (let i = 0; i < group.length; i += SET_BATCH) {
          const pairs = group.slice(i, i + SET_BATCH).flatMap((s) => [s.idx, s.exp]);
          calls.push(SET_STATUS.run(this.#client, [k.meta, k.status], [status, this.#grace, ...pairs]));
        }
      }
      const set = (await Promise.all(calls)).reduce((a, b) => a + Number(b), 0);
      if (calls.length) await this.#confirmed();
      return set;
    });
  }

  async read(list: string): Promise<StatusListSnapshot | undefined> {
    if (!isListId(list)) return undefined;
    const k = this.keys(list);
    const replies = await this.#run(() => this.#client.multi().hmget(k.meta, 'size', 'bits').getBuffer(k.status).exec());
    const [[metaError, meta], [statusError, stored]] = replies as [[Error | null, Array<string | null>], [Error | null, Buffer | null]];
    if (metaError || statusError) throw new StoreUnavailableError('Redis', metaError ?? statusError);
    const size = Number(meta[0]);
    const bits = Number(meta[1]) as StatusBits;
    if (meta[0] === null || !size || (bits !== 1 && bits !== 2)) return undefined;
    const bytes = Buffer.alloc(listByteLength(size, bits));
    stored?.copy(bytes, 0, 0, Math.min(stored.length, bytes.length));
    return { id: list, size, bits, bytes };
  }

  /** Behind Sentinel, the replicas must hold the change before it counts (see waitReplicas). */
  async #confirmed(): Promise<void> {
    if (this.#waitReplicas === 0) return;
    const acknowledged = Number(await this.#client.call('WAIT', this.#waitReplicas, REPLICA_WAIT_MS));
    if (acknowledged < this.#waitReplicas) throw new StoreUnavailableError('Redis', new Error(`${acknowledged} of ${this.#waitReplicas} replicas confirmed the status change`));
  }

  async #run<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      if (err instanceof VeilError) throw err;
      throw new StoreUnavailableError('Redis', err);
    }
  }
}
