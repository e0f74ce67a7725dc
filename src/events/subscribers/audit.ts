/**
 * The audit subscriber: one audit row per domain event, written through AuditLog (which never
 * throws). What goes into a row is decided here and nowhere else.
 *
 * No personal data beyond the account id: never an email, a name, an IP address, a token, a
 * password or a secret. Details hold only identifiers Veil itself made up (grant ids, key ids),
 * registry identifiers (resource URIs), scopes and enumerated reasons.
 */
import type { AuditEvent, AuditLog } from '../../audit/audit-log.js';
import { dispatch, type DomainEvent, type EventTable, type Subscriber } from '../domain-events.js';

/** The audit row each event becomes. */
export const AUDIT_ROWS: EventTable<AuditEvent> = {
  'login.succeeded': (e) => ({ type: 'login.succeeded', actor: 'user', accountId: e.accountId, clientId: e.clientId }),
  'login.failed': (e) => ({
    type: 'login.failed',
    actor: 'user',
    clientId: e.clientId,
    details: { reason: 'invalid_credentials', ...(e.locked.length ? { locked: [...e.locked] } : {}) },
  }),
  'login.locked': (e) => ({ type: 'login.locked', actor: 'user', clientId: e.clientId, details: { scope: e.scope } }),
  'consent.granted': (e) => ({
    type: 'consent.granted',
    actor: 'user',
    accountId: e.accountId,
    clientId: e.clientId,
    details: { grant_id: e.grantId, scopes: e.scopes, ...(e.claims?.length ? { claims: e.claims } : {}), resources: e.resources },
  }),
  'consent.withdrawn': (e) => ({ type: 'consent.withdrawn', actor: e.actor, accountId: e.accountId, clientId: e.clientId }),
  // The token itself is never recorded.
  'token.revoked': (e) => ({ type: 'token.revoked', actor: 'client', clientId: e.clientId, details: { kind: e.kind, ...(e.grantId ? { grant_id: e.grantId } : {}) } }),
  'token.exchanged': (e) => ({
    type: 'token.exchanged',
    actor: 'client',
    accountId: e.accountId ?? null,
    clientId: e.clientId,
    details: {
      subject_client_id: e.subjectClientId,
      ...(e.grantId ? { grant_id: e.grantId } : {}),
      subject_audience: e.subjectAudience,
      audience: e.audience,
      scope: e.scope,
    },
  }),
  'token.reused': (e) => ({ type: 'token.reused', actor: 'system', clientId: e.clientId ?? null, details: { kind: e.model, grant_id: e.grantId, concurrent: e.concurrent } }),
  'client.created': (e) => ({
    type: 'client.created',
    actor: 'admin',
    clientId: e.clientId,
    details: { ...(e.grantTypes ? { grant_types: [...e.grantTypes] } : {}), ...(e.authMethod ? { token_endpoint_auth_method: e.authMethod } : {}) },
  }),
  // No URIs: only what the trail may hold.
  'client.updated': (e) => ({
    type: 'client.updated',
    actor: 'admin',
    clientId: e.clientId,
    details: {
      fields: [...e.fields],
      ...(e.grantTypes ? { grant_types: [...e.grantTypes] } : {}),
      ...(e.scope ? { scope: e.scope } : {}),
      resource_scopes: e.resourceScopes ?? {},
    },
  }),
  'client.deleted': (e) => ({ type: 'client.deleted', actor: 'admin', clientId: e.clientId }),
  'resource.created': (e) => ({ type: 'resource.created', actor: 'admin', clientId: e.introspectionClientId, details: { identifier: e.identifier } }),
  'resource.deleted': (e) => ({ type: 'resource.deleted', actor: 'admin', details: { identifier: e.identifier, clients: [...e.clients] } }),
  'resource.updated': (e) => ({ type: 'resource.updated', actor: 'admin', details: { identifier: e.identifier, subject_mode: e.subjectMode, forced: e.forced } }),
  'user.created': (e) => ({ type: 'user.created', actor: 'admin', accountId: e.accountId }),
  'user.disabled': (e) => ({ type: 'user.disabled', actor: 'admin', accountId: e.accountId }),
  'user.enabled': (e) => ({ type: 'user.enabled', actor: 'admin', accountId: e.accountId }),
  'user.attribute_set': (e) => ({ type: 'user.attribute_set', actor: 'admin', accountId: e.accountId, details: { name: e.name } }),
  'user.attribute_deleted': (e) => ({ type: 'user.attribute_deleted', actor: 'admin', accountId: e.accountId, details: { name: e.name } }),
  'key.rotated': (e) => ({ type: 'key.rotated', actor: e.actor, details: { kid: e.kid, alg: e.alg } }),
  'key.retired': (e) => ({ type: 'key.retired', actor: e.actor, details: { kid: e.kid } }),
  'policy.created': (e) => ({ type: 'policy.created', actor: 'admin', clientId: e.clientId, details: { policy: e.policy, claim: e.claim, kind: e.kind, op: e.op } }),
  'policy.deleted': (e) => ({ type: 'policy.deleted', actor: 'admin', clientId: e.clientId, details: { policy: e.policy } }),
  'he.decided': (e) => ({
    type: 'he.decided',
    actor: 'client',
    accountId: e.accountId ?? null,
    clientId: e.clientId,
    details: { policy: e.policy, claim: e.claim, cached: e.cached },
  }),
  'he.aggregated': (e) => ({ type: 'he.aggregated', actor: 'client', clientId: e.clientId, details: { policy: e.policy, claim: e.claim, count: e.count } }),
};

export function auditRow(event: DomainEvent): AuditEvent {
  return dispatch(AUDIT_ROWS, event);
}

/** Writes each event's row; AuditLog.record logs and swallows a failed write. */
export function auditSubscriber(audit: Pick<AuditLog, 'record'>): Subscriber {
  return (event) => audit.record(auditRow(event));
}
