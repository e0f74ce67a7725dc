/**
 * ShortLivedStore on Redis. Every key carries the configured prefix and, where it is built
 * from a bearer value (token, code, session id), only a keyed hash of it; every payload is
 * encrypted and bound to its key (src/store/at-rest.ts). Entries have TTLs; grant-owned
 * entries are also listed per grant so a revoked grant takes all of its tokens with it.
 *
 * Key layout (H = keyed hash):
 *   <p><Model>:H(id)                record (sealed JSON)
 *   <p><Model>:H(id):consumed       when it was consumed (codes, refresh tokens)
 *   <p><Model>:uid:H(uid)           sealed id, for findByUid (and :userCode: likewise)
 *   <p>grant:<grantId>              list of the grant's record keys (kept short: GRANT_LIST_MAX)
 *   <p>revoked-grant:<grantId>      the grant was revoked: refuse further writes for it
 *   <p>issued:H(sha256(token))      "<Model>:H(jti)" of a sealed access token
 *   <p>revoked-jti:H(jti)           the revocation blacklist
 *   <p>once:H(key)                  replay detection
 * The multi-key scripts assume a single Redis node (or keys in one hash slot).
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { AdapterPayload } from 'oidc-provider';
import { plainAtRest, type AtRest } from './at-rest.js';
import { StoreUnavailableError } from './errors.js';
import { GRANTABLE_MODELS, GRANT_LIST_MAX, GrantRevokedError, SEALED_MODELS, type IssuedTokenRecord, type ShortLivedStore } from './short-lived-store.js';

// Marks an entry consumed only if it exists and is not consumed yet, for the entry's remaining
// lifetime. Returns 1 to the single winner.   KEYS: record, consumed marker   ARGV: now
const CONSUME_SCRIPT = `
local ttl = redis.call('TTL', KEYS[1])
if ttl == -2 then return 0 end
if ttl < 1 then ttl = 1 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ttl) then return 1 end
return 0
`;

// Writes a grant-owned and/or indexed entry, unless its grant has been revoked: the check and
// the write are one step, so a refresh that loaded its token before a revocation cannot write
// a new token pair after it.
// The grant's list stays short (see GRANT_LIST_MAX): every GRANT_LIST_MAX appends once it holds
// twice that, it is rebuilt from its live entries. Dead entries (expired, or consumed codes and
// refresh tokens) are dropped; live refresh tokens and codes all stay (each is a session of the
// user's); of the live access tokens the newest GRANT_LIST_MAX stay, and older ones are revoked
// here and now (blacklisted for their remaining lifetime, then deleted), so nothing alive is ever
// left off the list that revoking the grant walks.
//   KEYS: record, grant list, revoked-grant marker, issued-token index
//   ARGV: payload, ttl, owned by a grant ('1'/'0'), index value ('' for none), list bound,
//         access-token key prefix, blacklist key prefix
const GUARDED_UPSERT_SCRIPT = `
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if ARGV[3] == '1' then
  local ttl = tonumber(ARGV[2])
  local listTtl = redis.call('TTL', KEYS[2])
  local bound = tonumber(ARGV[5])
  local length = redis.call('RPUSH', KEYS[2], KEYS[1])
  if length >= 2 * bound and length % bound == 0 then
    local entries = redis.call('LRANGE', KEYS[2], 0, -1)
    local live, seen, accessTokens = {}, {}, 0
    local tokenPrefix = ARGV[6]
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
            if left > 0 then redis.call('SET', ARGV[7] .. string.sub(key, #tokenPrefix + 1), '1', 'EX', left) end
            redis.call('DEL', key)
          end
        end
      end
    end
    redis.call('DEL', KEYS[2])
    for i = #live, 1, -1 do redis.call('RPUSH', KEYS[2], live[i]) end
  end
  if listTtl > ttl then ttl = listTtl end
  redis.call('EXPIRE', KEYS[2], ttl)
end
if ARGV[4] ~= '' then redis.call('SET', KEYS[4], ARGV[4], 'EX', ARGV[2]) end
return 1
`;

// Records a replay key unless any of its forms is recorded already. Only the first form is ever
// written; the others are older namings (see AtRest), still checked until they expire.
//   KEYS: every form, the one to write first   ARGV: ttl
const CLAIM_ONCE_SCRIPT = `
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
if redis.call('SET', KEYS[1], '1', 'EX', ARGV[1], 'NX') then return 1 end
return 0
`;

// Revokes a grant in one step: deletes every entry listed for it, blacklists each of its access
// tokens for as long as the token would have lived, and marks the grant revoked so no write for
// it can follow (see GUARDED_UPSERT_SCRIPT).
//   KEYS: grant list, revoked-grant marker
//   ARGV: marker ttl, access-token key prefix, blacklist key prefix
const REVOKE_GRANT_SCRIPT = `
local keys = redis.call('LRANGE', KEYS[1], 0, -1)
local tokenPrefix = ARGV[2]
for _, key in ipairs(keys) do
  if string.sub(key, 1, #tokenPrefix) == tokenPrefix then
    local ttl = redis.call('TTL', key)
    if ttl > 0 then redis.call('SET', ARGV[3] .. string.sub(key, #tokenPrefix + 1), '1', 'EX', ttl) end
  end
  redis.call('DEL', key, key .. ':consumed')
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
return #keys
`;

// Resolves an issued-token index entry ("Model:H(jti)") to its record and blacklist state.
//   KEYS: index   ARGV: key prefix, blacklist key prefix
const LOOKUP_ISSUED_SCRIPT = `
local ref = redis.call('GET', KEYS[1])
if not ref then return nil end
local sep = string.find(ref, ':', 1, true)
return { ref, redis.call('GET', ARGV[1] .. ref), redis.call('EXISTS', ARGV[2] .. string.sub(ref, sep + 1)) }
`;

type ScriptedRedis = Redis & {
  veilConsume(record: string, marker: string, now: number): Promise<number>;
  veilGuardedUpsert(
    record: string,
    grantList: string,
    marker: string,
    index: string,
    payload: string,
    ttl: number,
    owned: string,
    indexValue: string,
    bound: number,
    tokenPrefix: string,
    blacklistPrefix: string,
  ): Promise<number>;
  veilClaimOnce(numberOfKeys: number, ...args: Array<string | number>): Promise<number>;
  veilRevokeGrant(grantList: string, marker: string, markerTtl: number, tokenPrefix: string, blacklistPrefix: string): Promise<number>;
  veilLookupIssued(index: string, prefix: string, blacklistPrefix: string): Promise<[string, string | null, number] | null>;
};

export interface RedisStoreOptions {
  url: string;
  keyPrefix: string;
  /** Keyed hashing of ids and payload encryption; plain only in store-semantics tests. */
  atRest?: AtRest;
}

