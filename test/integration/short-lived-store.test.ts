/**
 * The behavioural suite for ShortLivedStore (test/helpers/short-lived-store-suite.ts), run against
 * both implementations: RedisStore on the real local Redis (under a per-run key prefix) and the
 * in-process MemoryStore; then what is particular to RedisStore (at rest, key layout, old layout).
 */
import assert from 'node:assert/strict';
import { createCipheriv, createHmac, hkdfSync, randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Envelope, type MasterKey } from '../../src/crypto/master-key.js';
import { envelopeAtRest, type AtRest } from '../../src/store/at-rest.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { StoreUnavailableError } from '../../src/store/errors.js';
import { closeRedis, connectRedis } from '../../src/store/redis-connection.js';
import { RedisStore } from '../../src/store/redis-store.js';
import type { RedisConfig } from '../../src/config.js';
import { issue, shortLivedStoreSuite, tokenPayload, uniqueId } from '../helpers/short-lived-store-suite.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';

/** A RedisStore on a connection of its own, closed with the store (Veil shares one connection and closes it last). */
export async function connectStore(options: { url?: string; redis?: RedisConfig; keyPrefix: string; atRest?: AtRest }): Promise<RedisStore> {
  const client = await connectRedis(options.redis ?? options.url!);
  const store = new RedisStore(client, options);
  store.close = () => closeRedis(client);
  return store;
}

// ---------------------------------------------------------------------------------------------

let stores: TestStores;
let redisStore: RedisStore;

shortLivedStoreSuite(
  'RedisStore (real Redis)',
  async () => {
    stores = await createTestStores();
    redisStore = await connectStore({ url: stores.redisUrl, keyPrefix: stores.keyPrefix });
    return { store: redisStore, listed: (grantId) => stores.redis.llen(redisStore.grantListKey(grantId)) };
  },
  async () => {
    await redisStore?.close();
    await stores?.cleanup();
  },
);

let protectedStores: TestStores;
let protectedStore: RedisStore;
const masterKey = (): MasterKey => {
  const secret = randomBytes(32);
  return { id: secret.toString('base64url').slice(0, 8), secret };
};

shortLivedStoreSuite(
  'RedisStore with keyed hashes and encrypted payloads',
  async () => {
    protectedStores = await createTestStores();
    protectedStore = await connectStore({
      url: protectedStores.redisUrl,
      keyPrefix: protectedStores.keyPrefix,
      atRest: envelopeAtRest(new Envelope([masterKey()])),
    });
    return { store: protectedStore, listed: (grantId) => protectedStores.redis.llen(protectedStore.grantListKey(grantId)) };
  },
  async () => {
    await protectedStore?.close();
    await protectedStores?.cleanup();
  },
);

