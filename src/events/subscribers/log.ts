/**
 * The log subscriber: the log line (or lines) each domain event gets, with its `event` field and
 * message. Operators and tests search for these, so they stay as they are.
 */
import type { Logger } from '../../observability/logger.js';
import { dispatch, type DomainEvent, type EventTable, type Subscriber } from '../domain-events.js';

export interface LogLine {
  level: 'info' | 'warn';
  fields: Record<string, unknown> & { event: string };
  msg: string;
}

const info = (fields: LogLine['fields'], msg: string): LogLine => ({ level: 'info', fields, msg });
const warn = (fields: LogLine['fields'], msg: string): LogLine => ({ level: 'warn', fields, msg });

/** The lines each event is logged as, in order. */
export const LOG_LINES: EventTable<LogLine[]> = {
  'login.succeeded': (e) => [info({ event: 'login.succeeded', accountId: e.accountId }, 'login succeeded')],
  'login.failed': (e) => [
    ...(e.locked.length ? [warn({ event: 'login.locked', scopes: e.locked }, 'login locked after repeated failures')] : []),
    info({ event: 'login.failed', interaction: e.interaction }, 'login failed'),
  ],
  // The same "login failed" as a wrong password, after the reason it was refused.
  'login.locked': (e) => [
    warn({ event: 'login.throttled', interaction: e.interaction, scope: e.scope, reason: e.reason }, `login refused: ${e.reason}`),
    info({ event: 'login.failed', interaction: e.interaction }, 'login failed'),
  ],
  'consent.granted': (e) => [info({ event: 'consent.granted', accountId: e.accountId, clientId: e.clientId }, 'consent granted')],
  'consent.withdrawn': (e) => [info({ event: 'consent.withdrawn', accountId: e.accountId, clientId: e.clientId, grants: e.grants, actor: e.actor }, 'consent withdrawn')],
  'token.revoked': (e) => [info({ event: 'token.revoked', kind: e.kind, clientId: e.clientId, grantId: e.grantId }, 'token revoked')],
  'token.exchanged': (e) => [
    info({ event: 'token.exchanged', clientId: e.clientId, subjectClientId: e.subjectClientId, audience: e.audience, subjectAudience: e.subjectAudience }, 'token exchanged'),
  ],
  'token.reused': (e) => [
    warn(
      { event: 'token.reused', model: e.model, clientId: e.clientId, grantId: e.grantId, concurrent: e.concurrent },
      e.concurrent ? 'code or refresh token redeemed twice at once; grant revoked' : 'consumed code or refresh token presented again; grant revoked',
    ),
  ],
  'client.created': (e) => [info({ event: 'client.created', clientId: e.clientId }, 'client created')],
  'client.updated': (e) => [info({ event: 'client.updated', clientId: e.clientId, fields: [...e.fields] }, 'client updated')],
  'client.deleted': (e) => [info({ event: 'client.deleted', clientId: e.clientId }, 'client deleted')],
  'resource.created': (e) => [info({ event: 'resource.created', identifier: e.identifier }, 'resource server created')],
  'resource.deleted': (e) => [info({ event: 'resource.deleted', identifier: e.identifier, clients: e.clients.length }, 'resource server deleted')],
  'resource.updated': (e) => [info({ event: 'resource.updated', identifier: e.identifier, subjectMode: e.subjectMode, forced: e.forced }, 'resource server updated')],
  'user.created': (e) => [info({ event: 'user.created', accountId: e.accountId }, 'user created')],
  'user.disabled': (e) => [info({ event: 'user.disabled', accountId: e.accountId }, 'user disabled')],
  'user.enabled': (e) => [info({ event: 'user.enabled', accountId: e.accountId }, 'user enabled')],
  'user.attribute_set': (e) => [info({ event: 'user.attribute_set', accountId: e.accountId, name: e.name }, 'user attribute set')],
  'user.attribute_deleted': (e) => [info({ event: 'user.attribute_deleted', accountId: e.accountId, name: e.name }, 'user attribute deleted')],
  'key.rotated': (e) => [info({ event: 'key.rotated', kid: e.kid, alg: e.alg, actor: e.actor }, 'signing key rotated')],
  'key.retired': (e) => [info({ event: 'key.retired', kid: e.kid, actor: e.actor }, 'signing key retired')],
  'policy.created': (e) => [info({ event: 'policy.created', clientId: e.clientId, policy: e.policy, claim: e.claim, kind: e.kind, op: e.op }, 'confidential-claim policy created')],
  'policy.deleted': (e) => [info({ event: 'policy.deleted', clientId: e.clientId, policy: e.policy }, 'confidential-claim policy deleted')],
  'he.decided': (e) => [info({ event: 'he.decided', clientId: e.clientId, policy: e.policy, claim: e.claim, cached: e.cached }, 'confidential-claim decision answered')],
  'he.aggregated': (e) => [info({ event: 'he.aggregated', clientId: e.clientId, policy: e.policy, claim: e.claim, count: e.count }, 'confidential-claim aggregate answered')],
};

export function logLines(event: DomainEvent): LogLine[] {
  return dispatch(LOG_LINES, event);
}

export function logSubscriber(logger: Logger): Subscriber {
  return (event) => {
    for (const line of logLines(event)) logger[line.level](line.fields, line.msg);
  };
}
