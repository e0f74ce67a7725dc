/**
 * Fault: PostgreSQL restarted under mixed traffic. Veil runs on a private PostgreSQL server
 * (test/helpers/postgres-instance.ts), never the machine's shared one, which is stopped (fast
 * shutdown: every connection dropped), left down for a few seconds and started again.
 */
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { startPostgresInstance, type PostgresInstance } from '../helpers/postgres-instance.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import type { Traffic } from '../helpers/traffic.js';
import { assertFaultReport, prepareTraffic, printReport, runFault, startVeilProcess, type Fault, type VeilProcess } from './harness.js';

describe('fault: PostgreSQL restarted (down 6 s)', () => {
  let postgres: PostgresInstance;
  let stores: TestStores;
  let veil: VeilProcess;
  let traffic: Traffic;

  before(async () => {
    postgres = await startPostgresInstance();
    const admin = new pg.Client({ connectionString: postgres.url() });
    await admin.connect();
    await admin.query('CREATE DATABASE veil');
    await admin.end();
    stores = await createTestStores(); // for its Redis key prefix (its database stays unused)
    veil = await startVeilProcess({ DATABASE_URL: postgres.url('veil'), REDIS_URL: stores.redisUrl, REDIS_KEY_PREFIX: stores.keyPrefix });
    traffic = await prepareTraffic(veil);
  });

  after(async () => {
    await traffic?.stop().catch(() => {}); // a loop's failure was reported by the test; clean up regardless
    await veil?.stop();
    await postgres?.close();
    await stores?.cleanup();
  });

  test('503 while it is down, recovery within 5 s, no fork, no loss, no revoked token revived', async () => {
    const fault: Fault = { name: 'PostgreSQL restart (fast stop, 6 s down)', outageMs: 6_000, down: () => postgres.stop('fast'), up: () => postgres.start() };
    const report = await runFault(veil, traffic, fault, { databaseUrl: postgres.url('veil'), redis: stores.redis, keyPrefix: stores.keyPrefix });
    printReport(report);
    assertFaultReport(report, traffic, fault);
  });
});
