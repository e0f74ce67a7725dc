/**
 * Token Status List costs (issue 11), against the local Redis (REDIS_URL, default
 * redis://127.0.0.1:6379) on the connection Veil uses (auto-pipelining, fail fast):
 *   1. allocation on the issuing path: allocations/s with 64 in flight, and one at a time, each
 *      against a plain `SET key value EX 600` in the same rounds (the ratio is the figure to
 *      keep: the machine is shared and noisy);
 *   2. a list of 1,000,000 entries (2 bits) rendered from cold: Redis read + ZLIB level 9 +
 *      ES256 signature, with every entry VALID, 1% and 10% random INVALID; the compressed size;
 *   3. serving a rendered list from the render cache: GET /status-lists/:id over HTTP
 *      (autocannon in this process against a Koa app in this process) and renderer.get() alone.
 * Run: `node --import tsx bench/status-list.ts` (BENCH_SECONDS sets the HTTP run, default 5).
 */
import { createPrivateKey, generateKeyPairSync, randomBytes, randomInt } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import autocannon from 'autocannon';
import type { Redis } from 'ioredis';
import { decodeJwt } from 'jose';
import Koa from 'koa';
import type { SigningKey } from '../src/crypto/sealer.js';
import { TokenStatus, compressList, compressListAsync } from '../src/status-list/format.js';
import { MemoryStatusListStore } from '../src/status-list/memory-status-list-store.js';
import { RedisStatusListStore } from '../src/status-list/redis-status-list-store.js';
import { StatusListRenderer } from '../src/status-list/renderer.js';
import { statusListRoute } from '../src/status-list/route.js';
import type { StatusSlot } from '../src/status-list/store.js';
import { closeRedis, connectRedis, type RedisClient } from '../src/store/redis-connection.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ROUNDS = 5;
const ROUND_MS = 1000;
const IN_FLIGHT = 64;
const LIST_SIZE = 1_000_000;
const HTTP_SECONDS = Number(process.env.BENCH_SECONDS ?? 5);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function signer(): SigningKey {
  const generate = generateKeyPairSync as unknown as (t: string, o: object) => { privateKey: Buffer };
  const der = generate('ec', { namedCurve: 'P-256', publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } });
  return { kid: 'bench', alg: 'ES256', key: createPrivateKey({ key: der.privateKey, format: 'der', type: 'pkcs8' }) };
}

/** Operations per second of `op` with `inFlight` loops running it for `ms`. */
async function rate(op: () => Promise<unknown>, inFlight: number, ms: number): Promise<number> {
  let n = 0;
  const start = performance.now();
  const deadline = start + ms;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < deadline) {
        await op();
        n++;
      }
    }),
  );
  return n / ((performance.now() - start) / 1000);
}

/** The bench's keys (a single Redis: SCAN is per node). */
async function removeKeys(client: RedisClient, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await (client as Redis).scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length) await client.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

async function allocation(client: RedisClient, prefix: string): Promise<void> {
  const store = new RedisStatusListStore(client, { keyPrefix: prefix });
  const exp = () => Math.floor(Date.now() / 1000) + 600;
  const set = () => client.set(`${prefix}plain:${randomBytes(16).toString('base64url')}`, 'x'.repeat(32), 'EX', 600);
  await store.allocate(exp()); // the first list
  for (const [label, inFlight] of [
    [`${IN_FLIGHT} in flight`, IN_FLIGHT],
    ['one at a time', 1],
  ] as const) {
    const allocs: number[] = [];
    const sets: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      allocs.push(await rate(() => store.allocate(exp()), inFlight, ROUND_MS));
      sets.push(await rate(set, inFlight, ROUND_MS));
    }
    const a = median(allocs);
    const s = median(sets);
    console.log(
      `allocation, ${label}: ${fmt(a)} allocations/s vs ${fmt(s)} plain SETs/s: ratio ${fmt(a / s, 2)}` +
        (inFlight === 1 ? ` (${fmt(1e6 / a)} µs vs ${fmt(1e6 / s)} µs each)` : ''),
    );
  }
  const memory = new MemoryStatusListStore();
  await memory.allocate(exp());
  console.log(`allocation, in-process store: ${fmt(median(await Promise.all([0, 1, 2].map(() => rate(() => memory.allocate(exp()), 1, 300)))))} allocations/s`);
}

