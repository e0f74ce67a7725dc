/**
 * ShortLivedStore on Redis: a single server, a master behind Sentinel, or a Redis Cluster. Every
 * key carries the configured prefix and, where it is built from a bearer value (token, code,
 * session id), only a keyed hash of it; every payload is encrypted and bound to its key
 * (src/store/at-rest.ts). Entries have TTLs; grant-owned entries are also listed per grant so a
 * revoked grant takes all of its tokens with it.
 *
 * Key layout (H = keyed hash of an id; {…} = the Redis Cluster hash tag that picks the slot):
 *   in a grant's slot, {g:<grantId>}: everything a script touches for one grant
 *     <p>grant:{g:<grantId>}                  list of the grant's record keys (kept short: GRANT_LIST_MAX)
 *     <p>revoked-grant:{g:<grantId>}          the grant was revoked: refuse further writes for it
 *     <p><Model>:{g:<grantId>}:H(id)          record of a grant-owned entry (codes, refresh and access tokens)
 *     <p><Model>:{g:<grantId>}:H(id):consumed when it was consumed
 *     <p>revoked-jti:{g:<grantId>}:H(jti)     the revocation blacklist, for the grant's access tokens
 *   in an id's own slot, {H(id)}:
 *     <p><Model>:{H(id)}:grant                the grant id of a grant-owned entry: where its record is
 *     <p><Model>:{H(id)}                      record of an entry of no grant (sessions, interactions,
 *     <p><Model>:{H(id)}:consumed               client-credentials tokens, ...) and its consumed marker
 *     <p>revoked-jti:{H(jti)}                 the blacklist, for tokens of no grant (and by jti)
 *   single keys, each in a slot of its own:
 *     <p><Model>:uid:H(uid)                   sealed id, for findByUid (and :userCode: likewise)
 *     <p>issued:H(sha256(token))              the record key (less <p>) of a sealed access token
 *     <p>once:H(key)                          replay detection
 * An id alone does not tell its grant, so a look-up by id reads the id's own slot first (record
 * or grant reference, one MGET), then, for a grant-owned entry, the grant's slot; the grant of an
 * entry never changes, so the two steps need no atomicity. Every script's keys are in one slot:
 * a grant's scripts (write, rotate, revoke, list bound) only touch its slot, consume touches one
 * record and its marker. Written before this layout (single Redis only: Cluster was not
 * supported), entries under `<p><Model>:H(id)`, `<p>grant:<grantId>` and `<p>revoked-grant:…`
 * are still read, consumed, rotated and revoked when the connection is not a Cluster.
 * Scripts run by their SHA (lua-script.ts). The connection is made by redis-connection.ts and
 * shared with the invalidation bus and the throttles.
 */
import type { AdapterPayload } from 'oidc-provider';
import { plainAtRest, type AtRest } from './at-rest.js';
import { StoreUnavailableError } from './errors.js';
import { LuaScript } from './lua-script.js';
import type { RedisClient } from './redis-connection.js';
import {
  GRANTABLE_MODELS,
  GRANT_LIST_MAX,
  GrantRevokedError,
  SEALED_MODELS,
  type IssuedIndexEntry,
  type IssuedTokenRecord,
  type RefreshRotation,
  type RotationOutcome,
  type ShortLivedStore,
} from './short-lived-store.js';

// Marks an entry consumed only if it exists and is not consumed yet, for the entry's remaining
// lifetime. Returns 1 to the single winner.   KEYS: record, consumed marker   ARGV: now
const CONSUME = new LuaScript<number>(`
local ttl = redis.call('TTL', KEYS[1])
if ttl == -2 then return 0 end
if ttl < 1 then ttl = 1 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ttl) then return 1 end
return 0
`);

// Lists a record on its grant (a Lua function shared by the writing scripts).
// The grant's list stays short (see GRANT_LIST_MAX): every GRANT_LIST_MAX appends once it holds
// twice that, it is rebuilt from its live entries. Dead entries (expired, or consumed codes and
// refresh tokens) are dropped; live refresh tokens and codes all stay (each is a session of the
// user's); of the live access tokens the newest GRANT_LIST_MAX stay, and older ones are revoked
// here and now (blacklisted for their remaining lifetime, then deleted), so nothing alive is ever
// left off the list that revoking the grant walks.
const LIST_ON_GRANT = `
local function listOnGrant(record, list, ttl, bound, tokenPrefix, blacklistPrefix)
  local listTtl = redis.call('TTL', list)
  local length = redis.call('RPUSH', list, record)
  if length >= 2 * bound and length % bound == 0 then
    local entries = redis.call('LRANGE', list, 0, -1)
    local live, seen, accessTokens = {}, {}, 0
    for i = #entries, 1, -1 do
      local key = entries[i]
      if not seen[key] then
        seen[key] = true
        if redis.call('EXISTS', key) == 1 and redis.call('EXISTS', key .. ':consumed') == 0 then
          if string.sub(key, 1, #tokenPrefix) ~= tokenPrefix then
            table.insert(live, key)
          elseif accessTokens < bound then
            accessTokens = accessTokens + 1
            table.insert(live, key)
          else
            local left = redis.call('TTL', key)
            if left > 0 then redis.call('SET', blacklistPrefix .. string.sub(key, #tokenPrefix + 1), '1', 'EX', left) end
            redis.call('DEL', key)
          end
        end
      end
    end
    redis.call('DEL', list)
    for i = #live, 1, -1 do redis.call('RPUSH', list, live[i]) end
  end
  if listTtl > ttl then ttl = listTtl end
  redis.call('EXPIRE', list, ttl)
end
`;

