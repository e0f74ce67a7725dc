/**
 * No secrets in logs. Every in-process Veil the suite starts is checked when it stops (see
 * test/helpers/secrets.ts): its log lines must not contain any token, code, secret, password or
 * email the helpers handled. Here: proof that the check bites, and a run through the error
 * paths that log, at LOG_LEVEL debug, which must leave the logs clean.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { httpAuthorizationCodeFlow, postLogin, startLoginInteraction, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { startTcpProxy } from '../helpers/net.js';
import { introspect, registerResourceServer, revoke, type TestResourceServer } from '../helpers/resource-servers.js';
import { leaksIn, rememberSecret } from '../helpers/secrets.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

type Created = { client: { client_id: string }; client_secret: string };

const user = { email: 'redaction.user@example.com', password: 'redaction password 42' };
const lockable = { email: 'redaction.locked@example.com', password: 'the lockable password' };
const redirectUri = 'https://app.example/cb';

/** The parsed JSON log lines. */
function entries(veil: TestVeil): Array<Record<string, unknown>> {
  return veil.logs
    .flatMap((chunk) => chunk.split('\n'))
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('error paths that log leave no secret in the logs (LOG_LEVEL debug)', () => {
  let stores: TestStores;
  let pgProxy: Awaited<ReturnType<typeof startTcpProxy>>;
  let veil: TestVeil;
  let client: HttpFlowClient;
  let rs: TestResourceServer;
  let stopped = false;

  before(async () => {
    stores = await createTestStores();
    pgProxy = await startTcpProxy('127.0.0.1', Number(new URL(stores.databaseUrl).port || 5432));
    const dbUrl = new URL(stores.databaseUrl);
    dbUrl.port = String(pgProxy.port);
    veil = await startTestVeil(stores, {
      DATABASE_URL: dbUrl.toString(),
      LOG_LEVEL: 'debug',
      LOGIN_MAX_FAILURES_PER_ACCOUNT: '2',
      LOGIN_MAX_FAILURES_PER_IP: '1000',
      LOGIN_LOCK_SECONDS: '60',
    });
    assert.equal((await veil.admin('POST', '/admin/users', { ...user, name: 'Redaction User' })).status, 201);
    assert.equal((await veil.admin('POST', '/admin/users', lockable)).status, 201);
    rs = await registerResourceServer(veil, { identifier: 'https://redaction.example/api' });
    const c = await veil.admin<Created>('POST', '/admin/clients', {
      client_name: 'redaction',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      scope: 'openid email offline_access',
    });
    assert.equal(c.status, 201);
    client = { issuer: veil.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret, redirectUri };
  });

  after(async () => {
    if (!stopped) await veil?.stop();
    await pgProxy?.close();
    await stores?.cleanup();
  });

  const login = async (email: string, password: string) => postLogin(veil.issuer, await startLoginInteraction(veil.issuer, client.clientId, redirectUri), email, password);

  test('a successful flow, then its tokens at introspection (bad and good credentials) and revocation', async () => {
    const tokens = await httpAuthorizationCodeFlow(client, user, 'openid email offline_access');
    assert.ok(tokens.access_token && tokens.refresh_token && tokens.id_token);

    const bad = await introspect(veil.issuer, { id: rs.clientId, secret: `wrong-${randomBytes(12).toString('hex')}` }, tokens.access_token);
    assert.equal(bad.status, 401);
    const badClient = await introspect(veil.issuer, { id: client.clientId, secret: `wrong-${randomBytes(12).toString('hex')}` }, tokens.refresh_token);
    assert.equal(badClient.status, 401);
    const good = await introspect(veil.issuer, { id: client.clientId, secret: client.clientSecret! }, tokens.refresh_token);
    assert.equal(good.status, 200);

    const unknown = await revoke(veil.issuer, { id: client.clientId, secret: client.clientSecret! }, `unknown-${randomBytes(24).toString('base64url')}`);
    assert.equal(unknown.status, 200);
    const badRevoke = await revoke(veil.issuer, { id: client.clientId, secret: `wrong-${randomBytes(12).toString('hex')}` }, tokens.refresh_token);
    assert.equal(badRevoke.status, 401);
    const revoked = await revoke(veil.issuer, { id: client.clientId, secret: client.clientSecret! }, tokens.refresh_token);
    assert.equal(revoked.status, 200);
    const reused = await tokenRequest(client, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
    assert.equal(reused.body.error, 'invalid_grant');
  });

  test('a wrong password, and an account locked after repeated failures', async () => {
    assert.equal((await login(user.email, `${user.password} but wrong`)).status, 401);
    assert.equal((await login(lockable.email, 'wrong guess number 1')).status, 401);
    assert.equal((await login(lockable.email, 'wrong guess number 2')).status, 401);
    // Locked now: the right password gets the wrong-password answer.
    assert.equal((await login(lockable.email, lockable.password)).status, 401);
  });

  test('a bad client secret at /token, and malformed bodies carrying secrets', async () => {
    const wrong = await tokenRequest({ ...client, clientSecret: `not-the-secret-${randomBytes(12).toString('hex')}` }, { grant_type: 'client_credentials' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error, 'invalid_client');

    const secret = `post-secret-${randomBytes(12).toString('hex')}`;
    rememberSecret(secret, 'client secret');
    const malformed = await fetch(`${veil.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `client_id=${client.clientId}&client_secret=${secret}&grant_type=%ZZ&&==&code=%E0%A4%A`,
    });
    assert.ok([400, 401].includes(malformed.status), `malformed token body answered ${malformed.status}`);

    const interaction = await startLoginInteraction(veil.issuer, client.clientId, redirectUri);
    const loginBody = await fetch(`${veil.issuer}${interaction.path}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: interaction.cookie },
      body: `email=${encodeURIComponent(user.email)}&password=${encodeURIComponent(user.password)}%ZZ&%E0%A4%A`,
      redirect: 'manual',
    });
    assert.ok(loginBody.status < 500, `malformed login body answered ${loginBody.status}`);

    const adminJson = await fetch(`${veil.adminUrl}/admin/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${veil.adminToken}` },
      body: `{"email":"${user.email}","password":"${user.password}"`,
    });
    assert.equal(adminJson.status, 400);
  });

  test('server errors: PostgreSQL down under an admin call and under a login', async () => {
    const interaction = await startLoginInteraction(veil.issuer, client.clientId, redirectUri);
    pgProxy.cut();
    try {
      const created = await veil.admin<{ error: string }>('POST', '/admin/users', { email: 'redaction.new@example.com', password: 'a brand new password' });
      assert.equal(created.status, 503);
      // An account no earlier test has locked; the password check needs PostgreSQL.
      const res = await postLogin(veil.issuer, interaction, 'redaction.outage@example.com', 'an outage-time password');
      assert.equal(res.status, 503);
    } finally {
      pgProxy.restore();
    }
  });

  test('those paths were logged, at error level too, and stop() finds no secret in the logs', async () => {
    const logged = entries(veil);
    const messages = new Set(logged.map((e) => e.msg));
    for (const msg of ['login failed', 'login locked after repeated failures', 'login refused: locked', 'token revoked']) {
      assert.ok(messages.has(msg), `logged: ${msg}`);
    }
    assert.ok(
      logged.some((e) => Number(e.level) >= 50),
      'an error-level line was logged',
    );
    assert.deepEqual(leaksIn(veil.logs), []);
    stopped = true;
    await veil.stop(); // resolves: nothing leaked
  });
});

