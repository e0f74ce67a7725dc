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
 * The multi-key scripts assume a single Redis node (or keys in one hash slot). Scripts run by
 * their SHA (lua-script.ts). The connection is made by redis-connection.ts and shared with the
 * invalidation bus and the throttles.
 */
import type { Redis } from 'ioredis';
import type { AdapterPayload } from 'oidc-provider';
import { plainAtRest, type AtRest } from './at-rest.js';
import { StoreUnavailableError } from './errors.js';
import { LuaScript } from './lua-script.js';
import {
  GRANTABLE_MODELS,
  GRANT_LIST_MAX,
  GrantRevokedError,
  SEALED_MODELS,
  type IssuedTokenRecord,
  type RefreshRotation,
  type RotationOutcome,
  type SealedModel,
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
//   KEYS: record, grant list, revoked-grant marker
//   ARGV: payload, ttl, list bound, access-token key prefix, blacklist key prefix
const GUARDED_UPSERT = new LuaScript<number>(`${LIST_ON_GRANT}
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
listOnGrant(KEYS[1], KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5])
return 1
`);

// One refresh, in one step: consumes the presented refresh token (exactly one winner), writes its
// successor on the grant's list (unless the grant was revoked meanwhile) and indexes the access
// token issued with it. Returns 1 rotated, 0 reused (already consumed), 2 grant revoked, 3 no
// such record (under this key form); nothing is written unless it returns 1.
//   KEYS: presented record, its consumed marker, successor record, grant list, revoked-grant
//         marker, issued-token index (or '' for none)
//   ARGV: now, successor payload, successor ttl, list bound, access-token key prefix, blacklist
//         key prefix, index value, index ttl
const ROTATE_REFRESH = new LuaScript<number>(`${LIST_ON_GRANT}
if redis.call('EXISTS', KEYS[5]) == 1 then return 2 end
local ttl = redis.call('TTL', KEYS[1])
if ttl == -2 then return 3 end
if ttl < 1 then ttl = 1 end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ttl) then return 0 end
redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[3])
listOnGrant(KEYS[3], KEYS[4], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6])
if KEYS[6] ~= '' then redis.call('SET', KEYS[6], ARGV[7], 'EX', ARGV[8]) end
return 1
`);

// Records a replay key unless any of its forms is recorded already. Only the first form is ever
// written; the others are older namings (see AtRest), still checked until they expire.
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
//   KEYS: grant list, revoked-grant marker
//   ARGV: marker ttl, access-token key prefix, blacklist key prefix
const REVOKE_GRANT = new LuaScript<number>(`
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
`);

// Resolves an issued-token index entry ("Model:H(jti)") to its record and blacklist state.
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
}

export class RedisStore implements ShortLivedStore {
  readonly kind = 'redis';
  readonly #client: Redis;
  readonly #prefix: string;
  readonly #atRest: AtRest;

  /** `client` is the process's one Redis connection (redis-connection.ts), shared with the bus and the throttles. */
  constructor(client: Redis, options: RedisStoreOptions) {
    this.#client = client;
    this.#prefix = options.keyPrefix;
    this.#atRest = options.atRest ?? plainAtRest;
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

  #issuedKey(tokenHash: string): string {
    return `${this.#prefix}issued:${this.#atRest.ids(tokenHash)[0]}`;
  }

