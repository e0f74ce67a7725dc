/**
 * The Token Status List store, renderer and endpoint on each store: process memory, the local
 * Redis (a key prefix of this file's) and a three-master Redis Cluster started here (every
 * script on one list's slot, `current` in another). The same suite for each: allocation under a
 * race (every live index handed out once, however many processes allocate), reuse only after
 * expiry plus grace and never of a revoked index, status changes, the render round trip (jose
 * and @sd-jwt/jwt-status-list), and GET /status-lists/:id over HTTP. Then what only Redis has:
 * processes moving together off a retired list, expired keys, key expiry, the 503 of an outage.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { getListFromStatusListJWT } from '@sd-jwt/jwt-status-list';
import { jwtVerify } from 'jose';
import Koa from 'koa';
import type { SigningKey } from '../../src/crypto/sealer.js';
import { TokenStatus, decompressList, readStatus, type StatusBits } from '../../src/status-list/format.js';
import { MemoryStatusListStore } from '../../src/status-list/memory-status-list-store.js';
import { RedisStatusListStore } from '../../src/status-list/redis-status-list-store.js';
import { StatusListRenderer } from '../../src/status-list/renderer.js';
import { statusListRoute } from '../../src/status-list/route.js';
import { PROBES, newListId, type CandidateSource, type StatusListStore, type StatusSlot } from '../../src/status-list/store.js';
import { closeRedis, connectRedis, type RedisClient } from '../../src/store/redis-connection.js';
import { startRedisCluster, type RedisCluster } from '../helpers/redis-topologies.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';

const ISSUER = 'https://veil.example.com';
const nowSeconds = () => Math.floor(Date.now() / 1000);
/** Until the clock has passed the start of second `s` (Redis' TIME runs on this machine's clock). */
const untilSecond = async (s: number) => {
  const wait = s * 1000 + 150 - Date.now();
  if (wait > 0) await sleep(wait);
};

function es256(): { signer: SigningKey; publicKey: KeyObject } {
  const generate = generateKeyPairSync as unknown as (t: string, o: object) => { privateKey: Buffer };
  const der = generate('ec', { namedCurve: 'P-256', publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } });
  const key = createPrivateKey({ key: der.privateKey, format: 'der', type: 'pkcs8' });
  return { signer: { kid: 'status-it-key', alg: 'ES256', key }, publicKey: createPublicKey(key) };
}

interface StoreOptions {
  size: number;
  bits?: StatusBits;
  reuseGraceSeconds?: number;
  candidates?: CandidateSource;
}

interface Backend {
  /** Whether several stores (processes) can share lists: each open() on one namespace is another process. */
  shared: boolean;
  open(namespace: string, options: StoreOptions): Promise<StatusListStore>;
}

const slotKey = (s: StatusSlot) => `${s.list}#${s.idx}`;

function assertUnique(slots: StatusSlot[], size: number): void {
  const seen = new Set<string>();
  for (const s of slots) {
    assert.ok(s.idx >= 0 && s.idx < size && Number.isInteger(s.idx), `index ${s.idx} in range`);
    assert.ok(!seen.has(slotKey(s)), `${slotKey(s)} handed out twice`);
    seen.add(slotKey(s));
  }
}

