/** The readiness probe: every check is bounded by its timeout, so a hung store cannot hang it. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { readiness, type ReadinessProbes } from '../../src/observability/health.js';

const ok = async () => {};
const hang = () => new Promise<void>(() => {});
const fail = async () => {
  throw new Error('ECONNREFUSED');
};

function probes(overrides: Partial<ReadinessProbes> = {}): ReadinessProbes {
  return { pingDatabase: ok, pingShortLived: ok, keysLoaded: () => true, timeoutMs: 100, ...overrides };
}

describe('readiness', () => {
  test('ready when both stores answer and the keys are loaded', async () => {
    assert.deepEqual(await readiness(probes()), { ready: true, checks: { postgres: 'up', redis: 'up', keys: 'loaded' } });
  });

  test('a hung store is reported down once its timeout passes, not when it answers', async () => {
    const started = performance.now();
    const report = await readiness(probes({ pingShortLived: hang, pingDatabase: hang }));
    const elapsed = performance.now() - started;
    assert.deepEqual(report, { ready: false, checks: { postgres: 'down', redis: 'down', keys: 'loaded' } });
    // The checks run side by side: one timeout, not two in a row.
    assert.ok(elapsed >= 90 && elapsed < 1000, `took ${elapsed} ms`);
  });

  test('a failing store is down without waiting for the timeout', async () => {
    const started = performance.now();
    const report = await readiness(probes({ pingDatabase: fail, timeoutMs: 5000 }));
    assert.ok(performance.now() - started < 1000);
    assert.deepEqual(report.checks, { postgres: 'down', redis: 'up', keys: 'loaded' });
    assert.equal(report.ready, false);
  });

  test('a ping that throws synchronously counts as down', async () => {
    const report = await readiness(
      probes({
        pingShortLived: () => {
          throw new Error('closed');
        },
      }),
    );
    assert.equal(report.checks.redis, 'down');
  });

  test('a ping that fails after its timeout leaves no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const record = (err: unknown) => unhandled.push(err);
    process.on('unhandledRejection', record);
    try {
      const late = () => new Promise<void>((_, reject) => setTimeout(() => reject(new Error('late')), 50));
      assert.equal((await readiness(probes({ pingDatabase: late, timeoutMs: 10 }))).checks.postgres, 'down');
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', record);
    }
  });

  test('embedded stores that answer are reported as embedded, and ready', async () => {
    const report = await readiness(probes({ embedded: { database: true, shortLived: true } }));
    assert.deepEqual(report, { ready: true, checks: { postgres: 'embedded', redis: 'embedded', keys: 'loaded' } });
  });

  test('missing keys make the process unready', async () => {
    const report = await readiness(probes({ keysLoaded: () => false }));
    assert.equal(report.ready, false);
    assert.equal(report.checks.keys, 'missing');
  });
});
