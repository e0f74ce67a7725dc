/**
 * Domain events: a failing subscriber never breaks `emit` or the other subscribers, and each
 * event becomes the audit row, the log lines and the login count it had when call sites wrote
 * them by hand (table-driven, through the real subscribers, a real pino logger and a real
 * Prometheus registry).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import type { AuditEvent } from '../../src/audit/audit-log.js';
import { AUDIT_EVENT_TYPES } from '../../src/audit/event-types.js';
import { DomainEvents, type DomainEvent, type DomainEventType } from '../../src/events/domain-events.js';
import { AUDIT_ROWS, auditSubscriber } from '../../src/events/subscribers/audit.js';
import { LOG_LINES, logSubscriber } from '../../src/events/subscribers/log.js';
import { metricsSubscriber } from '../../src/events/subscribers/metrics.js';
import { Metrics, type LoginOutcome } from '../../src/observability/metrics.js';

const ACCOUNT = '6f1c2d3e-0000-4000-8000-000000000001';
const CLIENT = 'c_3kd9s0aQxYz';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

interface Case {
  event: DomainEvent;
  row: Omit<AuditEvent, 'accountId' | 'clientId' | 'details'> & { accountId?: string | null; clientId?: string | null; details?: Record<string, unknown> };
  /** [level, event field, msg, other fields that must be there]. */
  logs: Array<['info' | 'warn', string, string, Record<string, unknown>?]>;
  login?: LoginOutcome;
}

