/**
 * Probe and scrape endpoints on the admin listener: `GET /readyz` and `GET /metrics`.
 * Deliberately outside the admin token (orchestrator probes and Prometheus do not carry it);
 * the admin listener binds to loopback unless configured otherwise.
 */
import { Router } from '@koa/router';
import type { ReadinessReport } from '../observability/health.js';
import type { Metrics } from '../observability/metrics.js';

export interface OperationsDeps {
  metrics?: Metrics | undefined;
  readiness?: (() => Promise<ReadinessReport>) | undefined;
}

export function operationsRoutes({ metrics, readiness }: OperationsDeps): ReturnType<Router['routes']> {
  const router = new Router();

  /** Runs the readiness checks and records the store gauges from them. */
  async function probe(): Promise<ReadinessReport | undefined> {
    if (!readiness) return undefined;
    const report = await readiness();
    metrics?.storeUp('postgres', report.checks.postgres !== 'down');
    metrics?.storeUp('redis', report.checks.redis !== 'down');
    return report;
  }

  if (readiness) {
    router.get('/readyz', async (ctx) => {
      const report = (await probe())!;
      ctx.set('Cache-Control', 'no-store');
      ctx.status = report.ready ? 200 : 503;
      ctx.body = { status: report.ready ? 'ready' : 'unready', checks: report.checks };
    });
  }

  if (metrics) {
    router.get('/metrics', async (ctx) => {
      // Probe on every scrape too, so veil_store_up is current without a separate prober.
      await probe();
      ctx.set('Cache-Control', 'no-store');
      ctx.set('Content-Type', metrics.contentType);
      ctx.body = await metrics.render();
    });
  }

  return router.routes();
}