export function createRedisClient(url: string, extra: RedisOptions = {}): Redis {
  const client = new Redis(url, {
    lazyConnect: true,
    // Fail fast while disconnected so callers can answer 503 instead of hanging.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 3000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    // Commands issued in the same tick share one write: under load that is one syscall for
    // many requests' store calls instead of one each.
    enableAutoPipelining: true,
    ...extra,
  });
  // Connection errors surface on the commands that fail; the event only needs a listener so
  // ioredis does not print them as unhandled.
  client.on('error', () => {});
  return client;
}

export class RedisStore implements ShortLivedStore {
  readonly kind = 'redis';
  readonly client: Redis;
  readonly #prefix: string;
  readonly #atRest: AtRest;

  private constructor(client: Redis, prefix: string, atRest: AtRest) {
    this.client = client;
    this.#prefix = prefix;
    this.#atRest = atRest;
    this.client.defineCommand('veilConsume', { numberOfKeys: 2, lua: CONSUME_SCRIPT });
    this.client.defineCommand('veilGuardedUpsert', { numberOfKeys: 4, lua: GUARDED_UPSERT_SCRIPT });
    // Variadic: the number of keys is given on each call.
    this.client.defineCommand('veilClaimOnce', { lua: CLAIM_ONCE_SCRIPT });
    this.client.defineCommand('veilRevokeGrant', { numberOfKeys: 2, lua: REVOKE_GRANT_SCRIPT });
    this.client.defineCommand('veilLookupIssued', { numberOfKeys: 1, lua: LOOKUP_ISSUED_SCRIPT });
  }

