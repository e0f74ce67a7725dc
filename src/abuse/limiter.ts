/**
 * Building blocks shared by the throttles: one rate-limiter-flexible counter on Redis or in
 * process memory, and the form of a client address used as a counter key.
 */
import { isIP } from 'node:net';
import type { RedisClient } from '../store/redis-connection.js';
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible';

/** Where counters live in Redis mode; omitted, they live in this process (embedded mode). */
export interface RedisBackend {
  client: RedisClient;
  /** REDIS_KEY_PREFIX; counters go under `<prefix>throttle:<name>:`. */
  keyPrefix: string;
}

/** `points` per `durationSeconds` window, counted under `name`. */
export function createLimiter(name: string, points: number, durationSeconds: number, redis?: RedisBackend): RateLimiterAbstract {
  const memory = new RateLimiterMemory({ keyPrefix: name, points, duration: durationSeconds });
  if (!redis) return memory;
  return new RateLimiterRedis({
    // ioredis is the library's default client (useRedisPackage is for node-redis v4+).
    storeClient: redis.client,
    keyPrefix: `${redis.keyPrefix}throttle:${name}`,
    points,
    duration: durationSeconds,
    // The shared client has no offline queue, so while Redis is away commands fail at once;
    // the library then answers from the in-process "insurance" counter instead of throwing.
    // Limits stay enforced per process rather than failing open or locking everyone out.
    rejectIfRedisNotReady: true,
    insuranceLimiter: memory,
  });
}

/**
 * The counter key for a client address. IPv4-mapped IPv6 addresses count as their IPv4
 * address; other IPv6 addresses count per /64, the smallest block one subscriber usually holds,
 * so rotating through one's own addresses does not reset the count.
 */
export function addressKey(ip: string): string {
  const address = ip.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (isIP(address) !== 6) return address;
  const groups = (part: string) => (part ? part.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])) : []);
  const [head = '', tail] = address.split('::');
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const full = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return `${full
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}
