/**
 * The metrics subscriber: domain events that are counted. Today that is the sign-in outcome
 * (`veil_logins_total`); token issuance is counted from oidc-provider's own events
 * (Metrics.countIssuedTokens), readiness from the probes.
 */
import type { LoginOutcome, Metrics } from '../../observability/metrics.js';
import type { DomainEventType, Subscriber } from '../domain-events.js';

/** The login counter's outcome for each sign-in event. */
export const LOGIN_OUTCOMES: Partial<Record<DomainEventType, LoginOutcome>> = {
  'login.succeeded': 'success',
  'login.failed': 'failure',
  'login.locked': 'locked',
};

export function metricsSubscriber(metrics: Pick<Metrics, 'login'>): Subscriber {
  return (event) => {
    const outcome = LOGIN_OUTCOMES[event.type];
    if (outcome) metrics.login(outcome);
  };
}
