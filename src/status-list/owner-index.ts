/**
 * Which live status-list slots belong to whom: per grant, client, account and subject token, the
 * slots of the tokens issued under it, so revoking a grant, deleting a client or disabling a user
 * can set the bits of every affected token at once. Entries carry their token's `exp` and are
 * pruned once it (plus the reuse grace) has passed, so an index holds live tokens only.
 *
 * Redis: one sorted set per owner, `<p>status-owner:{so:<owner>}` (member: the encoded slot,
 * score: exp), expiring after its last member; memory: the same in a Map.
 */
import { StoreUnavailableError } from '../store/errors.js';
import { LuaScript } from '../store/lua-script.js';
import type { RedisClient } from '../store/redis-connection.js';
import { decodeSlot, encodeSlot, type StatusSlot } from './store.js';

export interface StatusOwnerIndex {
  /** Records `slot` under every owner (one round trip: the calls are pipelined). */
  add(owners: readonly string[], slot: StatusSlot): Promise<void>;
  /** The slots under `owner` whose token is still live (exp plus grace not passed). */
  slots(owner: string): Promise<StatusSlot[]>;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

// Adds the slot, drops what has expired, and keeps the key until its last member's exp plus grace.
//   KEYS: the owner's set   ARGV: slot, exp, grace
const ADD = new LuaScript<number>(`
local now = tonumber(redis.call('TIME')[1])
local grace = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - grace)
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] then redis.call('EXPIREAT', KEYS[1], tonumber(top[2]) + grace + 1) end
return 1
`);

export class RedisStatusOwnerIndex implements StatusOwnerIndex {
  constructor(
    private readonly client: RedisClient,
    private readonly keyPrefix: string,
    private readonly graceSeconds: number,
  ) {}

  key(owner: string): string {
    return `${this.keyPrefix}status-owner:{so:${owner}}`;
  }

  async add(owners: readonly string[], slot: StatusSlot): Promise<void> {
    const member = encodeSlot(slot);
    try {
      await Promise.all(owners.map((owner) => ADD.run(this.client, [this.key(owner)], [member, slot.exp, this.graceSeconds])));
    } catch (err) {
      throw new StoreUnavailableError('Redis', err);
    }
  }

  async slots(owner: string): Promise<StatusSlot[]> {
    let members: string[];
    try {
      members = await this.client.zrangebyscore(this.key(owner), nowSeconds() - this.graceSeconds, '+inf');
    } catch (err) {
      throw new StoreUnavailableError('Redis', err);
    }
    return members.map(decodeSlot).filter((s): s is StatusSlot => s !== undefined);
  }
}

/** Adds between two sweeps of every owner in memory (owners nobody revokes are dropped there). */
const SWEEP_EVERY = 4096;

export class MemoryStatusOwnerIndex implements StatusOwnerIndex {
  readonly #owners = new Map<string, Map<string, StatusSlot>>();
  #adds = 0;

  constructor(private readonly graceSeconds: number) {}

  async add(owners: readonly string[], slot: StatusSlot): Promise<void> {
    const live = nowSeconds() - this.graceSeconds;
    if (++this.#adds % SWEEP_EVERY === 0) for (const owner of [...this.#owners.keys()]) await this.slots(owner);
    for (const owner of owners) {
      let entries = this.#owners.get(owner);
      if (!entries) this.#owners.set(owner, (entries = new Map<string, StatusSlot>()));
      for (const [member, s] of entries) if (s.exp < live) entries.delete(member);
      entries.set(encodeSlot(slot), slot);
    }
  }

  async slots(owner: string): Promise<StatusSlot[]> {
    const live = nowSeconds() - this.graceSeconds;
    const entries = this.#owners.get(owner);
    if (!entries) return [];
    for (const [member, s] of entries) if (s.exp < live) entries.delete(member);
    if (entries.size === 0) this.#owners.delete(owner);
    return [...entries.values()];
  }
}
