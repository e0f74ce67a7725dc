/**
 * ShortLivedStore on Redis. Every key carries the configured prefix; entries are JSON strings
 * with a TTL, and grant-owned entries are also listed in a per-grant set so a revoked grant
 * takes all of its tokens with it.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { AdapterPayload } from 'oidc-provider';
import { StoreUnavailableError } from './errors.js';
import { GRANTABLE_MODELS, type ShortLivedStore } from './short-lived-store.js';

// Sets `consumed` only if it is not set yet, keeping the key's TTL. Returns 1 to the winner.
// The payload is only decoded to read the flag; the field is appended to the original text,
// because re-encoding with cjson would turn [] into {} and round long numbers.
const CONSUME_SCRIPT = `
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
if cjson.decode(raw)['consumed'] then return 0 end
local updated
if raw == '{}' then
  updated = '{"consumed":' .. ARGV[1] .. '}'
else
  updated = string.sub(raw, 1, -2) .. ',"consumed":' .. ARGV[1] .. '}'
end
redis.call('SET', KEYS[1], updated, 'KEEPTTL')
return 1
`;

// Deletes every entry listed for a grant and the list itself in one step, so a token written
// for the grant concurrently cannot slip between reading the list and deleting it.
const REVOKE_GRANT_SCRIPT = `
local keys = redis.call('LRANGE', KEYS[1], 0, -1)
for _, key in ipairs(keys) do redis.call('DEL', key) end
redis.call('DEL', KEYS[1])
return #keys
`;

export interface RedisStoreOptions {
  url: string;
  keyPrefix: string;
}

export function createRedisClient(url: string, extra: RedisOptions = {}): Redis {
  const client = new Redis(url, {
    lazyConnect: true,
    // Fail fast while disconnected so callers can answer 503 instead of hanging.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 3000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
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

  private constructor(client: Redis, prefix: string) {
    this.client = client;
    this.#prefix = prefix;
    this.client.defineCommand('veilConsume', { numberOfKeys: 1, lua: CONSUME_SCRIPT });
    this.client.defineCommand('veilRevokeGrant', { numberOfKeys: 1, lua: REVOKE_GRANT_SCRIPT });
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
    return new RedisStore(client, options.keyPrefix);
  }

  #key(model: string, id: string): string {
    return `${this.#prefix}${model}:${id}`;
  }

  #grantKey(grantId: string): string {
    return `${this.#prefix}grant:${grantId}`;
  }

  async #run<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      throw new StoreUnavailableError('Redis', err);
    }
  }

  async upsert(model: string, id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const key = this.#key(model, id);
    const ttl = Math.max(1, Math.ceil(expiresIn));
    await this.#run(async () => {
      const multi = this.client.multi().set(key, JSON.stringify(payload), 'EX', ttl);
      if (GRANTABLE_MODELS.has(model) && payload.grantId) {
        const grantKey = this.#grantKey(payload.grantId);
        multi.rpush(grantKey, key).expire(grantKey, ttl, 'GT').expire(grantKey, ttl, 'NX');
      }
      if (payload.userCode) multi.set(this.#key(`${model}:userCode`, payload.userCode), id, 'EX', ttl);
      if (payload.uid) multi.set(this.#key(`${model}:uid`, payload.uid), id, 'EX', ttl);
      await multi.exec();
    });
  }

  async find(model: string, id: string): Promise<AdapterPayload | undefined> {
    const raw = await this.#run(() => this.client.get(this.#key(model, id)));
    return raw ? (JSON.parse(raw) as AdapterPayload) : undefined;
  }

  async #findByIndex(model: string, index: string, value: string): Promise<AdapterPayload | undefined> {
    const id = await this.#run(() => this.client.get(this.#key(`${model}:${index}`, value)));
    return id ? this.find(model, id) : undefined;
  }

  findByUid(model: string, uid: string) {
    return this.#findByIndex(model, 'uid', uid);
  }

  findByUserCode(model: string, userCode: string) {
    return this.#findByIndex(model, 'userCode', userCode);
  }

  async consume(model: string, id: string): Promise<boolean> {
    const won = await this.#run(() =>
      (this.client as Redis & { veilConsume(key: string, now: number): Promise<number> }).veilConsume(
        this.#key(model, id),
        Math.floor(Date.now() / 1000),
      ),
    );
    return won === 1;
  }

  async destroy(model: string, id: string): Promise<void> {
    await this.#run(() => this.client.del(this.#key(model, id)));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await this.#run(() =>
      (this.client as Redis & { veilRevokeGrant(key: string): Promise<number> }).veilRevokeGrant(this.#grantKey(grantId)),
    );
  }

  async ping(): Promise<void> {
    await this.#run(() => this.client.ping());
  }

  async close(): Promise<void> {
    await this.client.quit().catch(() => this.client.disconnect());
  }
}
