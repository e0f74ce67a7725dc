/**
 * Probe and scrape endpoints on the admin listener: `GET /healthz`, `GET /readyz` and
 * `GET /metrics`. On a loopback bind the guard lets them through without the admin token
 * (orchestrator probes and Prometheus do not carry it).
 */
import type { Router } from '@koa/router';
import type { ReadinessReport } from '../../observability/health.js';
import type { Metrics } from '../../observability/metrics.js';

export interface HealthDeps {
  metrics?: Metrics | undefined;
  readiness?: (() => Promise<ReadinessReport>) | undefined;
}

export function registerHealthRoutes(router: Router, { metrics, readiness }: HealthDeps): void {
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  /** Runs the readiness checks and records the store gauges from them. */
  async function probe(): Promise<ReadinessReport | undefined> {
    if (!readiness) return undefined;
    const report = await readiness();
    if (metrics) metrics.storesProbed(report.checks);
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
}