  get #blacklistPrefix(): string {
    return `${this.#prefix}revoked-jti:`;
  }

  get #tokenPrefix(): string {
    return `${this.#prefix}${SEALED_MODELS[0]}:`;
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

  async upsert(model: string, id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const key = this.#key(model, id);
    const ttl = Math.max(1, Math.ceil(expiresIn));
    const grantId = GRANTABLE_MODELS.has(model) ? payload.grantId : undefined;
    const sealed = this.#seal(payload, key);
    await this.#run(async () => {
      if (grantId) {
        const written = await GUARDED_UPSERT.run(
          this.#client,
          [key, this.#grantKey(grantId), this.#revokedGrantKey(grantId)],
          [sealed, ttl, GRANT_LIST_MAX, this.#tokenPrefix, this.#blacklistPrefix],
        );
        if (written !== 1) throw new GrantRevokedError();
      } else {
        await this.#client.set(key, sealed, 'EX', ttl);
      }
      if (payload.userCode || payload.uid) {
        const multi = this.#client.multi();
        for (const [index, value] of [['userCode', payload.userCode], ['uid', payload.uid]] as const) {
          if (!value) continue;
          const indexKey = this.#key(`${model}:${index}`, value);
          multi.set(indexKey, this.#atRest.seal(id, indexKey), 'EX', ttl);
        }
        await multi.exec();
      }
    });
  }

  async indexIssued(model: SealedModel, jti: string, tokenHash: string, expiresIn: number): Promise<void> {
    const ttl = Math.max(1, Math.ceil(expiresIn));
    const ref = this.#key(model, jti).slice(this.#prefix.length);
    await this.#run(() => this.#client.set(this.#issuedKey(tokenHash), ref, 'EX', ttl));
  }

  async rotateRefreshToken({ consumed, successor, accessToken }: RefreshRotation): Promise<RotationOutcome> {
    const grantId = successor.payload.grantId;
    if (!grantId) throw new Error('a rotated refresh token belongs to a grant');
    const next = this.#key('RefreshToken', successor.id);
    const ttl = Math.max(1, Math.ceil(successor.expiresIn));
    const args = [
      Math.floor(Date.now() / 1000),
      this.#seal(successor.payload, next),
      ttl,
      GRANT_LIST_MAX,
      this.#tokenPrefix,
      this.#blacklistPrefix,
      accessToken ? this.#key(accessToken.model, accessToken.jti).slice(this.#prefix.length) : '',
      accessToken ? Math.max(1, Math.ceil(accessToken.expiresIn)) : 1,
    ];
    const index = accessToken ? this.#issuedKey(accessToken.tokenHash) : '';
    let outcome = 3;
    // The presented token may be stored under an older key form (see AtRest).
    for (const presented of this.#keys('RefreshToken', consumed)) {
      outcome = await this.#run(() =>
        ROTATE_REFRESH.run(this.#client, [presented, `${presented}:consumed`, next, this.#grantKey(grantId), this.#revokedGrantKey(grantId), index], args),
      );
      if (outcome !== 3) break;
    }
    return outcome === 1 ? 'rotated' : outcome === 2 ? 'grant-revoked' : 'reused';
  }

  async find(model: string, id: string): Promise<AdapterPayload | undefined> {
    const keys = this.#keys(model, id);
    const values = await this.#run(() => this.#client.mget(keys.flatMap((k) => [k, `${k}:consumed`])));
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

  async findIssuedByHash(tokenHash: string): Promise<IssuedTokenRecord | undefined> {
    for (const hashed of this.#atRest.ids(tokenHash)) {
      const found = await this.#run(() => LOOKUP_ISSUED.run(this.#client, [`${this.#prefix}issued:${hashed}`], [this.#prefix, this.#blacklistPrefix]));
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
        const replies = await this.#client
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
    const claimed = await this.#run(() => CLAIM_ONCE.run(this.#client, keys, [Math.max(1, Math.ceil(ttl))]));
    return claimed === 1;
  }

  async blacklist(jti: string, expiresIn: number): Promise<void> {
    const ttl = Math.ceil(expiresIn);
    if (ttl <= 0) return;
    await this.#run(async () => {
      const multi = this.#client.multi();
      for (const hashed of this.#atRest.ids(jti)) multi.set(`${this.#blacklistPrefix}${hashed}`, '1', 'EX', ttl);
      await multi.exec();
    });
  }

  async consume(model: string, id: string): Promise<boolean> {
    const now = Math.floor(Date.now() / 1000);
    for (const key of this.#keys(model, id)) {
      const won = await this.#run(() => CONSUME.run(this.#client, [key, `${key}:consumed`], [now]));
      if (won === 1) return true;
    }
    return false;
  }

  async destroy(model: string, id: string): Promise<void> {
    await this.#run(() => this.#client.del(...this.#keys(model, id).flatMap((k) => [k, `${k}:consumed`])));
  }

  async revokeByGrantId(grantId: string, markerTtl: number): Promise<void> {
    await this.#run(() =>
      REVOKE_GRANT.run(this.#client, [this.#grantKey(grantId), this.#revokedGrantKey(grantId)], [Math.max(1, Math.ceil(markerTtl)), this.#tokenPrefix, this.#blacklistPrefix]),
    );
  }

  async ping(): Promise<void> {
    await this.#run(() => this.#client.ping());
  }

  /** The connection belongs to whoever made it (the service registry closes it once, last). */
  async close(): Promise<void> {}
}
