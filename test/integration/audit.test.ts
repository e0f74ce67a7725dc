/**
 * The audit trail against real PostgreSQL and Redis: sign-ins (failed, locked, succeeded),
 * consent granted and withdrawn, a revoked token, and admin changes each leave one row with the
 * right account and client ids; `GET /admin/audit` reads them back newest first; and no row
 * holds an email, a name, a password or a secret.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { pino } from 'pino';
import { AuditLog } from '../../src/audit/audit-log.js';
import { auditSubscriber } from '../../src/events/subscribers/audit.js';
import { httpAuthorizationCodeFlow, postLogin, startLoginInteraction } from '../helpers/http-flow.js';
import { registerResourceServer, revoke } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const USER = { email: 'ada.lovelace@example.com', password: 'analytical engine 1843', name: 'Ada Lovelace' };
const STRANGER = { email: 'charles.babbage@example.com', password: 'difference engine' };
const REDIRECT_URI = 'https://app.example/cb';

interface Event {
  id: string;
  at: string;
  type: string;
  account_id: string | null;
  client_id: string | null;
  actor: string;
  details: Record<string, unknown>;
}

describe('audit trail', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let accountId: string;
  let clientId: string;
  let clientSecret: string;
  let resource: { identifier: string; clientId: string; clientSecret: string };
  const secrets: string[] = [];

  const audit = async (query: string) => veil.admin<{ events: Event[] }>('GET', `/admin/audit?${query}`);
  const one = (events: Event[], type: string) => {
    const found = events.filter((e) => e.type === type);
    assert.equal(found.length, 1, `exactly one ${type} event, got ${JSON.stringify(found)}`);
    return found[0]!;
  };

  before(async () => {
    stores = await createTestStores();
    // Two failures lock an account, so a third attempt is a locked one.
    veil = await startTestVeil(stores, { LOGIN_MAX_FAILURES_PER_ACCOUNT: '2' });

    const user = await veil.admin<{ user: { id: string } }>('POST', '/admin/users', USER);
    assert.equal(user.status, 201);
    accountId = user.body.user.id;
    assert.equal((await veil.admin('POST', `/admin/users/${accountId}/disable`, {})).status, 200);
    assert.equal((await veil.admin('POST', `/admin/users/${accountId}/enable`, {})).status, 200);

    const client = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'Audited app',
      redirect_uris: [REDIRECT_URI],
      scope: 'openid email profile offline_access',
    });
    assert.equal(client.status, 201);
    clientId = client.body.client.client_id;
    clientSecret = client.body.client_secret;
    secrets.push(clientSecret);

    const rs = await registerResourceServer(veil, { identifier: 'https://api.example/audit' });
    resource = { identifier: rs.identifier, clientId: rs.clientId, clientSecret: rs.clientSecret };
    secrets.push(rs.clientSecret);
    assert.equal((await veil.admin('DELETE', `/admin/resources/${encodeURIComponent(rs.identifier)}`)).status, 204);

    // Sign-in: two wrong passwords for an address that is not an account (the second locks it),
    // then one more attempt that the lock refuses.
    for (let i = 0; i < 3; i++) {
      const interaction = await startLoginInteraction(veil.issuer, clientId, REDIRECT_URI);
      assert.equal((await postLogin(veil.issuer, interaction, STRANGER.email, STRANGER.password)).status, 401);
    }

    // A successful sign-in and consent, then the client revokes its access token (revoking the
    // refresh token would end the grant, and with it the consent withdrawn below).
    const client2 = { issuer: veil.issuer, clientId, clientSecret, redirectUri: REDIRECT_URI };
    const tokens = await httpAuthorizationCodeFlow(client2, USER, 'openid email profile offline_access');
    secrets.push(tokens.access_token, tokens.refresh_token, tokens.id_token);
    assert.equal((await revoke(veil.issuer, { id: clientId, secret: clientSecret }, tokens.access_token)).status, 200);

    // Withdrawn by an administrator.
    assert.equal((await veil.admin('DELETE', `/admin/users/${accountId}/consents/${clientId}`)).status, 204);

    // The revocation endpoint records without waiting for the row; give it a moment.
    for (let i = 0; i < 50 && !(await audit('since=1h&type=token.revoked')).body.events.length; i++) await sleep(20);
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  test('GET /admin/audit?since=1h lists every event with the right account and client ids, newest first', async () => {
    const res = await audit('since=1h');
    assert.equal(res.status, 200);
    const events = res.body.events;

    const created = one(events, 'user.created');
    assert.deepEqual([created.account_id, created.client_id, created.actor], [accountId, null, 'admin']);
    assert.equal(one(events, 'user.disabled').account_id, accountId);
    assert.equal(one(events, 'user.enabled').account_id, accountId);

    const clientCreated = one(events, 'client.created');
    assert.deepEqual([clientCreated.client_id, clientCreated.account_id, clientCreated.actor], [clientId, null, 'admin']);
    assert.deepEqual(clientCreated.details.grant_types, ['authorization_code', 'refresh_token']);

    assert.deepEqual(one(events, 'resource.created').details, { identifier: resource.identifier });
    assert.equal(one(events, 'resource.created').client_id, resource.clientId);
    assert.deepEqual(one(events, 'resource.deleted').details, { identifier: resource.identifier, clients: [] });

    const failures = events.filter((e) => e.type === 'login.failed');
    assert.equal(failures.length, 2);
    for (const f of failures) assert.deepEqual([f.account_id, f.client_id, f.actor, f.details.reason], [null, clientId, 'user', 'invalid_credentials']);
    assert.deepEqual(
      failures.map((f) => f.details.locked),
      [['account'], undefined],
      'newest first: the second failure locked the account',
    );
    const locked = one(events, 'login.locked');
    assert.deepEqual([locked.account_id, locked.client_id, locked.details], [null, clientId, { scope: 'account' }]);

    const login = one(events, 'login.succeeded');
    assert.deepEqual([login.account_id, login.client_id, login.actor], [accountId, clientId, 'user']);

    const consent = one(events, 'consent.granted');
    assert.deepEqual([consent.account_id, consent.client_id, consent.actor], [accountId, clientId, 'user']);
    assert.deepEqual(new Set(consent.details.scopes as string[]), new Set(['openid', 'email', 'profile', 'offline_access']));
    assert.equal(typeof consent.details.grant_id, 'string');

    const revoked = one(events, 'token.revoked');
    assert.deepEqual([revoked.account_id, revoked.client_id, revoked.actor, revoked.details.kind], [null, clientId, 'client', 'AccessToken']);
    assert.equal(revoked.details.grant_id, consent.details.grant_id);

    const withdrawn = one(events, 'consent.withdrawn');
    assert.deepEqual([withdrawn.account_id, withdrawn.client_id, withdrawn.actor], [accountId, clientId, 'admin']);

    // Newest first, and the order things happened in.
    const times = events.map((e) => Date.parse(e.at));
    assert.deepEqual(
      times,
      [...times].sort((a, b) => b - a),
    );
    const order = events.map((e) => e.type).reverse();
    assert.ok(order.indexOf('user.created') < order.indexOf('login.failed'));
    assert.ok(order.indexOf('login.locked') < order.indexOf('login.succeeded'));
    assert.ok(order.indexOf('login.succeeded') < order.indexOf('consent.granted'));
    assert.ok(order.indexOf('consent.granted') < order.indexOf('consent.withdrawn'));
  });

  test('no row holds an email, a name, a password, a token or a secret', async () => {
    const db = new pg.Client({ connectionString: stores.databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query('SELECT * FROM audit_events');
      assert.ok(rows.length >= 13, `expected every event in the table, got ${rows.length}`);
      const dump = JSON.stringify(rows).toLowerCase();
      for (const forbidden of [USER.email, 'ada.lovelace', USER.name, 'lovelace', USER.password, STRANGER.email, 'babbage', STRANGER.password, '127.0.0.1', ...secrets]) {
        assert.ok(!dump.includes(forbidden.toLowerCase()), `the audit table contains ${forbidden}`);
      }
    } finally {
      await db.end();
    }
  });

  test('filters: type, category, limit, until; a future since returns nothing', async () => {
    const failed = await audit('since=1h&type=login.failed');
    assert.deepEqual(
      failed.body.events.map((e) => e.type),
      ['login.failed', 'login.failed'],
    );
    const logins = await audit('since=1h&type=login');
    assert.deepEqual(new Set(logins.body.events.map((e) => e.type)), new Set(['login.failed', 'login.locked', 'login.succeeded']));
    const limited = await audit('since=1h&limit=2');
    assert.equal(limited.body.events.length, 2);
    assert.equal((await audit('since=1h&until=2000-01-01T00:00:00Z')).body.events.length, 0);

    const future = await audit(`since=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`);
    assert.equal(future.status, 200);
    assert.deepEqual(future.body.events, []);
    const iso = await audit(`since=${encodeURIComponent(new Date(Date.now() - 3_600_000).toISOString())}`);
    assert.equal(iso.body.events.length, (await audit('since=1h')).body.events.length);
  });

  test('a bad since, type or limit is a 400 invalid_request', async () => {
    for (const query of [
      'since=yesterday',
      'since=2026-11-23T00:00:00',
      'since=-1h',
      '',
      'since=1h&type=login.nope',
      'since=1h&limit=0',
      'since=1h&limit=1001',
      'since=1h&since=2h',
    ]) {
      const res = await veil.admin<{ error: string; error_description: string }>('GET', `/admin/audit?${query}`);
      assert.equal(res.status, 400, query);
      assert.equal(res.body.error, 'invalid_request', query);
    }
  });
});

describe('AuditLog', () => {
  test('a failing write is logged and never reaches the caller', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const log = new AuditLog(
      {
        record: () => Promise.reject(Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' })),
        list: () => Promise.resolve([]),
      },
      logger,
    );
    const write = auditSubscriber(log);
    await write({ type: 'login.succeeded', accountId: '00000000-0000-4000-8000-000000000000', clientId: 'client' });
    await write({ type: 'key.rotated', kid: 'kid-1', alg: 'ES256', actor: 'system' });
    assert.equal(lines.length, 2);
    const entry = JSON.parse(lines[0]!) as { level: number; msg: string; auditEvent: string; err: { code: string } };
    assert.deepEqual([entry.level, entry.msg, entry.auditEvent, entry.err.code], [50, 'audit event not recorded', 'login.succeeded', 'ECONNREFUSED']);
  });
});