describe('RedisStore at rest', () => {
  let stores: TestStores;
  before(async () => {
    stores = await createTestStores();
  });
  after(async () => {
    await stores?.cleanup();
  });

  async function dump(): Promise<string> {
    const parts: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await stores.redis.scan(cursor, 'MATCH', `${stores.keyPrefix}*`, 'COUNT', 1000);
      for (const key of batch)
        parts.push(key, (await stores.redis.type(key)) === 'list' ? (await stores.redis.lrange(key, 0, -1)).join(' ') : ((await stores.redis.get(key)) ?? ''));
      cursor = next;
    } while (cursor !== '0');
    return parts.join('\n');
  }

  test('a dump holds no id, token value or personal data in the clear', async () => {
    const store = await connectStore({ url: stores.redisUrl, keyPrefix: stores.keyPrefix, atRest: envelopeAtRest(new Envelope([masterKey()])) });
    try {
      const secretId = `rt-${randomUUID()}`;
      const sessionId = `sess-${randomUUID()}`;
      const uid = `uid-${randomUUID()}`;
      await store.upsert('RefreshToken', secretId, tokenPayload('RefreshToken', { grantId: 'g1', jti: secretId }), 60);
      await store.consume('RefreshToken', secretId);
      await store.upsert('Session', sessionId, { kind: 'Session', jti: sessionId, uid, accountId: 'person@example.com' }, 60);
      await issue(store, 'AccessToken', 'jti-1', tokenPayload('AccessToken', { jti: 'jti-1' }), 60, 'hash-of-a-sealed-token');
      await store.blacklist('jti-1', 60);
      const text = await dump();
      for (const secret of [secretId, sessionId, uid, 'person@example.com', 'hash-of-a-sealed-token']) assert.ok(!text.includes(secret), `${secret} appears in the dump`);
      // ...and everything still works through the store.
      assert.equal((await store.find('RefreshToken', secretId))?.jti, secretId);
      assert.equal(typeof (await store.find('RefreshToken', secretId))?.consumed, 'number');
      assert.equal((await store.findByUid('Session', uid))?.jti, sessionId);
      assert.equal((await store.findIssuedByHash('hash-of-a-sealed-token'))?.revoked, true);
    } finally {
      await store.close();
    }
  });

  test('entries written before ids got their own hashing key (old names, v1 payloads) are still found, consumed and revoked', async () => {
    const master = masterKey();
    const envelope = new Envelope([master]);
    // What envelopeAtRest did before: ids hashed under the payload-encryption key, v1 sealing.
    const encryptionKey = Buffer.from(hkdfSync('sha256', master.secret, Buffer.alloc(0), 'veil short-lived-store', 32));
    const legacy: AtRest = {
      ids: (id) => [createHmac('sha256', encryptionKey).update(id).digest('base64url')],
      seal: (json, context) => {
        const iv = randomBytes(12);
        const cipher = createCipheriv('aes-256-gcm', encryptionKey, iv);
        cipher.setAAD(Buffer.from(`${master.id}|${context}`));
        const ct = Buffer.concat([cipher.update(json, 'utf8'), cipher.final()]);
        return ['v1', master.id, iv.toString('base64url'), ct.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
      },
      open: () => {
        throw new Error('not used');
      },
    };
    const before = await connectStore({ url: stores.redisUrl, keyPrefix: stores.keyPrefix, atRest: legacy });
    const after = await connectStore({ url: stores.redisUrl, keyPrefix: stores.keyPrefix, atRest: envelopeAtRest(envelope) });
    try {
      const grant = uniqueId('grant');
      const rt = uniqueId('rt');
      const at = uniqueId('at');
      const hash = uniqueId('hash');
      const session = uniqueId('sess');
      const uid = uniqueId('uid');
      await before.upsert('RefreshToken', rt, tokenPayload('RefreshToken', { grantId: grant, jti: rt }), 60);
      await issue(before, 'AccessToken', at, tokenPayload('AccessToken', { grantId: grant, jti: at }), 60, hash);
      await before.upsert('Session', session, { kind: 'Session', jti: session, uid }, 60);
      assert.equal(await before.claimOnce('assertion-jti', 60), true);

      assert.equal((await after.find('RefreshToken', rt))?.jti, rt);
      assert.equal((await after.findByUid('Session', uid))?.jti, session);
      assert.equal((await after.findIssuedByHash(hash))?.jti, at);
      assert.equal((await after.findIssuedByJti(at))?.revoked, false);
      assert.equal(await after.claimOnce('assertion-jti', 60), false, 'a replay claimed under the old name is still refused');
      assert.equal(await after.consume('RefreshToken', rt), true);
      assert.equal(await after.consume('RefreshToken', rt), false);
      await after.revokeByGrantId(grant, 60);
      assert.equal(await after.find('RefreshToken', rt), undefined);
      const gone = await after.findIssuedByHash(hash);
      assert.ok(!gone || gone.revoked);
    } finally {
      await before.close();
      await after.close();
    }
  });

  test('entries of the key layout before hash tags (a deployment upgrading mid-flight) are still found, rotated, consumed and revoked', async () => {
    // Written as the store wrote them before grants got their hash slot: records at
    // <p><Model>:H(id), listed on <p>grant:<grantId>, the index holding "<Model>:H(jti)".
    const p = stores.keyPrefix;
    const grant = uniqueId('grant');
    const [rt, at, hash, code, session, uid] = ['rt', 'at', 'hash', 'code', 'sess', 'uid'].map(uniqueId) as [string, string, string, string, string, string];
    const old = stores.redis.multi();
    old.set(`${p}RefreshToken:${rt}`, JSON.stringify(tokenPayload('RefreshToken', { grantId: grant, jti: rt })), 'EX', 60);
    old.set(`${p}AccessToken:${at}`, JSON.stringify(tokenPayload('AccessToken', { grantId: grant, jti: at })), 'EX', 60);
    old.rpush(`${p}grant:${grant}`, `${p}RefreshToken:${rt}`, `${p}AccessToken:${at}`).expire(`${p}grant:${grant}`, 60);
    old.set(`${p}issued:${hash}`, `AccessToken:${at}`, 'EX', 60);
    old.set(`${p}AuthorizationCode:${code}`, JSON.stringify(tokenPayload('AuthorizationCode')), 'EX', 60);
    old.set(`${p}Session:${session}`, JSON.stringify({ kind: 'Session', jti: session, uid }), 'EX', 60);
    old.set(`${p}Session:uid:${uid}`, session, 'EX', 60);
    old.set(`${p}once:assertion-${grant}`, '1', 'EX', 60);
    await old.exec();
    const store = await connectStore({ url: stores.redisUrl, keyPrefix: p });
    try {
      assert.equal((await store.find('RefreshToken', rt))?.jti, rt);
      assert.equal((await store.findByUid('Session', uid))?.jti, session);
      assert.equal((await store.findIssuedByHash(hash))?.jti, at);
      assert.equal((await store.findIssuedByJti(at))?.revoked, false);
      assert.equal(await store.claimOnce(`assertion-${grant}`, 60), false, 'a replay claimed under the old layout is still refused');
      assert.equal(await store.consume('AuthorizationCode', code), true);
      assert.equal(await store.consume('AuthorizationCode', code), false);

      // A refresh token in flight across the upgrade rotates once, into the new layout.
      const successor = { id: uniqueId('rt'), payload: tokenPayload('RefreshToken', { grantId: grant, rotations: 1 }), expiresIn: 120 };
      assert.equal(await store.rotateRefreshToken({ consumed: rt, successor }), 'rotated');
      assert.ok((await store.find('RefreshToken', rt))?.consumed, 'the old-layout token is consumed');
      assert.equal((await store.find('RefreshToken', successor.id))?.rotations, 1);
      assert.equal(await store.rotateRefreshToken({ consumed: rt, successor: { ...successor, id: uniqueId('rt') } }), 'reused');

      // Revoking the grant ends what either layout lists, and marks it revoked in both.
      await store.revokeByGrantId(grant, 60);
      assert.equal(await store.find('RefreshToken', successor.id), undefined);
      assert.equal(await store.find('AccessToken', at), undefined);
      const gone = await store.findIssuedByHash(hash);
      assert.ok(!gone || gone.revoked);
      assert.equal(await stores.redis.exists(`${p}revoked-grant:${grant}`), 1, 'processes still on the old layout refuse writes for the grant too');
    } finally {
      await store.close();
    }
  });

  test('after a master key rotation ("new,old"), entries written under the old key are still found and consumed', async () => {
    const old = masterKey();
    const before = await connectStore({ url: stores.redisUrl, keyPrefix: stores.keyPrefix, atRest: envelopeAtRest(new Envelope([old])) });
    const after = await connectStore({ url: stores.redisUrl, keyPrefix: stores.keyPrefix, atRest: envelopeAtRest(new Envelope([masterKey(), old])) });
    try {
      const id = uniqueId('code');
      await before.upsert('AuthorizationCode', id, tokenPayload('AuthorizationCode'), 60);
      assert.ok(await after.find('AuthorizationCode', id));
      assert.equal(await after.consume('AuthorizationCode', id), true);
      assert.equal(await after.consume('AuthorizationCode', id), false);
      const fresh = uniqueId('code');
      await after.upsert('AuthorizationCode', fresh, tokenPayload('AuthorizationCode'), 60);
      assert.equal(await before.find('AuthorizationCode', fresh), undefined, 'the old key alone cannot read new entries');
    } finally {
      await before.close();
      await after.close();
    }
  });
});