  static async connect(options: RedisStoreOptions): Promise<RedisStore> {
    const client = createRedisClient(options.url);
    // connect() rejects with a generic "Connection is closed"; the error event has the reason.
    let reason: unknown;
    client.once('error', (err) => (reason = err));
    try {
      await client.connect();
    } catch (err) {
      client.disconnect();
      throw new StoreUnavailableError('Redis', reason ?? err);
    }
    return new RedisStore(client, options.keyPrefix, options.atRest ?? plainAtRest);
  }

  /** Record keys of an id, current master key first (see AtRest). */
  #keys(model: string, id: string): string[] {
    return this.#atRest.ids(id).map((h) => `${this.#prefix}${model}:${h}`);
  }

  #key(model: string, id: string): string {
    return this.#keys(model, id)[0]!;
  }

  #grantKey(grantId: string): string {
    return `${this.#prefix}grant:${grantId}`;
  }

  #revokedGrantKey(grantId: string): string {
    return `${this.#prefix}revoked-grant:${grantId}`;
  }

  get #blacklistPrefix(): string {
    return `${this.#prefix}revoked-jti:`;
  }

  get #scripts(): ScriptedRedis {
    return this.client as ScriptedRedis;
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

  async upsert(model: string, id: string, payload: AdapterPayload, expiresIn: number, tokenHash?: string): Promise<void> {
    const key = this.#key(model, id);
    const ttl = Math.max(1, Math.ceil(expiresIn));
    const grantId = GRANTABLE_MODELS.has(model) ? payload.grantId : undefined;
    const sealed = this.#seal(payload, key);
    await this.#run(async () => {
      if (grantId || tokenHash) {
        const written = await this.#scripts.veilGuardedUpsert(
          key,
          this.#grantKey(grantId ?? ''),
          this.#revokedGrantKey(grantId ?? ''),
          `${this.#prefix}issued:${this.#atRest.ids(tokenHash ?? '')[0]}`,
          sealed,
          ttl,
          grantId ? '1' : '0',
          tokenHash ? key.slice(this.#prefix.length) : '',
          GRANT_LIST_MAX,
          `${this.#prefix}${SEALED_MODELS[0]}:`,
          this.#blacklistPrefix,
        );
        if (written !== 1) throw new GrantRevokedError();
      } else {
        await this.client.set(key, sealed, 'EX', ttl);
      }
      if (payload.userCode || payload.uid) {
        const multi = this.client.multi();
        for (const [index, value] of [['userCode', payload.userCode], ['uid', payload.uid]] as const) {
          if (!value) continue;
          const indexKey = this.#key(`${model}:${index}`, value);
          multi.set(indexKey, this.#atRest.seal(id, indexKey), 'EX', ttl);
        }
        await multi.exec();
      }
    });
  }

  async find(model: string, id: string): Promise<AdapterPayload | undefined> {
    const keys = this.#keys(model, id);
    const values = await this.#run(() => this.client.mget(keys.flatMap((k) => [k, `${k}:consumed`])));
    for (let i = 0; i < keys.length; i++) {
      const raw = values[i * 2];
      if (!raw) continue;
      const payload = this.#open(raw, keys[i]!);
      const consumed = values[i * 2 + 1];
      if (consumed) payload.consumed = Number(consumed);
      return payload;
    }
    return undefined;
  }

  async #findByIndex(model: string, index: string, value: string): Promise<AdapterPayload | undefined> {
    for (const key of this.#keys(`${model}:${index}`, value)) {
      const sealedId = await this.#run(() => this.client.get(key));
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

  async findIssuedByHash(tokenHash: string): Promise<IssuedTokenRecord | undefined> {
    for (const hashed of this.#atRest.ids(tokenHash)) {
      const found = await this.#run(() => this.#scripts.veilLookupIssued(`${this.#prefix}issued:${hashed}`, this.#prefix, this.#blacklistPrefix));
      if (!found || !found[1]) continue;
      const [ref, raw, revoked] = found;
      const payload = this.#open(raw, `${this.#prefix}${ref}`);
      return { model: ref.slice(0, ref.indexOf(':')), jti: String(payload.jti), payload, revoked: revoked === 1 };
    }
    return undefined;
  }

  async findIssuedByJti(jti: string): Promise<IssuedTokenRecord | undefined> {
    for (const hashed of this.#atRest.ids(jti)) {
      const [accessToken, clientCredentials, revoked] = await this.#run(async () => {
        const replies = await this.client
          .multi()
          .get(`${this.#prefix}${SEALED_MODELS[0]}:${hashed}`)
          .get(`${this.#prefix}${SEALED_MODELS[1]}:${hashed}`)
          .exists(`${this.#blacklistPrefix}${hashed}`)
          .exec();
        return (replies ?? []).map(([err, value]) => {
          if (err) throw err;
          return value;
        });
      });
      const model = accessToken ? SEALED_MODELS[0] : clientCredentials ? SEALED_MODELS[1] : undefined;
      if (!model) continue;
      const payload = this.#open((accessToken ?? clientCredentials) as string, `${this.#prefix}${model}:${hashed}`);
      return { model, jti, payload, revoked: revoked === 1 };
    }
    return undefined;
  }

  async claimOnce(key: string, ttl: number): Promise<boolean> {
    const keys = this.#atRest.ids(key).map((h) => `${this.#prefix}once:${h}`);
    const claimed = await this.#run(() => this.#scripts.veilClaimOnce(keys.length, ...keys, Math.max(1, Math.ceil(ttl))));
    return claimed === 1;
  }

  async blacklist(jti: string, expiresIn: number): Promise<void> {
    const ttl = Math.ceil(expiresIn);
    if (ttl <= 0) return;
    await this.#run(async () => {
      const multi = this.client.multi();
      for (const hashed of this.#atRest.ids(jti)) multi.set(`${this.#blacklistPrefix}${hashed}`, '1', 'EX', ttl);
      await multi.exec();
    });
  }

  async consume(model: string, id: string): Promise<boolean> {
    const now = Math.floor(Date.now() / 1000);
    for (const key of this.#keys(model, id)) {
      const won = await this.#run(() => this.#scripts.veilConsume(key, `${key}:consumed`, now));
      if (won === 1) return true;
    }
    return false;
  }

  async destroy(model: string, id: string): Promise<void> {
    await this.#run(() => this.client.del(...this.#keys(model, id).flatMap((k) => [k, `${k}:consumed`])));
  }

  async revokeByGrantId(grantId: string, markerTtl: number): Promise<void> {
    await this.#run(() =>
      this.#scripts.veilRevokeGrant(
        this.#grantKey(grantId),
        this.#revokedGrantKey(grantId),
        Math.max(1, Math.ceil(markerTtl)),
        `${this.#prefix}${SEALED_MODELS[0]}:`,
        this.#blacklistPrefix,
      ),
    );
  }

  async ping(): Promise<void> {
    await this.#run(() => this.client.ping());
  }

  async close(): Promise<void> {
    await this.client.quit().catch(() => this.client.disconnect());
  }
}