/** A Koa app with the route alone, on a free port. */
async function serve(renderer: Pick<StatusListRenderer, 'get'>): Promise<{ url: string; close(): Promise<void> }> {
  const app = new Koa();
  app.on('error', () => {});
  app.use(statusListRoute(renderer));
  const handle = app.callback();
  // Koa settles its own errors: the handler's promise needs no awaiting.
  const server = http.createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function statusListSuite(name: string, setUp: () => Promise<Backend>, tearDown: () => Promise<void>): void {
  describe(name, () => {
    let backend: Backend;
    let n = 0;
    const ns = () => `t${++n}`;
    before(async () => {
      backend = await setUp();
    });
    after(tearDown);

    test('a race of allocations hands out every index at most once, across lists and processes', async () => {
      const namespace = ns();
      const size = 64;
      const processes = await Promise.all(Array.from({ length: backend.shared ? 3 : 1 }, () => backend.open(namespace, { size })));
      const exp = nowSeconds() + 600;
      const each = 180 / processes.length;
      const slots = (await Promise.all(processes.map((p) => Promise.all(Array.from({ length: each }, () => p.allocate(exp)))))).flat();
      assert.equal(slots.length, 180);
      assertUnique(slots, size);
      const lists = new Set(slots.map((s) => s.list));
      assert.ok(lists.size >= 3, `180 tokens on lists of ${size} need at least three lists (got ${lists.size})`);
      for (const s of slots) assert.equal(s.exp, exp);
    });

    test('when every allocation wants the same indexes, each list gives each of them once: one winner per index, the losers move on', async () => {
      const namespace = ns();
      // Every allocation tries 0..15 in order: the worst collision there is.
      const same: CandidateSource = (_size, count) => Array.from({ length: count }, (_, i) => i);
      const processes = await Promise.all(Array.from({ length: backend.shared ? 3 : 1 }, () => backend.open(namespace, { size: 64, candidates: same })));
      const total = 100;
      const exp = nowSeconds() + 600;
      const slots = (await Promise.all(Array.from({ length: total }, (_, i) => processes[i % processes.length]!.allocate(exp)))).flat();
      assertUnique(slots, 64);
      const perList = new Map<string, number[]>();
      for (const s of slots) perList.set(s.list, [...(perList.get(s.list) ?? []), s.idx]);
      // A list is retired only when all 16 are held, so every list but the last holds 0..15 exactly.
      assert.equal(perList.size, Math.ceil(total / PROBES));
      const sizes = [...perList.values()].map((idx) => idx.length).sort((a, b) => b - a);
      assert.deepEqual(sizes, [...Array<number>(Math.floor(total / PROBES)).fill(PROBES), total % PROBES]);
      for (const idx of perList.values())
        assert.deepEqual(
          [...idx].sort((a, b) => a - b),
          Array.from({ length: idx.length }, (_, i) => i),
        );
    });

    test('an index is reused only after its token expired plus the grace, and a revoked index never', async () => {
      let next = [0];
      const store = await backend.open(ns(), { size: 8, reuseGraceSeconds: 1, candidates: (_s, count) => Array.from({ length: count }, (_, i) => next[i % next.length]!) });
      const t0 = nowSeconds();
      const first = await store.allocate(t0 + 1);
      assert.equal(first.idx, 0);
      next = [0, 1];
      const long = await store.allocate(t0 + 600);
      assert.deepEqual([long.list, long.idx], [first.list, 1], 'index 0 is held: the next free one');

      // Past exp, inside the grace: still held.
      await untilSecond(t0 + 1);
      next = [0, 2];
      const inGrace = await store.allocate(nowSeconds() + 600);
      assert.deepEqual([inGrace.list, inGrace.idx], [first.list, 2]);

      // Past exp and grace: index 0 is free again, in the same list.
      await untilSecond(t0 + 2);
      next = [0];
      const t1 = nowSeconds();
      const reused = await store.allocate(t1 + 1);
      assert.deepEqual([reused.list, reused.idx], [first.list, 0]);
      // The first token's revocation, now that it is past exp and grace, does nothing: index 0 is another token's.
      assert.equal(await store.setStatus(first, TokenStatus.INVALID), false);
      assert.equal(readStatus((await store.read(first.list))!.bytes, 0, 2), TokenStatus.VALID);

      // The new holder revoked: index 0 stays out of use after it expires.
      assert.equal(await store.setStatus(reused, TokenStatus.INVALID), true);
      await untilSecond(t1 + 2);
      next = [0, 3];
      const afterRevoked = await store.allocate(nowSeconds() + 600);
      assert.deepEqual([afterRevoked.list, afterRevoked.idx], [first.list, 3]);
      // Held (1, 2), revoked (0), taken (3): asked for these alone, the list is full and a new one starts.
      next = [0, 1, 2, 3];
      const moved = await store.allocate(nowSeconds() + 600);
      assert.notEqual(moved.list, first.list);
      assert.equal(moved.idx, 0);
    });

    test('status changes: one or many at once, across lists; INVALID is final; SUSPENDED lifts; dead, foreign and out-of-range entries are left alone', async () => {
      const namespace = ns();
      const store = await backend.open(namespace, { size: 16, bits: 2 });
      const exp = nowSeconds() + 600;
      const slots: StatusSlot[] = [];
      for (let i = 0; i < 30; i++) slots.push(await store.allocate(exp));
      const lists = [...new Set(slots.map((s) => s.list))];
      assert.ok(lists.length >= 2);

      const revoked = [slots[0]!, slots[29]!, slots[15]!];
      assert.equal(await store.setStatuses(revoked, TokenStatus.INVALID), 3);
      assert.equal(await store.setStatuses(revoked, TokenStatus.INVALID), 3, 'setting again: still 3 INVALID');
      assert.equal(await store.setStatus(slots[0]!, TokenStatus.VALID), false, 'INVALID is final');
      assert.equal(await store.setStatus(slots[0]!, TokenStatus.SUSPENDED), false);

      const suspended = slots[1]!;
      assert.equal(await store.setStatus(suspended, TokenStatus.SUSPENDED), true);
      const suspendedToo = slots[2]!;
      assert.equal(await store.setStatus(suspendedToo, TokenStatus.SUSPENDED), true);
      assert.equal(await store.setStatus(suspendedToo, TokenStatus.VALID), true, 'a suspension lifts');
      assert.equal(await store.setStatus(slots[3]!, TokenStatus.SUSPENDED), true);
      assert.equal(await store.setStatus(slots[3]!, TokenStatus.INVALID), true, 'a suspended token can still be revoked');

      // Past exp plus grace, out of range, a list that does not exist: nothing.
      assert.equal(await store.setStatus({ ...slots[4]!, exp: nowSeconds() - 3600 }, TokenStatus.INVALID), false);
      assert.equal(await store.setStatus({ ...slots[4]!, idx: 16 }, TokenStatus.INVALID), false);
      assert.equal(await store.setStatus({ ...slots[4]!, idx: -1 }, TokenStatus.INVALID), false);
      assert.equal(await store.setStatus({ list: newListId(), idx: 1, exp }, TokenStatus.INVALID), false);
      assert.equal(await store.setStatuses([], TokenStatus.INVALID), 0);

      const expected = new Map<string, number>([
        [slotKey(slots[0]!), TokenStatus.INVALID],
        [slotKey(slots[29]!), TokenStatus.INVALID],
        [slotKey(slots[15]!), TokenStatus.INVALID],
        [slotKey(suspended), TokenStatus.SUSPENDED],
        [slotKey(slots[3]!), TokenStatus.INVALID],
      ]);
      for (const list of lists) {
        const snapshot = (await store.read(list))!;
        assert.equal(snapshot.size, 16);
        assert.equal(snapshot.bits, 2);
        assert.equal(snapshot.bytes.length, 4);
        for (let idx = 0; idx < 16; idx++) assert.equal(readStatus(snapshot.bytes, idx, 2), expected.get(`${list}#${idx}`) ?? TokenStatus.VALID, `${list}#${idx}`);
      }
    });

    test('a 1-bit list: SUSPENDED is stored as INVALID (and so is final)', async () => {
      const store = await backend.open(ns(), { size: 64, bits: 1 });
      const slot = await store.allocate(nowSeconds() + 600);
      assert.equal(await store.setStatus(slot, TokenStatus.SUSPENDED), true, 'refused from now on, as asked');
      const snapshot = (await store.read(slot.list))!;
      assert.equal(snapshot.bits, 1);
      assert.equal(snapshot.bytes.length, 8);
      assert.equal(readStatus(snapshot.bytes, slot.idx, 1), TokenStatus.INVALID);
      assert.equal(await store.setStatus(slot, TokenStatus.VALID), false);
      assert.equal(await store.setStatus(slot, TokenStatus.INVALID), true);
    });

    test('read: a new list is all VALID at its full length; an unknown or malformed id is no list', async () => {
      const store = await backend.open(ns(), { size: 1024 });
      const slot = await store.allocate(nowSeconds() + 600);
      const snapshot = (await store.read(slot.list))!;
      assert.equal(snapshot.id, slot.list);
      assert.equal(snapshot.bytes.length, 256);
      assert.ok(snapshot.bytes.every((b) => b === 0));
      assert.equal(await store.read(newListId()), undefined);
      for (const junk of ['', 'x', '{sl:x}', '../x', `${slot.list}:meta`]) assert.equal(await store.read(junk), undefined, junk);
    });

    test('render round trip: the served list verifies with jose and the independent implementation reads every status', async () => {
      const store = await backend.open(ns(), { size: 4096, bits: 2 });
      const { signer, publicKey } = es256();
      const renderer = new StatusListRenderer({ store, signer, issuer: ISSUER, ttlSeconds: 60, expSeconds: 600 });
      const exp = nowSeconds() + 600;
      const slots = await Promise.all(Array.from({ length: 200 }, () => store.allocate(exp)));
      const list = slots[0]!.list;
      const mine = slots.filter((s) => s.list === list);
      const revoked = mine.filter((_, i) => i % 7 === 0);
      const suspended = mine.filter((_, i) => i % 7 === 3);
      await store.setStatuses(revoked, TokenStatus.INVALID);
      await store.setStatuses(suspended, TokenStatus.SUSPENDED);

      const rendered = (await renderer.get(list))!;
      const { payload } = await jwtVerify(rendered.token, publicKey, { typ: 'statuslist+jwt', issuer: ISSUER, subject: `${ISSUER}/status-lists/${list}`, algorithms: ['ES256'] });
      assert.equal(payload.ttl, 60);
      assert.equal(payload.exp, payload.iat! + 600);
      const theirs = getListFromStatusListJWT(rendered.token);
      assert.equal(theirs.statusList.length, 4096);
      const bytes = decompressList((payload.status_list as { lst: string }).lst, 1024);
      const want = new Map([...revoked.map((s) => [s.idx, 1] as const), ...suspended.map((s) => [s.idx, 2] as const)]);
      for (let idx = 0; idx < 4096; idx++) {
        assert.equal(theirs.getStatus(idx), want.get(idx) ?? 0, `index ${idx}`);
        assert.equal(readStatus(bytes, idx, 2), want.get(idx) ?? 0);
      }
    });

    test('GET /status-lists/:id: the token as application/statuslist+jwt, cacheable for what is left of its ttl; errors as OAuth JSON, never a 500', async () => {
      const store = await backend.open(ns(), { size: 1024 });
      const { signer, publicKey } = es256();
      const renderer = new StatusListRenderer({ store, signer, issuer: ISSUER, ttlSeconds: 30, expSeconds: 600 });
      const server = await serve(renderer);
      try {
        const slot = await store.allocate(nowSeconds() + 600);
        await store.setStatus(slot, TokenStatus.INVALID);
        const url = `${server.url}/status-lists/${slot.list}`;

        const res = await fetch(url, { headers: { accept: 'application/statuslist+jwt' } });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('content-type'), 'application/statuslist+jwt');
        const maxAge = Number(/^public, max-age=(\d+)$/.exec(res.headers.get('cache-control') ?? '')?.[1]);
        assert.ok(maxAge >= 28 && maxAge <= 30, `max-age ${maxAge} within the 30 s ttl`);
        assert.equal(res.headers.get('access-control-allow-origin'), '*');
        const etag = res.headers.get('etag');
        assert.match(etag ?? '', /^"[A-Za-z0-9_-]{27}"$/);
        const token = await res.text();
        const { payload } = await jwtVerify(token, publicKey, { typ: 'statuslist+jwt', subject: url.replace(server.url, ISSUER) });
        assert.equal(readStatus(decompressList((payload.status_list as { lst: string }).lst, 1024), slot.idx, 2), TokenStatus.INVALID);

        // The same token again (rendered once per ttl), and 304 for a cache that has it.
        assert.equal(await (await fetch(url)).text(), token);
        // (fetch sends `Cache-Control: no-cache` with a conditional request unless told otherwise: an end-to-end reload.)
        const notModified = await fetch(url, { headers: { 'if-none-match': etag!, 'cache-control': 'max-age=0' } });
        assert.equal(notModified.status, 304);
        assert.equal(await notModified.text(), '');
        assert.match(notModified.headers.get('cache-control') ?? '', /^public, max-age=\d+$/);
        const head = await fetch(url, { method: 'HEAD' });
        assert.equal(head.status, 200);
        assert.equal(head.headers.get('content-type'), 'application/statuslist+jwt');

        const oauthError = async (res: Response, status: number, error: string) => {
          assert.equal(res.status, status);
          assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
          const body = (await res.json()) as { error: string; error_description: string };
          assert.equal(body.error, error);
          assert.equal(typeof body.error_description, 'string');
          assert.doesNotMatch(JSON.stringify(body), /at .*\.ts|Error:|stack/);
          return body;
        };
        const unknown = await fetch(`${server.url}/status-lists/${newListId()}`);
        assert.equal((await oauthError(unknown, 404, 'invalid_request')).error_description, 'unknown status list');
        assert.equal(unknown.headers.get('cache-control'), 'no-store');
        for (const junk of [
          '',
          'x',
          `${slot.list}x`,
          `${slot.list}/`,
          `${slot.list}/more`,
          '..%2F..%2Fetc%2Fpasswd',
          `%7Bsl:${slot.list.slice(4)}%7D`,
          '%00'.repeat(22),
          'a'.repeat(5000),
          '%E9'.repeat(22),
          '%C3%A9'.repeat(22),
        ]) {
          await oauthError(await fetch(`${server.url}/status-lists/${junk}`), 404, 'invalid_request');
        }
        const post = await fetch(url, { method: 'POST', body: 'x' });
        await oauthError(post, 405, 'invalid_request');
        assert.equal(post.headers.get('allow'), 'GET, HEAD');
        await oauthError(await fetch(`${url}?time=1686925000`), 501, 'invalid_request');
        // Not a status-list path: left to the next middleware (here none: Koa's 404).
        assert.equal((await fetch(`${server.url}/status-listsx/${slot.list}`)).status, 404);
      } finally {
        await server.close();
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------

statusListSuite(
  'status lists in process memory',
  async () => ({ shared: false, open: async (_ns, options) => new MemoryStatusListStore(options) }),
  async () => {},
);

let stores: TestStores;
const clients: RedisClient[] = [];
statusListSuite(
  'status lists in Redis',
  async () => {
    stores = await createTestStores();
    return {
      shared: true,
      open: async (namespace, options) => {
        const client = await connectRedis(stores.redisUrl);
        clients.push(client);
        return new RedisStatusListStore(client, { keyPrefix: `${stores.keyPrefix}${namespace}:`, ...options });
      },
    };
  },
  async () => {
    await Promise.all(clients.splice(0).map(closeRedis));
    await stores?.cleanup();
  },
);

let cluster: RedisCluster;
const clusterClients: RedisClient[] = [];
statusListSuite(
  'status lists on a Redis Cluster',
  async () => {
    cluster = await startRedisCluster();
    const nodes = cluster.nodes.map((n) => ({ host: n.split(':')[0]!, port: Number(n.split(':')[1]) }));
    return {
      shared: true,
      open: async (namespace, options) => {
        const client = await connectRedis({ kind: 'cluster', nodes, password: undefined, keyPrefix: '' });
        clusterClients.push(client);
        return new RedisStatusListStore(client, { keyPrefix: `veil:${namespace}:`, ...options });
      },
    };
  },
  async () => {
    await Promise.all(clusterClients.splice(0).map(closeRedis));
    await cluster?.stop();
  },
);

// ---------------------------------------------------------------------------------------------
// What only the Redis store has.

describe('status lists in Redis: processes, key lifetimes, outages', () => {
  let local: TestStores;
  const opened: RedisClient[] = [];
  let n = 0;
  const open = async (namespace: string, options: StoreOptions & { waitReplicas?: number }) => {
    const client = await connectRedis(local.redisUrl);
    opened.push(client);
    return { client, store: new RedisStatusListStore(client, { keyPrefix: `${local.keyPrefix}${namespace}:`, ...options }) };
  };
  before(async () => {
    local = await createTestStores();
  });
  after(async () => {
    await Promise.all(opened.splice(0).map(closeRedis));
    await local?.cleanup();
  });

  test('a list one process retires moves the others on to the same next list (no second new list)', async () => {
    const namespace = `p${++n}`;
    let forced: number[] | undefined;
    const candidates: CandidateSource = (size, count) => forced ?? Array.from({ length: count }, () => Math.floor(Math.random() * size));
    const x = (await open(namespace, { size: 1024 })).store;
    const y = (await open(namespace, { size: 1024, candidates })).store;
    const exp = nowSeconds() + 600;
    const x1 = await x.allocate(exp);
    const y1 = await y.allocate(exp);
    assert.equal(y1.list, x1.list, 'a second process starts on the current list');

    forced = [x1.idx, y1.idx];
    const y2 = await y.allocate(exp);
    assert.notEqual(y2.list, x1.list, 'every probe held: y retires the list');
    forced = undefined;

    const x2 = await x.allocate(exp);
    assert.equal(x2.list, y2.list, 'x finds its list closed and joins the list y made');
    assert.equal(await local.redis.get(`${local.keyPrefix}${namespace}:status-list:current`), y2.list);
    const metas = await local.redis.keys(`${local.keyPrefix}${namespace}:status-list:*:meta`);
    assert.equal(metas.length, 2, 'the retired list and the new one, nothing else');
    // The retired list is still served and still takes revocations.
    assert.equal(await x.setStatus(x1, TokenStatus.INVALID), true);
    assert.equal(readStatus((await x.read(x1.list))!.bytes, x1.idx, 2), TokenStatus.INVALID);
  });

  test('the bytes in Redis are the draft’s byte array (BITFIELD offsets), and a list’s keys expire together after its last token', async () => {
    const namespace = `p${++n}`;
    const { store } = await open(namespace, { size: 64, bits: 2, reuseGraceSeconds: 60, candidates: (_s, count) => Array<number>(count).fill(5) });
    // Past the new list's first hour: the allocation raises the lease to exp + grace + an hour.
    const exp = nowSeconds() + 7200;
    const slot = await store.allocate(exp);
    assert.equal(slot.idx, 5);
    await store.setStatus(slot, TokenStatus.SUSPENDED);
    const keys = store.keys(slot.list);
    // Index 5 with 2 bits: byte 1, bits 2-3; SUSPENDED (0b10) there is 0x08.
    assert.deepEqual([...((await local.redis.getBuffer(keys.status)) ?? [])], [0x00, 0x08]);
    assert.equal(await local.redis.hget(keys.meta, 'keep'), String(exp + 60 + 3600));
    for (const key of [keys.meta, keys.held, keys.status]) {
      assert.equal(await local.redis.expiretime(key), exp + 60 + 3600, `${key} expires with the list`);
    }
  });

  test('a current list whose keys are gone is replaced on the next allocation', async () => {
    const namespace = `p${++n}`;
    const { store } = await open(namespace, { size: 64 });
    const first = await store.allocate(nowSeconds() + 600);
    const keys = store.keys(first.list);
    await local.redis.del(keys.meta, keys.held, keys.status);
    const second = await store.allocate(nowSeconds() + 600);
    assert.notEqual(second.list, first.list);
    assert.equal(await local.redis.get(`${local.keyPrefix}${namespace}:status-list:current`), second.list);
  });

  test('Redis down: allocation and status changes fail as store_unavailable; the endpoint answers 503 temporarily_unavailable', async () => {
    const { client, store } = await open(`p${++n}`, { size: 64 });
    const slot = await store.allocate(nowSeconds() + 600);
    client.disconnect();
    await assert.rejects(store.allocate(nowSeconds() + 600), { code: 'store_unavailable' });
    await assert.rejects(store.setStatus(slot, TokenStatus.INVALID), { code: 'store_unavailable' });
    await assert.rejects(store.read(slot.list), { code: 'store_unavailable' });
    const renderer = new StatusListRenderer({ store, signer: es256().signer, issuer: ISSUER, ttlSeconds: 60, expSeconds: 600 });
    const server = await serve(renderer);
    try {
      const res = await fetch(`${server.url}/status-lists/${slot.list}`);
      assert.equal(res.status, 503);
      assert.equal(((await res.json()) as { error: string }).error, 'temporarily_unavailable');
    } finally {
      await server.close();
    }
  });

  test('behind Sentinel (waitReplicas), a status change no replica confirmed is not reported as done', async () => {
    // The local Redis has no replica: WAIT answers 0 after its timeout.
    const { store } = await open(`p${++n}`, { size: 64, waitReplicas: 1 });
    const slot = await store.allocate(nowSeconds() + 600);
    await assert.rejects(store.setStatus(slot, TokenStatus.INVALID), { code: 'store_unavailable' });
  });
});