// Writes a grant-owned entry, unless its grant has been revoked: the check and the write are one
// step, so a refresh that loaded its token before a revocation cannot write a new token after it.
//   KEYS: record, grant list, revoked-grant marker(s) (the old layout's too, on a single Redis)
//   ARGV: payload, ttl, list bound, access-token key prefix, blacklist key prefix
const GUARDED_UPSERT = new LuaScript<number>(`${LIST_ON_GRANT}
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
listOnGrant(KEYS[1], KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5])
return 1
`);

// One refresh, in one step: consumes the presented refresh token (exactly one winner) and writes
// its successor on the grant's list (unless the grant was revoked meanwhile), then the extra
// writes that go with it (on a single Redis: the successor's grant reference and the access
// token's index; on a Cluster they are in other slots and written beside the script). Returns 1
// rotated, 0 reused (already consumed), 2 grant revoked, 3 no such record (under this key form);
// nothing is written unless it returns 1.
//   KEYS: presented record, its consumed marker, successor record, grant list, extra keys (n),
//         revoked-grant marker(s)
//   ARGV: now, successor payload, successor ttl, list bound, access-token key prefix, blacklist key
//         prefix, n, then value and ttl of each extra key
const ROTATE_REFRESH = new LuaScript<number>(`${LIST_ON_GRANT}
local extra = tonumber(ARGV[7])
for i = 5 + extra, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 2 end
end
local ttl = redis.call('TTL', KEYS[1])
if ttl == -2 then return 3 end
if ttl < 1 then ttl = 1 end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ttl) then return 0 end
redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[3])
listOnGrant(KEYS[3], KEYS[4], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6])
for i = 1, extra do
  redis.call('SET', KEYS[4 + i], ARGV[6 + 2 * i], 'EX', ARGV[7 + 2 * i])
end
return 1
`);

// Takes back a rotation that could not be confirmed (its request answered 503, so nobody
// received the successor): if the successor is still stored and unredeemed, it is deleted and the
// presented token's consumed marker removed, so the client's retry of the presented token rotates
// it again instead of counting as reuse (which would revoke the grant). The successor exists only
// if this rotation consumed the presented token (they are written in one step, and its id is
// new), so taking back never reopens a token another rotation consumed. Returns 1 if it took back.
//   KEYS: successor record, its consumed marker, the presented token's consumed marker(s)
const TAKE_BACK_ROTATION = new LuaScript<number>(`
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
for i = 1, #KEYS do
  if i ~= 2 then redis.call('DEL', KEYS[i]) end
end
return 1
`);

// Reads one stored form of an id in one step (single Redis only: it reads a key it is not given,
// the record in the grant's slot that the grant reference names). Returns the grant id (or
// false), then record and consumed marker of: the grant's slot, the id's own slot, the old layout.
//   KEYS: grant reference, own record, own consumed marker, old-layout record, its consumed marker
//   ARGV: the grant-slot record key's parts around the grant id: '<p><Model>:{g:', '}:<H>'
const LOCATE = new LuaScript<Array<string | null | false>>(`
local grantId = redis.call('GET', KEYS[1])
local inGrant, inGrantConsumed = false, false
if grantId then
  local key = ARGV[1] .. grantId .. ARGV[2]
  inGrant = redis.call('GET', key)
  inGrantConsumed = redis.call('GET', key .. ':consumed')
end
return { grantId, inGrant, inGrantConsumed, redis.call('GET', KEYS[2]), redis.call('GET', KEYS[3]), redis.call('GET', KEYS[4]), redis.call('GET', KEYS[5]) }
`);

// Records a replay key unless any of its forms is recorded already. Only the first form is ever
// written; the others are older namings (see AtRest), still checked until they expire. Single
// Redis only: on a Cluster the forms are in different slots (see claimOnce).
//   KEYS: every form, the one to write first   ARGV: ttl
const CLAIM_ONCE = new LuaScript<number>(`
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
if redis.call('SET', KEYS[1], '1', 'EX', ARGV[1], 'NX') then return 1 end
return 0
`);

// Revokes a grant in one step: deletes every entry listed for it, blacklists each of its access
// tokens for as long as the token would have lived, and marks the grant revoked so no write for
// it can follow (see GUARDED_UPSERT).
//   KEYS: the grant's list(s), then its revoked-grant marker(s) (the old layout's too, on a single Redis)
//   ARGV: marker ttl, access-token key prefix, blacklist key prefix, how many KEYS are lists
const REVOKE_GRANT = new LuaScript<number>(`
local tokenPrefix = ARGV[2]
local lists = tonumber(ARGV[4])
local count = 0
for l = 1, lists do
  local keys = redis.call('LRANGE', KEYS[l], 0, -1)
  for _, key in ipairs(keys) do
    if string.sub(key, 1, #tokenPrefix) == tokenPrefix then
      local ttl = redis.call('TTL', key)
      if ttl > 0 then redis.call('SET', ARGV[3] .. string.sub(key, #tokenPrefix + 1), '1', 'EX', ttl) end
    end
    redis.call('DEL', key, key .. ':consumed')
  end
  redis.call('DEL', KEYS[l])
  count = count + #keys
end
for m = lists + 1, #KEYS do redis.call('SET', KEYS[m], '1', 'EX', ARGV[1]) end
return count
`);

