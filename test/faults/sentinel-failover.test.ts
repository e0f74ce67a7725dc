/**
 * Fault: the Redis master failed over through Sentinel (`SENTINEL FAILOVER`) under mixed traffic.
 * Veil finds the master through the sentinels (REDIS_SENTINELS, REDIS_SENTINEL_MASTER) of a real
 * set started by test/helpers/redis-topologies.ts: one master, one replica, three sentinels. Veil
 * has each write that matters confirmed by a replica (REDIS_WAIT_REPLICAS, 1 with Sentinel) so the
 * failover loses none; until the old master has rejoined as the new master's replica, such writes
 * answer 503. A revocation that lands on the old master after the promotion, or a rotation whose
 * confirmation fails, is corrected on the new master (re-applied, or taken back), so the check
 * "exactly one live refresh token per open chain" holds with no exception: no undelivered
 * successor stays stored, and a retry after a 503 rotates instead of ending its chain.
 * The store is "back" once the set is whole again: the promoted replica answers as master and
 * the old master replicates from it.
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
    let faultAt = 0;
    let promotedAt = 0;
    let rejoinedAt = 0;
    const fault: Fault = {
      name: 'Redis Sentinel failover',
      outageMs: 0,
      async down() {
        faultAt = performance.now();
        const { from, to } = await sentinel.failover({ rejoin: true, onPromoted: () => (promotedAt = performance.now()) });
        rejoinedAt = performance.now();
        moved = `${from} -> ${to}`;
      },
      up: async () => {},
    };
    const report = await runFault(veil, traffic, fault, { databaseUrl: stores.databaseUrl, redis, keyPrefix: stores.keyPrefix });
    // The store is "back" once the set is whole again (writes are confirmed by a replica); the
    // promotion comes first, and the 503s between the two are the writes waiting for a replica.
    const unavailable = traffic.samples.filter((s) => s.outcome === 'unavailable' && s.started >= faultAt);
    const after = (t: number) => unavailable.filter((s) => s.started >= t).length;
    const ms = (t: number) => Math.round(t - faultAt);
    console.log(
      `  master moved ${moved}: promoted ${ms(promotedAt)} ms after SENTINEL FAILOVER, old master rejoined as replica at ${ms(rejoinedAt)} ms; ` +
        `503s: ${unavailable.length - after(promotedAt)} before the promotion, ${after(promotedAt) - after(rejoinedAt)} between promotion and rejoin, ${after(rejoinedAt)} after; ` +
        `last 503 started at ${unavailable.length ? ms(Math.max(...unavailable.map((s) => s.started))) : '-'} ms`,
    );
    printReport(report);
    assertFaultReport(report, traffic, fault);
  });
});