let memoryStore: MemoryStore;
shortLivedStoreSuite(
  'MemoryStore',
  async () => {
    memoryStore = new MemoryStore();
    return { store: memoryStore, listed: async (grantId) => memoryStore.listedForGrant(grantId) };
  },
  async () => {
    await memoryStore?.close();
  },
);

describe('RedisStore specifics', () => {
  let stores: TestStores;
  let store: RedisStore;

  before(async () => {
    stores = await createTestStores();
    store = await connectStore({ url: stores.redisUrl, keyPrefix: stores.keyPrefix });
  });
  after(async () => {
    await store?.close();
    await stores?.cleanup();
  });

  test('concurrent consume() from 5 separate connections has exactly one winner', async () => {
    const peers = await Promise.all(Array.from({ length: 5 }, () => connectStore({ url: stores.redisUrl, keyPrefix: stores.keyPrefix })));
    try {
      const id = uniqueId('rt');
      await store.upsert('RefreshToken', id, tokenPayload('RefreshToken'), 60);
      const results = await Promise.all(peers.flatMap((peer) => Array.from({ length: 10 }, () => peer.consume('RefreshToken', id))));
      assert.equal(results.length, 50);
      assert.equal(results.filter(Boolean).length, 1);
    } finally {
      await Promise.all(peers.map((p) => p.close()));
    }
  });

  test('every key written starts with the configured prefix and carries a TTL', async () => {
    const marker = randomUUID();
    const grantId = `grant-${marker}`;
    await store.upsert('AccessToken', `at-${marker}`, tokenPayload('AccessToken', { grantId }), 60);
    await store.upsert('RefreshToken', `rt-${marker}`, tokenPayload('RefreshToken', { grantId }), 120);
    await store.upsert('Session', `sess-${marker}`, { kind: 'Session', uid: `uid-${marker}` }, 60);
    await store.upsert('DeviceCode', `dc-${marker}`, { kind: 'DeviceCode', userCode: `uc-${marker}` }, 60);
    await store.consume('RefreshToken', `rt-${marker}`);

    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await stores.redis.scan(cursor, 'MATCH', `*${marker}*`, 'COUNT', 1000);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== '0');

    // entries (4) + consumed marker (1) + grant list (1) + uid index (1) + userCode index (1)
    // + the grant reference of each grant-owned entry (2)
    assert.equal(keys.length, 10, `keys found: ${keys.join(', ')}`);
    for (const key of keys) {
      assert.ok(key.startsWith(stores.keyPrefix), `${key} starts with ${stores.keyPrefix}`);
      const ttl = await stores.redis.pttl(key);
      assert.ok(ttl > 0, `${key} has a TTL (got ${ttl})`);
    }
    // The grant list lives as long as its longest-lived token.
    const grantTtl = await stores.redis.pttl(store.grantListKey(grantId));
    assert.ok(grantTtl > 60_000 && grantTtl <= 120_000, `grant list TTL ${grantTtl}ms`);
  });

  test('two stores with different prefixes do not see each other', async () => {
    const otherPrefix = `${stores.keyPrefix}other:`;
    const other = await connectStore({ url: stores.redisUrl, keyPrefix: otherPrefix });
    try {
      const id = uniqueId('code');
      await store.upsert('AuthorizationCode', id, tokenPayload('AuthorizationCode'), 60);
      assert.equal(await other.find('AuthorizationCode', id), undefined);
      assert.equal(await other.consume('AuthorizationCode', id), false);
      assert.equal(await store.consume('AuthorizationCode', id), true);
    } finally {
      await other.close();
    }
  });

  test('connect to an unreachable server fails with StoreUnavailableError', async () => {
    const started = Date.now();
    await assert.rejects(connectStore({ url: 'redis://127.0.0.1:1', keyPrefix: 'unused:' }), (err: unknown) => {
      assert.ok(err instanceof StoreUnavailableError, `expected StoreUnavailableError, got ${String(err)}`);
      assert.match(err.message, /Redis is unavailable/);
      return true;
    });
    assert.ok(Date.now() - started < 5000, 'fails fast instead of retrying forever');
  });
});