// Resolves an issued-token index entry (a record key less the prefix) to its record and blacklist
// state in one round trip. Single Redis only (the record is in another slot than the index).
//   KEYS: index   ARGV: key prefix, blacklist key prefix
const LOOKUP_ISSUED = new LuaScript<[string, string | null, number] | null>(`
local ref = redis.call('GET', KEYS[1])
if not ref then return nil end
local sep = string.find(ref, ':', 1, true)
return { ref, redis.call('GET', ARGV[1] .. ref), redis.call('EXISTS', ARGV[2] .. string.sub(ref, sep + 1)) }
`);

export interface RedisStoreOptions {
  keyPrefix: string;
  /** Keyed hashing of ids and payload encryption; plain only in store-semantics tests. */
  atRest?: AtRest;
  /**
   * Replicas that must confirm each write that matters before it counts (Redis WAIT): behind
   * Sentinel, replication is asynchronous, and a failover would otherwise lose the last writes the
   * old master took (a rotation, a revocation: a revoked token active again). 0: no wait.
   */
  waitReplicas?: number;
}

/** How long a write waits for its replicas before the request answers 503. */
const REPLICA_WAIT_MS = 250;
/** After a WAIT that found too few replicas, how long writes fail at once rather than block the shared connection with more WAITs. */
const REPLICAS_MISSING_MS = 1000;
/** How often corrections not yet confirmed are tried again (see #untilConfirmed). */
const REAPPLY_MS = 500;
/** At most this many corrections wait to be re-applied (a long outage); beyond it the oldest is given up. */
const REAPPLY_MAX = 10_000;

/** A record key, with the record and its consumed marker as read (undefined: not read yet). */
interface Slot {
  key: string;
  raw?: string | null;
  consumed?: string | null;
}

/** Where one stored form (H) of an id lives: its own slot's record, and its grant's record key when it belongs to one. */
interface Located {
  h: string;
  /** The record in the grant's slot (from the id's grant reference), not read yet. */
  inGrant: Slot | undefined;
  /** The record in the id's own slot (an entry of no grant), read with the grant reference. */
  own: Slot;
  /** The old layout's record (single Redis only), read likewise. */
  legacy: Slot | undefined;
}

const seconds = (s: number) => Math.max(1, Math.ceil(s));

export class RedisStore implements ShortLivedStore {
  readonly kind = 'redis';
  readonly #client: RedisClient;
  readonly #prefix: string;
  readonly #atRest: AtRest;
  /** On a single Redis (or Sentinel), entries of the old key layout are still read. */
  readonly #legacy: boolean;
  readonly #waitReplicas: number;
  /** The WAIT not sent yet, which callers in this tick share (see #confirmed). */
  #pendingWait: Promise<number> | undefined;
  #replicasMissingUntil = 0;
  /**
   * Corrections (revocations of a grant or an access token, take-backs of rotations) whose write
   * no replica confirmed, by what they correct: each is applied again every REAPPLY_MS (and when
   * the connection is ready again) until a replica confirms it, or until it no longer matters
   * (what it ended would have expired). See #untilConfirmed.
   */
  readonly #unconfirmed = new Map<string, { apply: () => Promise<void>; until: number }>();
  #reapplyTimer: NodeJS.Timeout | undefined;
  #reapplying = false;
  #closed = false;

