/**
 * The state behind confidential-claim decisions and aggregates, in Redis (shared by every
 * process) or in process memory (embedded mode), each step one atomic operation:
 *
 *   decision cache + daily budget: one script claims the right to decide for (token, node,
 *     policy). An answer cached for it comes back as it is; else, if the (subject, claim, node)
 *     budget of the UTC day has a unit left, the unit is spent and a pending marker set in the
 *     same step, so of two concurrent requests exactly one decides and the other waits for its
 *     answer (same token) or finds the budget spent (other token, last unit).
 *   aggregate subjects: one script admits a set of subjects to an aggregate for (node, claim)
 *     only if none of them was counted within the window, and records them all.
 *
 * Keys are keyed hashes (AtRest.ids), never a raw account id or jti; the cached decision is
 * sealed at rest. One subject's keys share a hash tag, so a script's keys sit in one slot.
 */
import type { AtRest } from '../../store/at-rest.js';
import { LuaScript } from '../../store/lua-script.js';
import type { RedisClient } from '../../store/redis-connection.js';

export type DecisionClaim = { kind: 'cached'; decision: string } | { kind: 'pending' } | { kind: 'spent' } | { kind: 'granted' };

export interface DecisionSlot {
  /** The account (subject) the token is for: the daily budget's owner. */
  subject: string;
  claim: string;
  node: string;
  policy: string;
  /** The access token's jti. */
  jti: string;
  /** The UTC day, YYYY-MM-DD. */
  day: string;
}

export interface DecisionState {
  /** Claims the right to decide (see above); `limit`: the daily budget. */
  claim(slot: DecisionSlot, limit: number): Promise<DecisionClaim>;
  /** Caches the answer for (token, node, policy) until `ttlSeconds` (the token's remaining life). */
  settle(slot: DecisionSlot, decision: string, ttlSeconds: number): Promise<void>;
  /** Subjects admitted to an aggregate for (node, claim): false, and nothing recorded, if any was counted within the window. */
  admitSubjects(node: string, claim: string, subjects: readonly string[], windowSeconds: number): Promise<boolean>;
}

/** How long a claimed decision may take before its slot is free again (its budget unit stays spent). */
const PENDING_SECONDS = 10;
const PENDING = '\u0000pending';
/** A budget counter outlives its day by a margin (clock skew between processes). */
const BUDGET_TTL_SECONDS = 2 * 86400;

function names(atRest: AtRest, prefix: string, slot: DecisionSlot) {
  const tag = atRest.ids(`he-subject:${slot.subject}`)[0]!;
  return {
    cache: `${prefix}he:{${tag}}:decision:${atRest.ids(`${slot.jti}\u0000${slot.node}\u0000${slot.policy}`)[0]!}`,
    budget: `${prefix}he:{${tag}}:budget:${atRest.ids(`${slot.claim}\u0000${slot.node}`)[0]!}:${slot.day}`,
  };
}

const CLAIM = new LuaScript<[string, string]>(`
local cached = redis.call('GET', KEYS[1])
if cached then
  if cached == ARGV[4] then return {'pending', ''} end
  return {'cached', cached}
end
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
if used >= tonumber(ARGV[1]) then return {'spent', ''} end
redis.call('INCR', KEYS[2])
if used == 0 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[3])
return {'granted', ''}
`);

const ADMIT = new LuaScript<number>(`
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for i = 3, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then return 0 end
end
local until_ = now + tonumber(ARGV[2])
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], until_, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
`);

export class RedisDecisionState implements DecisionState {
  constructor(
    private readonly client: RedisClient,
    private readonly keyPrefix: string,
    private readonly atRest: AtRest,
  ) {}

  async claim(slot: DecisionSlot, limit: number): Promise<DecisionClaim> {
    const keys = names(this.atRest, this.keyPrefix, slot);
    const [kind, value] = await CLAIM.run(this.client, [keys.cache, keys.budget], [limit, BUDGET_TTL_SECONDS, PENDING_SECONDS, PENDING]);
    if (kind === 'cached') return { kind, decision: this.atRest.open(value, keys.cache) };
    return { kind: kind as 'pending' | 'spent' | 'granted' };
  }

  async settle(slot: DecisionSlot, decision: string, ttlSeconds: number): Promise<void> {
    const { cache } = names(this.atRest, this.keyPrefix, slot);
    await this.client.set(cache, this.atRest.seal(decision, cache), 'EX', Math.max(1, ttlSeconds));
  }

  async admitSubjects(node: string, claim: string, subjects: readonly string[], windowSeconds: number): Promise<boolean> {
    const key = `${this.keyPrefix}he:{${this.atRest.ids(`he-aggregate:${node}\u0000${claim}`)[0]!}}:subjects`;
    const members = subjects.map((s) => this.atRest.ids(`he-subject:${s}`)[0]!);
    return (await ADMIT.run(this.client, [key], [Date.now(), windowSeconds * 1000, ...members])) === 1;
  }
}

/** Embedded mode: the same rules in this process's memory (one process: every step is synchronous). */
export class MemoryDecisionState implements DecisionState {
  readonly #values = new Map<string, { value: string; until: number }>();
  readonly #counted = new Map<string, Map<string, number>>();

  constructor(private readonly atRest: AtRest) {}

  #get(key: string): string | undefined {
    const entry = this.#values.get(key);
    if (entry && entry.until > Date.now()) return entry.value;
    this.#values.delete(key);
    return undefined;
  }

  #set(key: string, value: string, seconds: number): void {
    this.#values.set(key, { value, until: Date.now() + seconds * 1000 });
    if (this.#values.size > 100_000) this.#sweep();
  }

  #sweep(): void {
    const now = Date.now();
    for (const [key, entry] of this.#values) if (entry.until <= now) this.#values.delete(key);
  }

  claim(slot: DecisionSlot, limit: number): Promise<DecisionClaim> {
    const keys = names(this.atRest, '', slot);
    const cached = this.#get(keys.cache);
    if (cached !== undefined) return Promise.resolve(cached === PENDING ? { kind: 'pending' } : { kind: 'cached', decision: cached });
    const used = Number(this.#get(keys.budget) ?? '0');
    if (used >= limit) return Promise.resolve({ kind: 'spent' });
    this.#set(keys.budget, String(used + 1), BUDGET_TTL_SECONDS);
    this.#set(keys.cache, PENDING, PENDING_SECONDS);
    return Promise.resolve({ kind: 'granted' });
  }

  settle(slot: DecisionSlot, decision: string, ttlSeconds: number): Promise<void> {
    this.#set(names(this.atRest, '', slot).cache, decision, Math.max(1, ttlSeconds));
    return Promise.resolve();
  }

  admitSubjects(node: string, claim: string, subjects: readonly string[], windowSeconds: number): Promise<boolean> {
    const key = `${node}\u0000${claim}`;
    const now = Date.now();
    let counted = this.#counted.get(key);
    if (!counted) this.#counted.set(key, (counted = new Map<string, number>()));
    for (const [subject, until] of counted) if (until <= now) counted.delete(subject);
    if (subjects.some((s) => counted.has(s))) return Promise.resolve(false);
    for (const s of subjects) counted.set(s, now + windowSeconds * 1000);
    return Promise.resolve(true);
  }
}