interface Rendered {
  label: string;
  list: string;
  store: RedisStatusListStore;
}

async function rendering(client: RedisClient, prefix: string, key: SigningKey): Promise<Rendered[]> {
  const out: Rendered[] = [];
  for (const [label, share] of [
    ['all VALID', 0],
    ['1% INVALID', 0.01],
    ['10% INVALID', 0.1],
  ] as const) {
    const store = new RedisStatusListStore(client, { keyPrefix: `${prefix}${label.replace(/\W/g, '')}:`, size: LIST_SIZE, bits: 2 });
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const { list } = await store.allocate(exp);
    const revoked = new Set<number>();
    while (revoked.size < LIST_SIZE * share) revoked.add(randomInt(LIST_SIZE));
    const slots: StatusSlot[] = [...revoked].map((idx) => ({ list, idx, exp }));
    for (let i = 0; i < slots.length; i += 20_000) await store.setStatuses(slots.slice(i, i + 20_000), TokenStatus.INVALID);

    const cold: number[] = [];
    let token = '';
    for (let r = 0; r < ROUNDS; r++) {
      const renderer = new StatusListRenderer({ store, signer: key, issuer: 'https://veil.example.com', ttlSeconds: 60, expSeconds: 600 });
      const t0 = performance.now();
      token = (await renderer.get(list))!.token;
      cold.push(performance.now() - t0);
    }
    // Its parts: the read, compression on the event loop and off it.
    const reads: number[] = [];
    const syncs: number[] = [];
    const asyncs: number[] = [];
    let bytes: Buffer = Buffer.alloc(0);
    for (let r = 0; r < ROUNDS; r++) {
      let t0 = performance.now();
      bytes = (await store.read(list))!.bytes;
      reads.push(performance.now() - t0);
      t0 = performance.now();
      compressList(bytes);
      syncs.push(performance.now() - t0);
      t0 = performance.now();
      await compressListAsync(bytes);
      asyncs.push(performance.now() - t0);
    }
    const lst = (decodeJwt(token).status_list as { lst: string }).lst;
    console.log(
      `render 1,000,000 entries (2 bits, ${fmt(bytes.length)} bytes), ${label}: ${fmt(median(cold), 1)} ms cold (read ${fmt(median(reads), 1)} ms, deflate level 9 ${fmt(median(syncs), 1)} ms sync / ${fmt(median(asyncs), 1)} ms in the thread pool); ` +
        `lst ${fmt(Buffer.from(lst, 'base64url').length)} bytes compressed, token ${fmt(token.length)} bytes`,
    );
    out.push({ label, list, store });
  }
  return out;
}

async function serving(rendered: Rendered, key: SigningKey): Promise<void> {
  const renderer = new StatusListRenderer({ store: rendered.store, signer: key, issuer: 'https://veil.example.com', ttlSeconds: 3600, expSeconds: 7200 });
  await renderer.get(rendered.list);
  const calls = median(await Promise.all([0, 1, 2].map(() => rate(() => renderer.get(rendered.list), 1, 300))));
  console.log(`render cache, renderer.get() alone: ${fmt(calls)} calls/s`);

  const app = new Koa();
  app.use(statusListRoute(renderer));
  const handle = app.callback();
  const server = http.createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/status-lists/${rendered.list}`;
  const result = await autocannon({ url, connections: 10, duration: HTTP_SECONDS, headers: { accept: 'application/statuslist+jwt' } });
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (result.non2xx || result.errors) throw new Error(`the HTTP run had ${result.non2xx} non-2xx answers and ${result.errors} errors`);
  console.log(
    `render cache over HTTP (${rendered.label}, ${fmt(result.requests.total)} requests, 10 connections, load generator in the same process): ${fmt(result['2xx'] / result.duration)} requests/s, ` +
      `p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms; renders during the run: ${renderer.renders}`,
  );
}

async function main(): Promise<void> {
  console.log(`# status list bench: Node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${REDIS_URL}`);
  const client = await connectRedis(REDIS_URL);
  const prefix = `veilbench:status-list:${randomBytes(4).toString('hex')}:`;
  try {
    await allocation(client, prefix);
    const key = signer();
    const rendered = await rendering(client, prefix, key);
    await serving(rendered[2]!, key);
  } finally {
    await removeKeys(client, prefix);
    await closeRedis(client);
  }
}

await main();
