/**
 * Fault: a worker killed with SIGKILL in the middle of refreshes (WEB_CONCURRENCY=2). The
 * requests it held are dropped (the only fault where a dropped connection is expected); the other
 * worker goes on serving, the primary restarts the dead one, and no refresh chain forks or is
 * lost without its client being told, whichever step of a rotation the kill interrupted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import type { Traffic } from '../helpers/traffic.js';
import { assertFaultReport, prepareTraffic, printReport, runFault, startVeilProcess, type Fault, type VeilProcess } from './harness.js';

describe('fault: a worker killed with SIGKILL during refreshes (WEB_CONCURRENCY=2)', () => {
  let stores: TestStores;
  let veil: VeilProcess;
  let traffic: Traffic;

  before(async () => {
    stores = await createTestStores();
    veil = await startVeilProcess({ DATABASE_URL: stores.databaseUrl, REDIS_URL: stores.redisUrl, REDIS_KEY_PREFIX: stores.keyPrefix }, 2);
    traffic = await prepareTraffic(veil);
  });

  after(async () => {
    await traffic?.stop().catch(() => {}); // a loop's failure was reported by the test; clean up regardless
    await veil?.stop();
    await stores?.cleanup();
  });

  test('the other worker serves on, the dead one is restarted, no fork, no loss, no revoked token revived', async () => {
    const started = () => veil.logs().filter((l) => l.msg === 'worker started' && l.slot === 2);
    const ready = () => veil.logs().filter((l) => l.msg === 'Veil is ready' && l.worker === 2).length;
    let readyBefore = 0;
    const fault: Fault = {
      name: 'worker SIGKILL (WEB_CONCURRENCY=2)',
      outageMs: 0,
      dropsConnections: true,
      async down() {
        readyBefore = ready();
        process.kill(started().at(-1)!.pid as number, 'SIGKILL');
      },
      async up() {
        // "Back" is the replacement worker listening (the other one served all along).
        const deadline = Date.now() + 30_000;
        while (ready() === readyBefore) {
          assert.ok(Date.now() < deadline, 'the killed worker was restarted');
          await sleep(50);
        }
      },
    };
    const report = await runFault(veil, traffic, fault, stores);
    printReport(report);
    assertFaultReport(report, traffic, fault);
    assert.equal(veil.logs().find((l) => l.msg === 'worker exited; restarting it')?.signal, 'SIGKILL');
  });
});
