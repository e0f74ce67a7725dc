/**
 * Per-test-file real stores: a fresh PostgreSQL database and a unique Redis key prefix on the
 * local services, both removed again afterwards.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';

// The local services scripts/test-prereqs.sh makes sure of.
export const PG_ADMIN_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';
export const REDIS_TEST_URL = 'redis://127.0.0.1:6379';

export interface TestStores {
  databaseName: string;
  databaseUrl: string;
  redisUrl: string;
  keyPrefix: string;
  redis: Redis;
  cleanup(): Promise<void>;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function createTestStores(): Promise<TestStores> {
  const id = `${process.pid}_${randomBytes(4).toString('hex')}`;
  const databaseName = `veil_test_${id}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${databaseName}"`);
  await admin.end();

  const keyPrefix = `veiltest:${id}:`;
  const redis = new Redis(REDIS_TEST_URL, { lazyConnect: true });
  await redis.connect();

  return {
    databaseName,
    databaseUrl: withDatabase(PG_ADMIN_URL, databaseName),
    redisUrl: REDIS_TEST_URL,
    keyPrefix,
    redis,
    async cleanup() {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 500);
        if (keys.length) await redis.del(...keys);
        cursor = next;
      } while (cursor !== '0');
      redis.disconnect();
      const dropper = new pg.Client({ connectionString: PG_ADMIN_URL });
      await dropper.connect();
      await dropper.query(`DROP DATABASE IF EXISTS "${databaseName}" WITH (FORCE)`);
      await dropper.end();
    },
  };
}
