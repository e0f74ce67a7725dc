/**
 * Cluster mode: `node dist/main.js` with WEB_CONCURRENCY=2 over real PostgreSQL and Redis.
 * The primary prepares keys and migrations once; two workers serve one issuer on one port; a
 * token issued by one worker is introspected and revoked through the other; a killed worker is
 * restarted; SIGTERM to the primary drains a slow request in flight and exits 0.
 *
 * Which worker answered is read from Veil's own logs (the `worker` field of the "token revoked"
 * line), over keep-alive connections that cluster's round-robin pins to one worker each; no
 * response header exposes it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../helpers/net.js';
import { ManagedProcess } from '../helpers/process.js';
import { generatedAdminToken } from '../helpers/veil.js';
import { generateEncryptionKey } from '../helpers/resource-servers.js';
import { basic, connectionRefused, startSlowRequest } from '../helpers/slow-request.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';

type LogLine = Record<string, unknown> & { msg: string };

const RESOURCE = 'https://cluster.example/api';

describe('cluster mode (WEB_CONCURRENCY=2)', () => {
  let stores: TestStores;
  let dir: string;
  let veil: ManagedProcess;
  let port: number;
  let adminPort: number;
  let issuer: string;
  let client: { id: string; secret: string };
  let rs: { id: string; secret: string };

  const logs = (): LogLine[] =>
    veil.output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogLine);

  async function admin<T>(method: string, p: string, body: unknown): Promise<T> {
    const authorization = `Bearer ${await generatedAdminToken(path.join(dir, 'keys'))}`;
    const res = await fetch(`http://127.0.0.1:${adminPort}${p}`, { method, headers: { 'content-type': 'application/json', authorization }, body: JSON.stringify(body) });
    assert.equal(res.status, 201, `${p}: ${res.status}`);
    return (await res.json()) as T;
  }

  before(async () => {
    stores = await createTestStores();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-cluster-'));
    port = await freePort();
    adminPort = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    veil = new ManagedProcess(process.execPath, ['dist/main.js'], {
      NODE_ENV: 'test',
      WEB_CONCURRENCY: '2',
      PORT: String(port),
      HOST: '127.0.0.1',
      ISSUER: issuer,
      ADMIN_PORT: String(adminPort),
      KEYS_DIR: path.join(dir, 'keys'), // does not exist yet: the primary creates the keys once
      DATABASE_URL: stores.databaseUrl,
      REDIS_URL: stores.redisUrl,
      REDIS_KEY_PREFIX: stores.keyPrefix,
      VEIL_SEED: 'off',
      LOG_LEVEL: 'info',
      SHUTDOWN_TIMEOUT_SECONDS: '10',
    });
    await veil.waitFor(/"cluster is ready"/, 90_000);

    const { publicJwk } = await generateEncryptionKey();
    const resource = await admin<{ introspection_client_id: string; introspection_client_secret: string }>('POST', '/admin/resources', {
      identifier: RESOURCE,
      name: 'cluster API',
      scopes: ['read'],
      jwk: publicJwk,
    });
    rs = { id: resource.introspection_client_id, secret: resource.introspection_client_secret };
    const created = await admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'cluster',
      grant_types: ['client_credentials'],
      scope: 'read',
      resources: [RESOURCE],
    });
    client = { id: created.client.client_id, secret: created.client_secret };
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('the primary prepares once; two workers start; only worker 1 binds the admin listener', () => {
    const lines = logs();
    const generated = lines.filter((l) => l.msg === 'generated signing keys');
    assert.deepEqual(
      generated.map((l) => l.worker),
      [0],
      'keys generated exactly once, by the primary',
    );
    const ready = lines.filter((l) => l.msg === 'Veil is ready');
    assert.deepEqual(ready.map((l) => l.worker).sort(), [1, 2]);
    for (const l of ready) assert.equal(l.issuer, issuer);
    assert.equal(ready.find((l) => l.worker === 1)!.admin, `http://127.0.0.1:${adminPort}`);
    assert.equal(ready.find((l) => l.worker === 2)!.admin, 'none');
    const cluster = lines.find((l) => l.msg === 'cluster is ready')!;
    assert.equal(cluster.worker, 0);
    assert.equal(cluster.workers, 2);
  });

  /** A keep-alive connection: every request on it reaches the same worker. */
  class Connection {
    readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    localPort: number | undefined;
    worker: number | undefined;

    request(p: string, credentials: { id: string; secret: string }, form: Record<string, string>) {
      return new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
        const req = http.request(
          {
            host: '127.0.0.1',
            port,
            path: p,
            method: 'POST',
            agent: this.agent,
            headers: { authorization: basic(credentials.id, credentials.secret), 'content-type': 'application/x-www-form-urlencoded' },
          },
          (res) => {
            let text = '';
            res.on('data', (d) => (text += d));
            res.on('end', () => resolve({ status: res.statusCode!, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} }));
          },
        );
        req.on('socket', (socket) => {
          const record = () => {
            // If the connection were replaced, the worker identity would no longer hold.
            if (this.localPort !== undefined && socket.localPort !== this.localPort) req.destroy(new Error('the keep-alive connection was replaced'));
            this.localPort = socket.localPort;
          };
          if (socket.localPort) record();
          else socket.once('connect', record);
        });
        req.on('error', reject);
        req.end(new URLSearchParams(form).toString());
      });
    }

    async token(): Promise<string> {
      const res = await this.request('/token', client, { grant_type: 'client_credentials', resource: RESOURCE, scope: 'read' });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.access_token as string;
    }

    introspect(token: string) {
      return this.request('/token/introspection', rs, { token });
    }

    /** Revokes a token through this connection and returns the worker that logged it. */
    async revoke(token: string): Promise<number> {
      const before = logs().filter((l) => l.msg === 'token revoked').length;
      assert.equal((await this.request('/token/revocation', client, { token })).status, 200);
      const deadline = Date.now() + 5000;
      for (;;) {
        const revoked = logs().filter((l) => l.msg === 'token revoked');
        if (revoked.length > before) return revoked.at(-1)!.worker as number;
        if (Date.now() > deadline) assert.fail('no "token revoked" log line');
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    close() {
      this.agent.destroy();
    }
  }

  test('two workers serve one issuer: a token issued by one is introspected and revoked through the other', async () => {
    // Find a connection to each worker (round-robin hands new connections out in turn).
    const byWorker = new Map<number, Connection>();
    const spare: Connection[] = [];
    for (let i = 0; i < 8 && byWorker.size < 2; i++) {
      const c = new Connection();
      c.worker = await c.revoke(await c.token());
      if (byWorker.has(c.worker)) spare.push(c);
      else byWorker.set(c.worker, c);
    }
    assert.deepEqual([...byWorker.keys()].sort(), [1, 2], 'both workers answered');
    const [one, two] = [byWorker.get(1)!, byWorker.get(2)!];

    const fromOne = await one.token();
    const seenByTwo = await two.introspect(fromOne);
    assert.equal(seenByTwo.status, 200);
    assert.equal(seenByTwo.body.active, true);
    assert.equal(seenByTwo.body.aud, RESOURCE);

    const fromTwo = await two.token();
    assert.equal((await one.introspect(fromTwo)).body.active, true);
    assert.equal(await one.revoke(fromTwo), 1, 'revoked by worker 1');
    assert.deepEqual((await two.introspect(fromTwo)).body, { active: false }, 'worker 2 sees the revocation at once');
    assert.equal((await one.introspect(fromOne)).body.active, true);

    for (const c of [one, two, ...spare]) c.close();
  });

  test('a worker that dies is restarted in its slot, after a delay', async () => {
    const started = () => logs().filter((l) => l.msg === 'worker started' && l.slot === 2);
    const pid = started().at(-1)!.pid as number;
    process.kill(pid, 'SIGKILL');
    await veil.waitFor(/"worker exited; restarting it"/, 10_000);
    const exited = logs().find((l) => l.msg === 'worker exited; restarting it')!;
    assert.equal(exited.slot, 2);
    assert.equal(exited.signal, 'SIGKILL');
    assert.equal(exited.restartInMs, 1000);
    const deadline = Date.now() + 30_000;
    while (logs().filter((l) => l.msg === 'Veil is ready' && l.worker === 2).length < 2) {
      if (Date.now() > deadline) assert.fail(`worker 2 was not restarted:\n${veil.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.notEqual(started().at(-1)!.pid, pid);
    // Still one issuer on one port.
    const res = await fetch(`${issuer}/.well-known/openid-configuration`);
    assert.equal(((await res.json()) as { issuer: string }).issuer, issuer);
  });

  test('SIGTERM to the primary drains a slow request in flight, stops every worker, exits 0', async () => {
    const slow = await startSlowRequest(port, {
      path: '/token',
      headers: { authorization: basic(client.id, client.secret), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: RESOURCE, scope: 'read' }).toString(),
    });
    await new Promise((r) => setTimeout(r, 300)); // headers received: the request is in flight
    const exited = new Promise<number | null>((resolve) => veil.child.once('close', (code) => resolve(code)));
    process.kill(veil.child.pid!, 'SIGTERM'); // the primary only: it forwards to the workers
    await veil.waitFor(/"shutting down"/, 5000);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await connectionRefused(port), true, 'no new connections while draining');
    assert.equal(veil.child.exitCode, null, 'still draining the request in flight');

    slow.finish();
    const res = await slow.response;
    assert.equal(res.status, 200, res.raw);
    assert.equal(typeof (JSON.parse(res.body) as { access_token?: unknown }).access_token, 'string');
    assert.equal(await exited, 0);
    const lines = logs();
    assert.deepEqual(
      lines
        .filter((l) => l.msg === 'stopped')
        .map((l) => l.worker)
        .sort(),
      [0, 1, 2],
    );
  });
});
