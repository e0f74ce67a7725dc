/**
 * Graceful drain (`Veil.close()`, what SIGTERM runs): the listener stops accepting at once, an
 * in-flight request still completes against open stores, idle keep-alive connections do not hold
 * the shutdown up, and whatever is still running at SHUTDOWN_TIMEOUT_SECONDS is cut.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { basic, connectionRefused, startSlowRequest } from '../helpers/slow-request.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

type Created = { client: { client_id: string }; client_secret: string };

describe('graceful shutdown', () => {
  let stores: TestStores;
  const started: TestVeil[] = [];

  before(async () => {
    stores = await createTestStores();
  });

  after(async () => {
    for (const veil of started) await fs.rm(veil.tmpDir, { recursive: true, force: true });
    await stores?.cleanup();
  });

  async function veilWithClient(timeoutSeconds: number) {
    const veil = await startTestVeil(stores, { SHUTDOWN_TIMEOUT_SECONDS: String(timeoutSeconds) });
    started.push(veil);
    const created = await veil.admin<Created>('POST', '/admin/clients', { client_name: 'drain', grant_types: ['client_credentials'] });
    assert.equal(created.status, 201);
    const port = Number(new URL(veil.publicUrl).port);
    const tokenRequest = () =>
      startSlowRequest(port, {
        path: '/token',
        headers: { authorization: basic(created.body.client.client_id, created.body.client_secret), 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials',
      });
    return { veil, port, tokenRequest };
  }

  test('a slow request in flight completes; new connections are refused meanwhile', async () => {
    const { veil, port, tokenRequest } = await veilWithClient(10);
    const slow = await tokenRequest();
    await new Promise((r) => setTimeout(r, 200)); // the server has the headers: the request is in flight

    const t0 = performance.now();
    let closed = false;
    const closing = veil.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await connectionRefused(port), true, 'the listener should be closed');
    assert.equal(closed, false, 'close() must wait for the request in flight');

    slow.finish();
    const res = await slow.response; // the connection closes once the response is sent (idle)
    assert.equal(res.status, 200, res.raw);
    assert.equal(typeof (JSON.parse(res.body) as { access_token?: unknown }).access_token, 'string');
    await closing;
    assert.ok(performance.now() - t0 < 5000, 'the drain ends when the last request is done, not at the deadline');
  });

  test('an idle keep-alive connection does not hold the shutdown up', async () => {
    const { veil, port } = await veilWithClient(10);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const status = await new Promise<number>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/.well-known/openid-configuration', agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
        })
        .on('error', reject);
    });
    assert.equal(status, 200);
    const t0 = performance.now();
    await veil.close();
    assert.ok(performance.now() - t0 < 2000, `close() took ${performance.now() - t0} ms`);
    agent.destroy();
  });

  test('a request still running at SHUTDOWN_TIMEOUT_SECONDS is cut, and the stores close after it', async () => {
    const { veil, tokenRequest } = await veilWithClient(1);
    const stuck = await tokenRequest(); // never finishes its body
    await new Promise((r) => setTimeout(r, 200));
    const t0 = performance.now();
    await veil.close();
    const took = performance.now() - t0;
    assert.ok(took >= 900 && took < 3500, `close() took ${took} ms`);
    const res = await stuck.response;
    assert.equal(res.status, undefined, 'the cut request got no response');
    assert.ok(veil.logs.some((l) => l.includes('shutdown deadline reached')));
  });
});
