/**
 * The process's one Redis connection, shared by the short-lived store, the invalidation bus
 * (which duplicates it for its subscription) and the throttles.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { StoreUnavailableError } from './errors.js';

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

/** Connects, or fails with StoreUnavailableError carrying the reason (not ioredis' generic "Connection is closed"). */
export async function connectRedis(url: string): Promise<Redis> {
  const client = createRedisClient(url);
  let reason: unknown;
  client.once('error', (err) => (reason = err));
  try {
    await client.connect();
  } catch (err) {
    client.disconnect();
    throw new StoreUnavailableError('Redis', reason ?? err);
  }
  return client;
}

export async function closeRedis(client: Redis): Promise<void> {
  await client.quit().catch(() => client.disconnect());
}
