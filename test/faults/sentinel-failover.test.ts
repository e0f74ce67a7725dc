/**
 * Fault: the Redis master failed over through Sentinel (`SENTINEL FAILOVER`) under mixed traffic.
 * Veil finds the master through the sentinels (REDIS_SENTINELS, REDIS_SENTINEL_MASTER) of a real
 * set started by test/helpers/redis-topologies.ts: one master, one replica, three sentinels. Veil
 * has each write that matters confirmed by a replica (REDIS_WAIT_REPLICAS, 1 with Sentinel) so the
 * failover loses none; until the old master has rejoined as the new master's replica, such writes
 * answer 503. The store is "back" once the set is whole again: the promoted replica answers as
 * master and the old master replicates from it.
 */
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { startSentinelSet, type SentinelSet } from '../helpers/redis-topologies.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import type { Traffic } from '../helpers/traffic.js';
import { assertFaultReport, prepareTraffic, printReport, runFault, startVeilProcess, type Fault, type VeilProcess } from './harness.js';

describe('fault: Redis master failed over through Sentinel', () => {
  let sentinel: SentinelSet;
  let stores: TestStores;
  let veil: VeilProcess;
  let traffic: Traffic;
  /** The test's own view of the data, following the master like Veil does. */
  let redis: Redis;

  before(async () => {
    sentinel = await startSentinelSet();
    stores = await createTestStores(); // its PostgreSQL database and key prefix
    veil = await startVeilProcess({
      DATABASE_URL: stores.databaseUrl,
      REDIS_SENTINELS: sentinel.sentinelsEnv,
      REDIS_SENTINEL_MASTER: sentinel.masterName,
      REDIS_KEY_PREFIX: stores.keyPrefix,
    });
    traffic = await prepareTraffic(veil);
    redis = new Redis({ sentinels: sentinel.sentinels.map((s) => ({ host: s.split(':')[0], port: Number(s.split(':')[1]) })), name: sentinel.masterName, lazyConnect: true });
    redis.on('error', () => {});
    await redis.connect();
  });

  after(async () => {
    await traffic?.stop().catch(() => {}); // a loop's failure was reported by the test; clean up regardless
    await veil?.stop();
    redis?.disconnect();
    await sentinel?.stop();
    await stores?.cleanup();
  });

  test('503 (or success) during the failover, recovery within 5 s, no fork, no loss, no revoked token revived', async () => {
    let moved = '';
    const fault: Fault = {
      name: 'Redis Sentinel failover',
      outageMs: 0,
      async down() {
        const { from, to } = await sentinel.failover({ rejoin: true });
        moved = `${from} -> ${to}`;
      },
      up: async () => {},
    };
    const report = await runFault(veil, traffic, fault, { databaseUrl: stores.databaseUrl, redis, keyPrefix: stores.keyPrefix });
    console.log(`  master moved ${moved}`);
    printReport(report);
    assertFaultReport(report, traffic, fault);
  });
});