// Last in the file: a rejecting stop() arms a watchdog that ends a process left hanging.
describe('the log scan in stop()', () => {
  test('a remembered secret in a log line makes stop() reject, naming the kind and the line, not the secret', async () => {
    const veil = await startTestVeil(undefined, { LOG_LEVEL: 'debug' });
    const c = await veil.admin<Created>('POST', '/admin/clients', { client_name: 'leaky', grant_types: ['client_credentials'] });
    assert.equal(c.status, 201);
    const secret = c.body.client_secret; // remembered by admin()
    const part = (n: number) => randomBytes(n).toString('base64url');
    const jwt = `${part(24)}.${part(60)}.${part(48)}`;
    rememberSecret(jwt, 'id token');
    const payload = jwt.split('.')[1]!;
    veil.logs.push(`${JSON.stringify({ level: 30, msg: 'client debug dump', detail: `secret=${secret}` })}\n`);
    veil.logs.push(`${JSON.stringify({ level: 50, msg: 'token parse failed', fragment: payload })}\n`);
    await assert.rejects(veil.stop(), (err: Error) => {
      assert.match(err.message, /client_secret ".{6}…" in the log line with msg "client debug dump"/);
      assert.match(err.message, /id token \(a part of it\) ".{6}…" in the log line with msg "token parse failed"/);
      assert.ok(!err.message.includes(secret) && !err.message.includes(payload), 'the secret itself is not in the message');
      return true;
    });
  });
});
