/**
 * The gate's Prometheus metrics, on its own registry (several gates can run in one process, as in
 * the tests). Every label comes from a fixed set or from the configuration (route names,
 * audiences): never a path, a token or a claim.
 */
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import type { ExchangeOutcome } from './exchange.js';
import type { IntrospectionOutcome } from './verifiers.js';

export type Dialect = 'nginx' | 'traefik' | 'envoy';
export type DecisionOutcome = 'allow' | 'deny' | 'error';

export class GateMetrics {
  readonly registry = new Registry();
  readonly #decisions: Counter<'outcome' | 'reason' | 'route'>;
  readonly #latency: Histogram<'dialect' | 'outcome'>;
  readonly #exchanges: Counter<'outcome'>;
  readonly #introspections: Counter<'audience' | 'outcome'>;

  constructor(cacheStats: () => { hits: number; misses: number }) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'veil_gate_' });
    this.#decisions = new Counter({
      name: 'veil_gate_decisions_total',
      help: 'Decisions by outcome (allow, deny, error), reason (ok, missing, malformed, expired, revoked, insufficient_scope, no_route, ...) and route name ("none" when no route matched).',
      labelNames: ['outcome', 'reason', 'route'],
      registers,
    });
    this.#latency = new Histogram({
      name: 'veil_gate_decision_duration_seconds',
      help: 'Time from a check request to its answer, by gateway dialect and outcome.',
      labelNames: ['dialect', 'outcome'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.#exchanges = new Counter({
      name: 'veil_gate_token_exchanges_total',
      help: 'Token exchanges for exchange routes: issued (a call to Veil), cached (no call), subject_refused, scope_refused, misconfigured, unavailable.',
      labelNames: ['outcome'],
      registers,
    });
    this.#introspections = new Counter({
      name: 'veil_gate_introspection_calls_total',
      help: 'Introspection calls to Veil (cache hits excluded), by audience and outcome (active, inactive, failed).',
      labelNames: ['audience', 'outcome'],
      registers,
    });
    // Read from the SDK's verifiers when scraped: counters only ever go up, so add the difference.
    let seen = { hits: 0, misses: 0 };
    new Counter({
      name: 'veil_gate_verified_token_cache_total',
      help: "Token verifications by the SDK's verified-token cache result: hit (decryption and signature spared) or miss (verified in full).",
      labelNames: ['result'],
      registers,
      collect() {
        const now = cacheStats();
        this.inc({ result: 'hit' }, now.hits - seen.hits);
        this.inc({ result: 'miss' }, now.misses - seen.misses);
        seen = now;
      },
    });
  }

  /** Label children by label values: a bounded set (the labels are), looked up by one string instead of prom-client hashing label objects on every decision. */
  readonly #decisionChildren = new Map<string, { inc(): void }>();
  readonly #latencyChildren = new Map<string, { observe(value: number): void }>();

  decision(dialect: Dialect, outcome: DecisionOutcome, reason: string, route: string, seconds: number): void {
    const key = `${outcome} ${reason} ${route}`;
    let counter = this.#decisionChildren.get(key);
    if (!counter) this.#decisionChildren.set(key, (counter = this.#decisions.labels({ outcome, reason, route })));
    counter.inc();
    const latencyKey = `${dialect} ${outcome}`;
    let histogram = this.#latencyChildren.get(latencyKey);
    if (!histogram) this.#latencyChildren.set(latencyKey, (histogram = this.#latency.labels({ dialect, outcome })));
    histogram.observe(seconds);
  }

  exchange(outcome: ExchangeOutcome): void {
    this.#exchanges.inc({ outcome });
  }

  introspection(audience: string, outcome: IntrospectionOutcome): void {
    this.#introspections.inc({ audience, outcome });
  }
}