const CASES: Case[] = [
  {
    event: { type: 'login.succeeded', accountId: ACCOUNT, clientId: CLIENT },
    row: { type: 'login.succeeded', actor: 'user', accountId: ACCOUNT, clientId: CLIENT },
    logs: [['info', 'login.succeeded', 'login succeeded', { accountId: ACCOUNT }]],
    login: 'success',
  },
  {
    event: { type: 'login.failed', clientId: CLIENT, interaction: 'uid1', locked: [] },
    row: { type: 'login.failed', actor: 'user', clientId: CLIENT, details: { reason: 'invalid_credentials' } },
    logs: [['info', 'login.failed', 'login failed', { interaction: 'uid1' }]],
    login: 'failure',
  },
  {
    event: { type: 'login.failed', clientId: CLIENT, interaction: 'uid2', locked: ['account', 'ip'] },
    row: { type: 'login.failed', actor: 'user', clientId: CLIENT, details: { reason: 'invalid_credentials', locked: ['account', 'ip'] } },
    logs: [
      ['warn', 'login.locked', 'login locked after repeated failures', { scopes: ['account', 'ip'] }],
      ['info', 'login.failed', 'login failed', { interaction: 'uid2' }],
    ],
    login: 'failure',
  },
  {
    event: { type: 'login.locked', clientId: CLIENT, interaction: 'uid3', scope: 'device', reason: 'locked' },
    row: { type: 'login.locked', actor: 'user', clientId: CLIENT, details: { scope: 'device' } },
    logs: [
      ['warn', 'login.throttled', 'login refused: locked', { interaction: 'uid3', scope: 'device', reason: 'locked' }],
      ['info', 'login.failed', 'login failed', { interaction: 'uid3' }],
    ],
    login: 'locked',
  },
  {
    event: { type: 'login.locked', clientId: CLIENT, interaction: 'uid4', scope: 'account', reason: 'delayed' },
    row: { type: 'login.locked', actor: 'user', clientId: CLIENT, details: { scope: 'account' } },
    logs: [
      ['warn', 'login.throttled', 'login refused: delayed', { scope: 'account', reason: 'delayed' }],
      ['info', 'login.failed', 'login failed'],
    ],
    login: 'locked',
  },
  {
    event: {
      type: 'consent.granted',
      accountId: ACCOUNT,
      clientId: CLIENT,
      grantId: 'g1',
      scopes: ['openid', 'email'],
      claims: ['name'],
      resources: { 'https://api.example': ['read'] },
    },
    row: {
      type: 'consent.granted',
      actor: 'user',
      accountId: ACCOUNT,
      clientId: CLIENT,
      details: { grant_id: 'g1', scopes: ['openid', 'email'], claims: ['name'], resources: { 'https://api.example': ['read'] } },
    },
    logs: [['info', 'consent.granted', 'consent granted', { accountId: ACCOUNT, clientId: CLIENT }]],
  },
  {
    event: { type: 'consent.withdrawn', accountId: ACCOUNT, clientId: CLIENT, actor: 'user', grants: 2 },
    row: { type: 'consent.withdrawn', actor: 'user', accountId: ACCOUNT, clientId: CLIENT },
    logs: [['info', 'consent.withdrawn', 'consent withdrawn', { accountId: ACCOUNT, clientId: CLIENT, grants: 2, actor: 'user' }]],
  },
  {
    event: { type: 'consent.withdrawn', accountId: ACCOUNT, clientId: CLIENT, actor: 'admin', grants: 1 },
    row: { type: 'consent.withdrawn', actor: 'admin', accountId: ACCOUNT, clientId: CLIENT },
    logs: [['info', 'consent.withdrawn', 'consent withdrawn', { actor: 'admin' }]],
  },
  {
    event: { type: 'token.revoked', clientId: CLIENT, kind: 'RefreshToken', grantId: 'g2' },
    row: { type: 'token.revoked', actor: 'client', clientId: CLIENT, details: { kind: 'RefreshToken', grant_id: 'g2' } },
    logs: [['info', 'token.revoked', 'token revoked', { clientId: CLIENT, kind: 'RefreshToken', grantId: 'g2' }]],
  },
  {
    event: { type: 'token.revoked', clientId: CLIENT, kind: 'ClientCredentials' },
    row: { type: 'token.revoked', actor: 'client', clientId: CLIENT, details: { kind: 'ClientCredentials' } },
    logs: [['info', 'token.revoked', 'token revoked']],
  },
  {
    event: { type: 'token.reused', model: 'RefreshToken', clientId: CLIENT, grantId: 'g3', concurrent: true },
    row: { type: 'token.reused', actor: 'system', clientId: CLIENT, details: { kind: 'RefreshToken', grant_id: 'g3', concurrent: true } },
    logs: [['warn', 'token.reused', 'code or refresh token redeemed twice at once; grant revoked', { model: 'RefreshToken', grantId: 'g3', concurrent: true }]],
  },
  {
    event: { type: 'token.reused', model: 'AuthorizationCode', clientId: undefined, grantId: 'g4', concurrent: false },
    row: { type: 'token.reused', actor: 'system', clientId: null, details: { kind: 'AuthorizationCode', grant_id: 'g4', concurrent: false } },
    logs: [['warn', 'token.reused', 'consumed code or refresh token presented again; grant revoked', { concurrent: false }]],
  },
  {
    event: {
      type: 'token.exchanged',
      clientId: 'gate',
      accountId: ACCOUNT,
      subjectClientId: CLIENT,
      grantId: 'g5',
      subjectAudience: 'https://api.example',
      audience: 'https://orders.internal',
      scope: 'orders:read',
    },
    row: {
      type: 'token.exchanged',
      actor: 'client',
      accountId: ACCOUNT,
      clientId: 'gate',
      details: { subject_client_id: CLIENT, grant_id: 'g5', subject_audience: 'https://api.example', audience: 'https://orders.internal', scope: 'orders:read' },
    },
    logs: [
      ['info', 'token.exchanged', 'token exchanged', { clientId: 'gate', subjectClientId: CLIENT, audience: 'https://orders.internal', subjectAudience: 'https://api.example' }],
    ],
  },
  {
    // A client-credentials subject: no account, no grant.
    event: {
      type: 'token.exchanged',
      clientId: 'gate',
      subjectClientId: CLIENT,
      subjectAudience: 'https://api.example',
      audience: 'https://orders.internal',
      scope: 'orders:read',
    },
    row: {
      type: 'token.exchanged',
      actor: 'client',
      clientId: 'gate',
      details: { subject_client_id: CLIENT, subject_audience: 'https://api.example', audience: 'https://orders.internal', scope: 'orders:read' },
    },
    logs: [['info', 'token.exchanged', 'token exchanged', { clientId: 'gate' }]],
  },
  {
    event: { type: 'client.created', clientId: CLIENT, grantTypes: ['client_credentials'], authMethod: 'client_secret_basic' },
    row: { type: 'client.created', actor: 'admin', clientId: CLIENT, details: { grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic' } },
    logs: [['info', 'client.created', 'client created', { clientId: CLIENT }]],
  },
  {
    event: {
      type: 'client.updated',
      clientId: CLIENT,
      fields: ['scope'],
      scope: 'openid',
      resourceScopes: { 'https://api.example': ['read'] },
      grantTypes: ['authorization_code'],
    },
    row: {
      type: 'client.updated',
      actor: 'admin',
      clientId: CLIENT,
      details: { fields: ['scope'], grant_types: ['authorization_code'], scope: 'openid', resource_scopes: { 'https://api.example': ['read'] } },
    },
    logs: [['info', 'client.updated', 'client updated', { clientId: CLIENT, fields: ['scope'] }]],
  },
  {
    event: { type: 'client.deleted', clientId: CLIENT },
    row: { type: 'client.deleted', actor: 'admin', clientId: CLIENT },
    logs: [['info', 'client.deleted', 'client deleted', { clientId: CLIENT }]],
  },
  {
    event: { type: 'resource.created', identifier: 'https://api.example', introspectionClientId: 'rs_abc' },
    row: { type: 'resource.created', actor: 'admin', clientId: 'rs_abc', details: { identifier: 'https://api.example' } },
    logs: [['info', 'resource.created', 'resource server created', { identifier: 'https://api.example' }]],
  },
  {
    event: { type: 'resource.deleted', identifier: 'https://api.example', clients: [CLIENT, 'c_other'] },
    row: { type: 'resource.deleted', actor: 'admin', details: { identifier: 'https://api.example', clients: [CLIENT, 'c_other'] } },
    logs: [['info', 'resource.deleted', 'resource server deleted', { identifier: 'https://api.example', clients: 2 }]],
  },
  {
    event: { type: 'resource.updated', identifier: 'https://api.example', subjectMode: 'public', forced: true },
    row: { type: 'resource.updated', actor: 'admin', details: { identifier: 'https://api.example', subject_mode: 'public', forced: true } },
    logs: [['info', 'resource.updated', 'resource server updated', { identifier: 'https://api.example', subjectMode: 'public', forced: true }]],
  },
  {
    event: { type: 'user.created', accountId: ACCOUNT },
    row: { type: 'user.created', actor: 'admin', accountId: ACCOUNT },
    logs: [['info', 'user.created', 'user created', { accountId: ACCOUNT }]],
  },
  {
    event: { type: 'user.disabled', accountId: ACCOUNT },
    row: { type: 'user.disabled', actor: 'admin', accountId: ACCOUNT },
    logs: [['info', 'user.disabled', 'user disabled', { accountId: ACCOUNT }]],
  },
  {
    event: { type: 'user.enabled', accountId: ACCOUNT },
    row: { type: 'user.enabled', actor: 'admin', accountId: ACCOUNT },
    logs: [['info', 'user.enabled', 'user enabled', { accountId: ACCOUNT }]],
  },
  {
    event: { type: 'user.attribute_set', accountId: ACCOUNT, name: 'age' },
    row: { type: 'user.attribute_set', actor: 'admin', accountId: ACCOUNT, details: { name: 'age' } },
    logs: [['info', 'user.attribute_set', 'user attribute set', { accountId: ACCOUNT, name: 'age' }]],
  },
  {
    event: { type: 'user.attribute_deleted', accountId: ACCOUNT, name: 'age' },
    row: { type: 'user.attribute_deleted', actor: 'admin', accountId: ACCOUNT, details: { name: 'age' } },
    logs: [['info', 'user.attribute_deleted', 'user attribute deleted', { accountId: ACCOUNT, name: 'age' }]],
  },
  {
    event: { type: 'key.rotated', kid: 'k1', alg: 'ES256', actor: 'admin' },
    row: { type: 'key.rotated', actor: 'admin', details: { kid: 'k1', alg: 'ES256' } },
    logs: [['info', 'key.rotated', 'signing key rotated', { kid: 'k1', alg: 'ES256' }]],
  },
  {
    event: { type: 'key.retired', kid: 'k1', actor: 'system' },
    row: { type: 'key.retired', actor: 'system', details: { kid: 'k1' } },
    logs: [['info', 'key.retired', 'signing key retired', { kid: 'k1' }]],
  },
  {
    event: { type: 'policy.created', clientId: CLIENT, policy: 'age-gate', claim: 'age', kind: 'decision', op: 'gte' },
    row: { type: 'policy.created', actor: 'admin', clientId: CLIENT, details: { policy: 'age-gate', claim: 'age', kind: 'decision', op: 'gte' } },
    logs: [['info', 'policy.created', 'confidential-claim policy created', { clientId: CLIENT, policy: 'age-gate' }]],
  },
  {
    event: { type: 'policy.deleted', clientId: CLIENT, policy: 'age-gate' },
    row: { type: 'policy.deleted', actor: 'admin', clientId: CLIENT, details: { policy: 'age-gate' } },
    logs: [['info', 'policy.deleted', 'confidential-claim policy deleted', { clientId: CLIENT, policy: 'age-gate' }]],
  },
  {
    event: { type: 'he.decided', clientId: CLIENT, accountId: ACCOUNT, policy: 'age-gate', claim: 'age', cached: false },
    row: { type: 'he.decided', actor: 'client', accountId: ACCOUNT, clientId: CLIENT, details: { policy: 'age-gate', claim: 'age', cached: false } },
    logs: [['info', 'he.decided', 'confidential-claim decision answered', { clientId: CLIENT, policy: 'age-gate', cached: false }]],
  },
  {
    event: { type: 'he.aggregated', clientId: CLIENT, policy: 'spend-sum', claim: 'spend_headroom', count: 10 },
    row: { type: 'he.aggregated', actor: 'client', clientId: CLIENT, details: { policy: 'spend-sum', claim: 'spend_headroom', count: 10 } },
    logs: [['info', 'he.aggregated', 'confidential-claim aggregate answered', { clientId: CLIENT, count: 10 }]],
  },
];

describe('domain event subscribers', () => {
  test('every audit event type is a domain event with a row and a log line, and every case is covered', () => {
    const covered = new Set(CASES.map((c) => c.event.type));
    assert.deepEqual([...covered].sort(), [...AUDIT_EVENT_TYPES].sort());
    assert.deepEqual(Object.keys(AUDIT_ROWS).sort(), [...AUDIT_EVENT_TYPES].sort());
    assert.deepEqual(Object.keys(LOG_LINES).sort(), [...AUDIT_EVENT_TYPES].sort());
  });

  for (const c of CASES) {
    test(`${c.event.type} ${JSON.stringify(c.event).slice(0, 80)}…`, async () => {
      const { logger, lines } = capture();
      const rows: AuditEvent[] = [];
      const metrics = new Metrics();
      const events = new DomainEvents(logger);
      events.subscribe('audit', auditSubscriber({ record: async (row) => void rows.push(row) }));
      events.subscribe('log', logSubscriber(logger));
      events.subscribe('metrics', metricsSubscriber(metrics));

      await events.emit(c.event);

      // The audit row: exactly these columns (absent account / client ids are absent or null).
      assert.equal(rows.length, 1);
      const row = rows[0]!;
      assert.deepEqual(
        { type: row.type, actor: row.actor, accountId: row.accountId ?? null, clientId: row.clientId ?? null, details: row.details ?? {} },
        { type: c.row.type, actor: c.row.actor, accountId: c.row.accountId ?? null, clientId: c.row.clientId ?? null, details: c.row.details ?? {} },
      );

      // The log lines, in order, with the level, `event` field, message and fields of old.
      assert.equal(lines.length, c.logs.length, JSON.stringify(lines));
      c.logs.forEach(([level, event, msg, fields = {}], i) => {
        const line = lines[i]!;
        assert.equal(line.level, level === 'warn' ? 40 : 30);
        assert.equal(line.event, event);
        assert.equal(line.msg, msg);
        for (const [k, v] of Object.entries(fields)) assert.deepEqual(line[k], v, `${event}.${k}`);
      });

      // The login counter moves for sign-in events only.
      const text = await metrics.render();
      const counted = [...text.matchAll(/^veil_logins_total\{outcome="(\w+)"\} (\d+)$/gm)].map((m) => [m[1], m[2]]);
      assert.deepEqual(counted, c.login ? [[c.login, '1']] : []);
    });
  }
});

describe('DomainEvents', () => {
  const event: DomainEvent = { type: 'client.deleted', clientId: CLIENT };

  test('a subscriber that throws or rejects is logged; emit resolves and the others still run', async () => {
    const { logger, lines } = capture();
    const events = new DomainEvents(logger);
    const seen: string[] = [];
    events.subscribe('first', (e) => void seen.push(`first:${e.type}`));
    events.subscribe('throws', () => {
      throw new Error('subscriber bug');
    });
    events.subscribe('rejects', async () => {
      await Promise.resolve();
      throw Object.assign(new Error('audit table gone'), { code: 'ECONNREFUSED' });
    });
    events.subscribe('last', async (e) => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      seen.push(`last:${e.type}`);
    });

    await events.emit(event); // must not reject
    assert.deepEqual(seen, ['first:client.deleted', 'last:client.deleted'], 'emit waits for every subscriber, failing ones or not');
    const failures = lines.filter((l) => l.msg === 'event subscriber failed');
    assert.deepEqual(failures.map((l) => [l.level, l.subscriber, l.domainEvent]).sort(), [
      [50, 'rejects', 'client.deleted'],
      [50, 'throws', 'client.deleted'],
    ]);
    assert.ok(
      failures.every((l) => !JSON.stringify(l).includes(CLIENT)),
      'the failure line names the event type, not its fields',
    );

    // And the next emit still reaches everyone.
    await events.emit({ type: 'user.created', accountId: ACCOUNT });
    assert.deepEqual(seen.slice(2), ['first:user.created', 'last:user.created']);
  });

  test('subscribers run in subscription order and can unsubscribe', async () => {
    const { logger } = capture();
    const events = new DomainEvents(logger);
    const seen: DomainEventType[] = [];
    const order: number[] = [];
    events.subscribe('one', () => void order.push(1));
    const off = events.subscribe('two', (e) => {
      order.push(2);
      seen.push(e.type);
    });
    events.subscribe('three', () => void order.push(3));
    await events.emit(event);
    off();
    await events.emit(event);
    assert.deepEqual(order, [1, 2, 3, 1, 3]);
    assert.deepEqual(seen, ['client.deleted']);
  });

  test('with no subscribers emit does nothing and resolves', async () => {
    const { logger, lines } = capture();
    await new DomainEvents(logger).emit(event);
    assert.equal(lines.length, 0);
  });
});
