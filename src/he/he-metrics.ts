/**
 * Prometheus metrics of the randomness pool (randomness-pool.ts), read from its counters at each
 * scrape: factors ready, factors handed out, and takes that found the pool empty and waited for a
 * worker (a sustained miss rate means HE_POOL_WORKERS or HE_RANDOMNESS should change).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { RandomnessPool } from './randomness-pool.js';

export function registerHeMetrics(registry: Registry, pool: Pick<RandomnessPool, 'stats'>): void {
  new Gauge({
    name: 'veil_he_randomness_pool_ready',
    help: 'Paillier randomness factors precomputed and ready for the active HE key',
    registers: [registry],
    collect() {
      this.set(pool.stats().ready);
    },
  });
  new Counter({
    name: 'veil_he_randomness_served_total',
    help: 'Paillier randomness factors handed out (one per encrypted claim)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(pool.stats().served);
    },
  });
  new Counter({
    name: 'veil_he_randomness_misses_total',
    help: 'Encrypted claims that found the randomness pool empty and waited for a worker thread',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(pool.stats().misses);
    },
  });
}
