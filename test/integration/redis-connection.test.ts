/**
 * The Redis connection fails fast when the server goes away under a command: the command is
 * refused at once instead of being kept and resent after a reconnect, which made a request wait
 * the whole outage out and its write land after the caller had been told 503 (found by the fault
 * suite, test/faults/redis-cut.test.ts).
 */
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { createRedisClient } from '../../src/store/redis-connection.js';
import { startTcpProxy } from '../helpers/net.js';
import { REDIS_TEST_URL } from '../helpers/stores.js';

describe('the Redis connection under a cut (real Redis behind a TCP proxy)', () => {
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
  let client: Redis;

  before(async () => {
    const target = new URL(REDIS_TEST_URL);
    proxy = await startTcpProxy(target.hostname, Number(target.port || 6379));
    client = createRedisClient(`redis://127.0.0.1:${proxy.port}`);
    await client.connect();
  });

  after(async () => {
    client.disconnect();
    await proxy.close();
  });

  test('a command in flight when the connection drops is refused within seconds, not held until Redis returns', async () => {
    assert.equal(await client.ping(), 'PONG');
    const started = Date.now();
    const inFlight = client.get(`veil-test:cut:${started}`);
    proxy.cut(); // and it stays cut for the rest of this test
    await assert.rejects(inFlight);
    assert.ok(Date.now() - started < 3000, `refused after ${Date.now() - started} ms`);
    // A new command while disconnected is refused at once too (no offline queue).
    await assert.rejects(client.get('veil-test:cut:later'));
    assert.ok(Date.now() - started < 3500);
  });

  test('a command whose answer never comes (the network stalls, the socket stays open) fails within the command timeout', async () => {
    // A proxy that forwards until told to stall, then holds every byte: no reset, no reply.
    const target = new URL(REDIS_TEST_URL);
    let stalled = false;
    const sockets = new Set<net.Socket>();
    const stalling = net.createServer((inbound) => {
      const upstream = net.connect(Number(target.port || 6379), target.hostname);
      sockets.add(inbound).add(upstream);
      inbound.on('data', (chunk) => void (stalled || upstream.write(chunk)));
      upstream.on('data', (chunk) => void (stalled || inbound.write(chunk)));
      for (const s of [inbound, upstream]) s.on('error', () => {});
    });
    await new Promise<void>((resolve) => stalling.listen(0, '127.0.0.1', resolve));
    const stalledClient = createRedisClient(`redis://127.0.0.1:${(stalling.address() as AddressInfo).port}`);
    try {
      await stalledClient.connect();
      assert.equal(await stalledClient.ping(), 'PONG');
      stalled = true;
      const started = Date.now();
      await assert.rejects(stalledClient.get('veil-test:stalled'));
      const waited = Date.now() - started;
      assert.ok(waited < 4000, `refused after ${waited} ms`);
    } finally {
      stalledClient.disconnect();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => stalling.close(() => resolve()));
    }
  });
});
