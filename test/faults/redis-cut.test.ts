/**
 * Fault: Redis unreachable for a few seconds under mixed traffic. Veil reaches Redis through a
 * TCP proxy that drops every connection and refuses new ones, then lets them through again.
 */
import { after, before, describe, test } from 'node:test';
import { startTcpProxy } from '../helpers/net.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import type { Traffic } from '../helpers/traffic.js';
import { assertFaultReport, prepareTraffic, printReport, runFault, startVeilProcess, type Fault, type VeilProcess } from './harness.js';

describe('fault: Redis cut for 6 s (TCP proxy)', () => {
  let stores: TestStores;
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
  let veil: VeilProcess;
  let traffic: Traffic;

  before(async () => {
    stores = await createTestStores();
    const redis = new URL(stores.redisUrl);
    proxy = await startTcpProxy(redis.hostname, Number(redis.port || 6379));
    veil = await startVeilProcess({ DATABASE_URL: stores.databaseUrl, REDIS_URL: `redis://127.0.0.1:${proxy.port}`, REDIS_KEY_PREFIX: stores.keyPrefix });
    traffic = await prepareTraffic(veil);
  });

  after(async () => {
    await traffic?.stop().catch(() => {}); // a loop's failure was reported by the test; clean up regardless
    await veil?.stop();
    await proxy?.close();
    await stores?.cleanup();
  });

  test('503 during the cut, recovery within 5 s, no fork, no loss, no revoked token revived', async () => {
    const fault: Fault = { name: 'Redis cut (TCP proxy), 6 s', outageMs: 6_000, down: async () => proxy.cut(), up: async () => proxy.restore() };
    const report = await runFault(veil, traffic, fault, stores);
    printReport(report);
    assertFaultReport(report, traffic, fault);
  });
});