  /** `client` is the process's one Redis connection (redis-connection.ts), shared with the bus and the throttles. */
  constructor(client: RedisClient, options: RedisStoreOptions) {
    this.#client = client;
    this.#prefix = options.keyPrefix;
    this.#atRest = options.atRest ?? plainAtRest;
    this.#waitReplicas = options.waitReplicas ?? 0;
    this.#legacy = !client.isCluster;
    // Reconnected (after a failover: to the new master): corrections at once, before clients retry.
    client.on('ready', () => {
      if (this.#unconfirmed.size > 0) void this.#reapply();
    });
  }

  // --- key names (see the layout above) ---

  #hashes(id: string): string[] {
    return this.#atRest.ids(id);
  }
  #own(model: string, h: string): string {
    return `${this.#prefix}${model}:{${h}}`;
  }
  #grantRef(model: string, h: string): string {
    return `${this.#own(model, h)}:grant`;
  }
  #inGrant(model: string, grantId: string, h: string): string {
    return `${this.#prefix}${model}:{g:${grantId}}:${h}`;
  }
  #legacyKey(model: string, h: string): string {
    return `${this.#prefix}${model}:${h}`;
  }
  #grantList(grantId: string): string {
    return `${this.#prefix}grant:{g:${grantId}}`;
  }
  #revokedGrant(grantId: string): string {
    return `${this.#prefix}revoked-grant:{g:${grantId}}`;
  }
  /** The grant's lists and revoked markers: this layout's, then (single Redis) the old one's. */
  #grantLists(grantId: string): string[] {
    return this.#legacy ? [this.#grantList(grantId), `${this.#prefix}grant:${grantId}`] : [this.#grantList(grantId)];
  }
  #revokedGrants(grantId: string): string[] {
    return this.#legacy ? [this.#revokedGrant(grantId), `${this.#prefix}revoked-grant:${grantId}`] : [this.#revokedGrant(grantId)];
  }
  #index(model: string, kind: string, h: string): string {
    return `${this.#prefix}${model}:${kind}:${h}`;
  }
  #issuedKey(h: string): string {
    return `${this.#prefix}issued:${h}`;
  }
  get #blacklistPrefix(): string {
    return `${this.#prefix}revoked-jti:`;
  }
  get #tokenPrefix(): string {
    return `${this.#prefix}${SEALED_MODELS[0]}:`;
  }
  /** The blacklist entry that goes with a record key: same slot, `revoked-jti:` for `<Model>:`. */
  #blacklistOf(recordKey: string): string {
    const rest = recordKey.slice(this.#prefix.length);
    return `${this.#blacklistPrefix}${rest.slice(rest.indexOf(':') + 1)}`;
  }

  /**
   * Waits until the configured replicas hold every write this connection made so far (the
   * connection is shared, so the writes of requests in flight beside this one are covered too).
   * Not confirmed in time: the write may not survive a failover, so the request fails (503)
   * rather than answer as if it had.
   */
  async #confirmed(): Promise<void> {
    if (this.#waitReplicas === 0) return;
    const unconfirmed = (acknowledged: number) => new StoreUnavailableError('Redis', new Error(`${acknowledged} of ${this.#waitReplicas} replicas confirmed the write`));
    // Replicas were missing a moment ago (a failover under way): fail now, WAIT again shortly.
    if (Date.now() < this.#replicasMissingUntil) throw unconfirmed(0);
    // WAIT blocks the connection it is sent on, so requests share one: every caller's write was
    // answered before it asked, so one WAIT sent after all of them covers them all. The next
    // caller after it is sent starts the next one.
    this.#pendingWait ??= (async () => {
      await Promise.resolve();
      this.#pendingWait = undefined;
      return Number(await this.#client.call('WAIT', this.#waitReplicas, REPLICA_WAIT_MS));
    })();
    const acknowledged = await this.#pendingWait;
    if (acknowledged < this.#waitReplicas) {
      this.#replicasMissingUntil = Date.now() + REPLICAS_MISSING_MS;
      throw unconfirmed(acknowledged);
    }
  }

  /**
   * Runs a correction (a revocation, or the take-back of an unconfirmed rotation) and has it
   * confirmed; if either fails, keeps re-applying it until a replica confirms it, and rethrows
   * (a revocation's request answers 503: its outcome is not known).
   *
   * Why: behind Sentinel, a write can land on the old master in the moment between the promotion
   * of its replica and this connection's move to the new master (the old one still takes writes,
   * and drops them when it rejoins as a replica), or reach a master whose reply is lost. A grant
   * ended that way is gone from PostgreSQL but not from Redis: its refresh tokens would stay
   * stored, among them a successor that a rotation answered 503 never delivered. A rotation
   * answered 503 that did happen would make the client's retry count as reuse and revoke the
   * grant. Applied again once the connection reaches the new master, the revocation takes the
   * tokens with it, and the take-back lets the retry rotate. A correction only ends what its
   * caller asked to end, or what nobody received, and running it twice changes nothing; so
   * re-applying one is safe whatever its caller was told. Writes that create (a rotation, a new
   * token) are never re-applied. The list lives in this process: a process that dies first
   * leaves those records until they expire, unusable all the same (every refresh and
   * introspection checks the grant row; nobody holds an undelivered successor).
   */
  async #untilConfirmed(key: string, lifetimeSeconds: number, apply: () => Promise<void>): Promise<void> {
    try {
      await this.#run(async () => {
        await apply();
        await this.#confirmed();
      });
      this.#unconfirmed.delete(key);
    } catch (err) {
      if (!(err instanceof GrantRevokedError)) this.#remember(key, lifetimeSeconds, apply);
      throw err;
    }
  }

  #remember(key: string, lifetimeSeconds: number, apply: () => Promise<void>): void {
    if (this.#closed) return;
    this.#unconfirmed.delete(key); // re-inserted last: the map stays in age order
    this.#unconfirmed.set(key, { apply, until: Date.now() + lifetimeSeconds * 1000 });
    while (this.#unconfirmed.size > REAPPLY_MAX) this.#unconfirmed.delete(this.#unconfirmed.keys().next().value!);
    this.#scheduleReapply();
  }

  #scheduleReapply(): void {
    if (this.#reapplyTimer || this.#closed || this.#unconfirmed.size === 0) return;
    this.#reapplyTimer = setTimeout(() => {
      this.#reapplyTimer = undefined;
      void this.#reapply();
    }, REAPPLY_MS);
    this.#reapplyTimer.unref();
  }

  /** One pass over the unconfirmed corrections: all applied again, then one confirmation for all. */
  async #reapply(): Promise<void> {
    if (this.#reapplying) return;
    this.#reapplying = true;
    try {
      const now = Date.now();
      for (const [key, { until }] of this.#unconfirmed) if (until <= now) this.#unconfirmed.delete(key);
      const batch = [...this.#unconfirmed];
      if (batch.length === 0) return;
      const applied = await Promise.all(
        batch.map(([, { apply }]) =>
          apply().then(
            () => true,
            () => false,
          ),
        ),
      );
      await this.#confirmed();
      // Confirmed: everything this connection wrote before the WAIT is on a replica. Entries
      // remembered again meanwhile (a newer failure) are a different object and stay.
      batch.forEach(([key, entry], i) => {
        if (applied[i] && this.#unconfirmed.get(key) === entry) this.#unconfirmed.delete(key);
      });
    } catch {
      // Still no master, or no replica: the next pass tries again.
    } finally {
      this.#reapplying = false;
      this.#scheduleReapply();
    }
  }

  /** Corrections still waiting for a replica's confirmation (tests, diagnostics). */
  get unconfirmedCorrections(): number {
    return this.#unconfirmed.size;
  }

  async #run<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      if (err instanceof GrantRevokedError) throw err;
      throw new StoreUnavailableError('Redis', err);
    }
  }

  #seal(payload: AdapterPayload, key: string): string {
    return this.#atRest.seal(JSON.stringify(payload), key);
  }

  #open(raw: string, key: string): AdapterPayload {
    return JSON.parse(this.#atRest.open(raw, key)) as AdapterPayload;
  }

  /**
   * Each stored form of an id (current master key first), in one round trip: its grant reference
   * and its own slot's record (one MGET per form, one slot; on a single Redis the old layout's
   * record too). A grant-owned record is then read from the grant's slot.
   */
  async #locate(model: string, id: string): Promise<Located[]> {
    return Promise.all(this.#hashes(id).map((h) => this.#locateForm(model, h)));
  }

  /** One stored form (H) of an id: see #locate. */
  async #locateForm(model: string, h: string): Promise<Located> {
    const own = this.#own(model, h);
    if (this.#legacy) {
      // A single Redis: both steps in one script.
      const legacy = this.#legacyKey(model, h);
      const [grantId, inGrant, inGrantConsumed, raw, consumed, legacyRaw, legacyConsumed] = (
        await LOCATE.run(this.#client, [this.#grantRef(model, h), own, `${own}:consumed`, legacy, `${legacy}:consumed`], [`${this.#prefix}${model}:{g:`, `}:${h}`])
      ).map((v) => (typeof v === 'string' ? v : null));
      return {
        h,
        inGrant: grantId ? { key: this.#inGrant(model, grantId, h), raw: inGrant, consumed: inGrantConsumed } : undefined,
        own: { key: own, raw, consumed },
        legacy: { key: legacy, raw: legacyRaw, consumed: legacyConsumed },
      };
    }
    // A Cluster: the id's own slot (one MGET), then the grant's slot when it names one.
    const [grantId, raw, consumed] = await this.#client.mget(this.#grantRef(model, h), own, `${own}:consumed`);
    return { h, inGrant: grantId ? { key: this.#inGrant(model, grantId, h) } : undefined, own: { key: own, raw, consumed }, legacy: undefined };
  }

  /** The payload of a record slot, read now unless it was read with the locate. */
  async #payload(slot: Slot): Promise<AdapterPayload | undefined> {
    if (slot.raw === undefined) [slot.raw = null, slot.consumed = null] = await this.#client.mget(slot.key, `${slot.key}:consumed`);
    if (!slot.raw) return undefined;
    const payload = this.#open(slot.raw, slot.key);
    if (slot.consumed) payload.consumed = Number(slot.consumed);
    return payload;
  }

  async upsert(model: string, id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const h = this.#hashes(id)[0]!;
    const ttl = seconds(expiresIn);
    const grantId = GRANTABLE_MODELS.has(model) && typeof payload.grantId === 'string' ? payload.grantId : undefined;
    const key = grantId ? this.#inGrant(model, grantId, h) : this.#own(model, h);
    const sealed = this.#seal(payload, key);
    await this.#run(async () => {
      const writes: Array<Promise<unknown>> = [];
      for (const [index, value] of [
        ['userCode', payload.userCode],
        ['uid', payload.uid],
      ] as const) {
        if (!value) continue;
        const indexKey = this.#index(model, index, this.#hashes(value)[0]!);
        writes.push(this.#client.set(indexKey, this.#atRest.seal(id, indexKey), 'EX', ttl));
      }
      if (!grantId) {
        await Promise.all([this.#client.set(key, sealed, 'EX', ttl), ...writes]);
        return;
      }
      const grantRef = this.#grantRef(model, h);
      const [written] = await Promise.all([
        GUARDED_UPSERT.run(this.#client, [key, this.#grantList(grantId), ...this.#revokedGrants(grantId)], [sealed, ttl, GRANT_LIST_MAX, this.#tokenPrefix, this.#blacklistPrefix]),
        this.#client.set(grantRef, grantId, 'EX', ttl),
        ...writes,
      ]);
      if (written !== 1) {
        await this.#client.del(grantRef);
        throw new GrantRevokedError();
      }
      await this.#confirmed();
    });
  }

  /** The index's value: the record key (less the prefix) of the token, in its grant's slot when it has a grant. */
  async indexIssued({ model, jti, grantId, tokenHash, expiresIn }: IssuedIndexEntry): Promise<void> {
    await this.#run(async () => {
      const grantOwned = GRANTABLE_MODELS.has(model);
      const [first] = grantOwned && !grantId ? await this.#locate(model, jti) : [undefined];
      const record = grantOwned && grantId ? this.#inGrant(model, grantId, this.#hashes(jti)[0]!) : (first?.inGrant?.key ?? this.#own(model, this.#hashes(jti)[0]!));
      await this.#client.set(this.#issuedKey(this.#hashes(tokenHash)[0]!), record.slice(this.#prefix.length), 'EX', seconds(expiresIn));
    });
  }

  async rotateRefreshToken({ consumed, successor, accessToken }: RefreshRotation): Promise<RotationOutcome> {
    const grantId = successor.payload.grantId;
    if (typeof grantId !== 'string') throw new Error('a rotated refresh token belongs to a grant');
    const nextHash = this.#hashes(successor.id)[0]!;
    const next = this.#inGrant('RefreshToken', grantId, nextHash);
    const ttl = seconds(successor.expiresIn);
    // What goes with the rotation: the successor's grant reference and the access token's index.
    const extras: Array<[key: string, value: string, ttl: number]> = [[this.#grantRef('RefreshToken', nextHash), grantId, ttl]];
    if (accessToken) {
      const record = this.#inGrant(accessToken.model, grantId, this.#hashes(accessToken.jti)[0]!);
      extras.push([this.#issuedKey(this.#hashes(accessToken.tokenHash)[0]!), record.slice(this.#prefix.length), seconds(accessToken.expiresIn)]);
    }
    // A single Redis writes them in the script. On a Cluster they are in other slots: written
    // before it (nothing can reach them before the response carries the new values), so that a
    // rotation that happened is never left without them, and taken back if it did not happen.
    const inScript = this.#legacy ? extras : [];
    if (!this.#legacy) await this.#run(() => Promise.all(extras.map(([key, value, ttl]) => this.#client.set(key, value, 'EX', ttl))));
    const args = [
      Math.floor(Date.now() / 1000),
      this.#seal(successor.payload, next),
      ttl,
      GRANT_LIST_MAX,
      this.#tokenPrefix,
      this.#blacklistPrefix,
      inScript.length,
      ...inScript.flatMap(([, value, ttl]) => [value, ttl]),
    ];
    // The presented token may be stored under an older key form (see AtRest), or the old layout.
    const presentedKeys = this.#hashes(consumed).flatMap((h) => [this.#inGrant('RefreshToken', grantId, h), ...(this.#legacy ? [this.#legacyKey('RefreshToken', h)] : [])]);
    const rotate = async () => {
      let outcome = 3;
      for (const presented of presentedKeys) {
        outcome = await ROTATE_REFRESH.run(
          this.#client,
          [presented, `${presented}:consumed`, next, this.#grantList(grantId), ...inScript.map(([key]) => key), ...this.#revokedGrants(grantId)],
          args,
        );
        if (outcome !== 3) break;
      }
      return outcome;
    };
    const takeBack = async () => {
      const keys = [next, `${next}:consumed`, ...presentedKeys.map((k) => `${k}:consumed`)];
      if ((await TAKE_BACK_ROTATION.run(this.#client, keys)) === 1) await Promise.all(extras.map(([key]) => this.#client.del(key)));
    };
    // One take-back per rotation (per successor): a later attempt must not replace an earlier one's.
    const correction = `${this.#takeBackPrefix(consumed)}${nextHash}`;
    let outcome: number;
    try {
      outcome = await this.#run(rotate);
      // Consumed between oidc-provider's read and now, by a rotation of this process that it
      // still has to take back (see find): take it back, then rotate.
      if (outcome === 0 && (await this.#settleTakeBacks(consumed))) outcome = await this.#run(rotate);
      if (outcome === 1) await this.#run(() => this.#confirmed());
    } catch (err) {
      // The rotation may have happened (its reply lost, or no replica confirmed it) and the
      // request answers 503: its successor reached nobody, so it is taken back, now and until
      // confirmed (see #untilConfirmed).
      await this.#untilConfirmed(correction, ttl, takeBack).catch(() => {});
      throw err;
    }
    if (outcome !== 1 && !this.#legacy) await this.#run(() => Promise.all(extras.map(([key]) => this.#client.del(key))));
    return outcome === 1 ? 'rotated' : outcome === 2 ? 'grant-revoked' : outcome === 3 ? 'gone' : 'reused';
  }

  /**
   * A refresh token read consumed while this process still owes the take-back of its own
   * unconfirmed rotation of it (the client's retry after the 503, before the take-back could be
   * written): the take-back is applied first and the token read again, so the retry rotates it
   * rather than count as reuse (oidc-provider revokes the grant of a consumed token it reads).
   */
  async find(model: string, id: string): Promise<AdapterPayload | undefined> {
    const found = await this.#find(model, id);
    if (model === 'RefreshToken' && found?.consumed && (await this.#settleTakeBacks(id))) return this.#find(model, id);
    return found;
  }

  #takeBackPrefix(refreshTokenId: string): string {
    return `rotation:${this.#hashes(refreshTokenId)[0]!}:`;
  }

  /** Applies the take-backs this process owes for rotations of a refresh token; false when it owes none. */
  async #settleTakeBacks(refreshTokenId: string): Promise<boolean> {
    const prefix = this.#takeBackPrefix(refreshTokenId);
    const owed = [...this.#unconfirmed].filter(([key]) => key.startsWith(prefix));
    if (owed.length === 0) return false;
    await this.#run(() => Promise.all(owed.map(([, { apply }]) => apply())));
    return true;
  }

  async #find(model: string, id: string): Promise<AdapterPayload | undefined> {
    return this.#run(async () => {
      // Form by form: nearly every look-up is answered by the current one.
      for (const h of this.#hashes(id)) {
        const form = await this.#locateForm(model, h);
        for (const slot of [form.inGrant, form.own, form.legacy]) {
          const payload = slot && (await this.#payload(slot));
          if (payload) return payload;
        }
      }
      return undefined;
    });
  }

  async #findByIndex(model: string, index: string, value: string): Promise<AdapterPayload | undefined> {
    for (const h of this.#hashes(value)) {
      const key = this.#index(model, index, h);
      const sealedId = await this.#run(() => this.#client.get(key));
      if (sealedId) return this.find(model, this.#atRest.open(sealedId, key));
    }
    return undefined;
  }

  findByUid(model: string, uid: string) {
    return this.#findByIndex(model, 'uid', uid);
  }

  findByUserCode(model: string, userCode: string) {
    return this.#findByIndex(model, 'userCode', userCode);
  }

  /** The record a stored reference names (a record key less the prefix), with its blacklist state (same slot). */
  #issued(ref: string, raw: string, revoked: boolean): IssuedTokenRecord {
    const payload = this.#open(raw, `${this.#prefix}${ref}`);
    return { model: ref.slice(0, ref.indexOf(':')), jti: String(payload.jti), payload, revoked };
  }

  async findIssuedByHash(tokenHash: string): Promise<IssuedTokenRecord | undefined> {
    for (const h of this.#hashes(tokenHash)) {
      const index = this.#issuedKey(h);
      const found = await this.#run(async (): Promise<[string, string | null, number] | null> => {
        if (this.#legacy) return LOOKUP_ISSUED.run(this.#client, [index], [this.#prefix, this.#blacklistPrefix]);
        // On a Cluster the index and the record are in different slots: two steps (a reference never changes).
        const ref = await this.#client.get(index);
        if (!ref) return null;
        const record = `${this.#prefix}${ref}`;
        const [raw, revoked] = await this.#client.mget(record, this.#blacklistOf(record));
        return [ref, raw ?? null, revoked ? 1 : 0];
      });
      if (!found || !found[1]) continue;
      return this.#issued(found[0], found[1], found[2] === 1);
    }
    return undefined;
  }

  async findIssuedByJti(jti: string): Promise<IssuedTokenRecord | undefined> {
    return this.#run(async () => {
      for (const h of this.#hashes(jti)) {
        // Both models' records of no grant, the access token's grant reference and the blacklist: one slot.
        const [accessToken, clientCredentials, grantId, revoked] = await this.#client.mget(
          this.#own(SEALED_MODELS[0], h),
          this.#own(SEALED_MODELS[1], h),
          this.#grantRef(SEALED_MODELS[0], h),
          `${this.#blacklistPrefix}{${h}}`,
        );
        let inGrant: { raw: string | null; revoked: string | null } | undefined;
        if (grantId) {
          const key = this.#inGrant(SEALED_MODELS[0], grantId, h);
          const [raw, grantRevoked] = await this.#client.mget(key, this.#blacklistOf(key));
          inGrant = { raw: raw ?? null, revoked: grantRevoked ?? null };
        }
        const listed = !!revoked || !!inGrant?.revoked;
        if (inGrant?.raw) return this.#issued(`${SEALED_MODELS[0]}:{g:${grantId}}:${h}`, inGrant.raw, listed);
        if (accessToken) return this.#issued(`${SEALED_MODELS[0]}:{${h}}`, accessToken, listed);
        if (clientCredentials) return this.#issued(`${SEALED_MODELS[1]}:{${h}}`, clientCredentials, listed);
        if (this.#legacy) {
          const [oldAccess, oldClient, oldRevoked] = await this.#client.mget(
            this.#legacyKey(SEALED_MODELS[0], h),
            this.#legacyKey(SEALED_MODELS[1], h),
            `${this.#blacklistPrefix}${h}`,
          );
          if (oldAccess) return this.#issued(`${SEALED_MODELS[0]}:${h}`, oldAccess, !!oldRevoked);
          if (oldClient) return this.#issued(`${SEALED_MODELS[1]}:${h}`, oldClient, !!oldRevoked);
        }
      }
      return undefined;
    });
  }

  /**
   * On a single Redis, one script checks every form of the key and claims the current one. On a
   * Cluster the forms (one per master key) are in different slots and no tag can join them (each
   * is a hash under a different key): the older forms, which only processes still on the old
   * master key write, are checked first, then the current form is claimed atomically (SET NX).
   */
  async claimOnce(key: string, ttl: number): Promise<boolean> {
    const keys = this.#hashes(key).map((h) => `${this.#prefix}once:${h}`);
    const seconds_ = seconds(ttl);
    return this.#run(async () => {
      if (this.#legacy) return (await CLAIM_ONCE.run(this.#client, keys, [seconds_])) === 1;
      const older = await Promise.all(keys.slice(1).map((k) => this.#client.exists(k)));
      if (older.some((n) => n === 1)) return false;
      return (await this.#client.set(keys[0]!, '1', 'EX', seconds_, 'NX')) === 'OK';
    });
  }

  /**
   * One key per audience (hashed like an id; on a Cluster in its own slot) that expires at the
   * latest `exp` noted: created if missing, then moved later only (EXPIREAT GT), in one MULTI.
   */
  async noteAudienceExpiry(audience: string, exp: number): Promise<void> {
    const at = Math.ceil(exp);
    if (at <= Date.now() / 1000) return;
    const key = this.#audienceKey(audience);
    await this.#run(() => this.#client.multi().set(key, '1', 'EXAT', at, 'NX').expireat(key, at, 'GT').exec());
  }

  async audienceExpiry(audience: string): Promise<number | undefined> {
    const at = await this.#run(() => this.#client.expiretime(this.#audienceKey(audience)));
    return at > 0 ? at : undefined;
  }

  #audienceKey(audience: string): string {
    return `${this.#prefix}audience-exp:{${this.#hashes(audience)[0]!}}`;
  }

  /** Blacklisted by jti in its own slot, and in its grant's slot when the token has one (where the grant's records are read with it). */
  async blacklist(jti: string, expiresIn: number): Promise<void> {
    const ttl = Math.ceil(expiresIn);
    if (ttl <= 0) return;
    const until = Date.now() + ttl * 1000;
    await this.#untilConfirmed(`jti:${jti}`, ttl, async () => {
      const left = Math.ceil((until - Date.now()) / 1000);
      if (left <= 0) return;
      const writes: Array<Promise<unknown>> = [];
      for (const form of await this.#locate(SEALED_MODELS[0], jti)) {
        writes.push(this.#client.set(`${this.#blacklistPrefix}{${form.h}}`, '1', 'EX', left));
        if (form.inGrant) writes.push(this.#client.set(this.#blacklistOf(form.inGrant.key), '1', 'EX', left));
        if (form.legacy) writes.push(this.#client.set(`${this.#blacklistPrefix}${form.h}`, '1', 'EX', left));
      }
      await Promise.all(writes);
    });
  }

  async consume(model: string, id: string): Promise<boolean> {
    const now = Math.floor(Date.now() / 1000);
    return this.#run(async () => {
      for (const form of await this.#locate(model, id)) {
        // Records read missing with the locate are skipped; the grant's record is tried as it is.
        for (const slot of [form.inGrant, form.own.raw ? form.own : undefined, form.legacy?.raw ? form.legacy : undefined]) {
          if (slot && (await CONSUME.run(this.#client, [slot.key, `${slot.key}:consumed`], [now])) === 1) {
            await this.#confirmed();
            return true;
          }
        }
      }
      return false;
    });
  }

  /** Deletes the record (wherever it is) and its consumed marker; the grant reference stays until it expires, so a blacklisting that follows still finds the grant. */
  async destroy(model: string, id: string): Promise<void> {
    await this.#run(async () => {
      const deletes: Array<Promise<unknown>> = [];
      for (const form of await this.#locate(model, id)) {
        for (const slot of [form.inGrant, form.own, form.legacy]) if (slot) deletes.push(this.#client.del(slot.key, `${slot.key}:consumed`));
      }
      await Promise.all(deletes);
    });
  }

  async revokeByGrantId(grantId: string, markerTtl: number): Promise<void> {
    const lists = this.#grantLists(grantId);
    await this.#untilConfirmed(`grant:${grantId}`, seconds(markerTtl), async () => {
      await REVOKE_GRANT.run(this.#client, [...lists, ...this.#revokedGrants(grantId)], [seconds(markerTtl), this.#tokenPrefix, this.#blacklistPrefix, lists.length]);
    });
  }

  async ping(): Promise<void> {
    await this.#run(() => this.#client.ping());
  }

  /** The connection belongs to whoever made it (the service registry closes it once, last); corrections still unconfirmed are given up. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#reapplyTimer);
    this.#reapplyTimer = undefined;
    this.#unconfirmed.clear();
  }

  /** The key of a grant's list (tests, diagnostics). */
  grantListKey(grantId: string): string {
    return this.#grantList(grantId);
  }
}
