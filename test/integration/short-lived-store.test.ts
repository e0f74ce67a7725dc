/**
 * One behavioural suite for ShortLivedStore, run against both implementations:
 * RedisStore on the real local Redis (under a per-run key prefix) and the in-process MemoryStore.
 */
import assert from 'node:assert/strict';
import { createCipheriv, createHmac, hkdfSync, randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { AdapterPayload } from 'oidc-provider';
import { Envelope, type MasterKey } from '../../src/crypto/master-key.js';
import { envelopeAtRest, type AtRest } from '../../src/store/at-rest.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { StoreUnavailableError } from '../../src/store/errors.js';
import { closeRedis, connectRedis } from '../../src/store/redis-connection.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { GRANT_LIST_MAX, GrantRevokedError, type SealedModel, type ShortLivedStore } from '../../src/store/short-lived-store.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';

/** A RedisStore on a connection of its own, closed with the store (Veil shares one connection and closes it last). */
async function connectStore(options: { url: string; keyPrefix: string; atRest?: AtRest }): Promise<RedisStore> {
  const client = await connectRedis(options.url);
  const store = new RedisStore(client, options);
  store.close = () => closeRedis(client);
  return store;
}

/** An access token as Veil issues it: the record by jti, then the index by the sealed value's hash. */
async function issue(store: ShortLivedStore, model: SealedModel, jti: string, payload: AdapterPayload, ttl: number, hash: string): Promise<void> {
  await store.upsert(model, jti, payload, ttl);
  await store.indexIssued(model, jti, hash, ttl);
}

const nowSeconds = () => Math.floor(Date.now() / 1000);
const uniqueId = (label: string) => `${label}-${randomUUID()}`;

/** A payload shaped like the ones oidc-provider writes for codes and refresh tokens. */
function tokenPayload(kind: string, extra: Partial<AdapterPayload> = {}): AdapterPayload {
  const iat = nowSeconds();
  return {
    kind,
    jti: uniqueId('jti'),
    iat,
    exp: iat + 600,
    accountId: randomUUID(),
    clientId: 'notes-app',
    scope: 'openid email profile offline_access',
    claims: { userinfo: { email: null, name: { essential: true } }, id_token: { auth_time: { essential: true } } },
    resource: ['https://api.example.com', 'https://files.example.com'],
    redirectUri: 'https://rp.example.com/cb?x=1&y=é',
    sessionUid: uniqueId('session'),
    expiresWithSession: true,
    ...extra,
  };
}

interface Backend {
  store: ShortLivedStore;
  /** How many entries the store lists for a grant (what revoking it has to walk). */
  listed(grantId: string): Promise<number>;
}

function shortLivedStoreSuite(name: string, setup: () => Promise<Backend>, teardown: () => Promise<void>) {
  describe(`ShortLivedStore semantics: ${name}`, () => {
    let backend: Backend;
    let store: ShortLivedStore;

    before(async () => {
      backend = await setup();
      store = backend.store;
    });
    after(teardown);

    test('upsert then find returns the same payload', async () => {
      const id = uniqueId('code');
      const payload = tokenPayload('AuthorizationCode');
      await store.upsert('AuthorizationCode', id, payload, 60);
      assert.deepEqual(await store.find('AuthorizationCode', id), payload);
    });

    test('upsert again replaces the payload', async () => {
      const id = uniqueId('session');
      await store.upsert('Session', id, { kind: 'Session', accountId: 'a' }, 60);
      await store.upsert('Session', id, { kind: 'Session', accountId: 'b' }, 60);
      assert.equal((await store.find('Session', id))?.accountId, 'b');
    });

    test('find of an unknown id, or of a known id under another model, is undefined', async () => {
      const id = uniqueId('code');
      await store.upsert('AuthorizationCode', id, tokenPayload('AuthorizationCode'), 60);
      assert.equal(await store.find('AuthorizationCode', uniqueId('missing')), undefined);
      assert.equal(await store.find('RefreshToken', id), undefined);
    });

    test('entries, and their uid and userCode indexes, expire after their TTL', async () => {
      const short = uniqueId('short');
      const long = uniqueId('long');
      const uid = uniqueId('uid');
      const userCode = uniqueId('UC');
      await store.upsert('DeviceCode', short, { kind: 'DeviceCode', uid, userCode }, 1);
      await store.upsert('DeviceCode', long, { kind: 'DeviceCode' }, 60);
      assert.ok(await store.find('DeviceCode', short), 'present before the TTL runs out');
      assert.ok(await store.findByUid('DeviceCode', uid));
      assert.ok(await store.findByUserCode('DeviceCode', userCode));

      await sleep(1500);

      assert.equal(await store.find('DeviceCode', short), undefined);
      assert.equal(await store.findByUid('DeviceCode', uid), undefined);
      assert.equal(await store.findByUserCode('DeviceCode', userCode), undefined);
      assert.equal(await store.consume('DeviceCode', short), false, 'an expired entry cannot be consumed');
      assert.ok(await store.find('DeviceCode', long), 'an entry with a longer TTL is still there');
    });

    test('findByUid finds the entry by its uid, only under its own model', async () => {
      const id = uniqueId('session');
      const uid = uniqueId('uid');
      const payload: AdapterPayload = { kind: 'Session', uid, accountId: randomUUID(), loginTs: nowSeconds() };
      await store.upsert('Session', id, payload, 60);
      assert.deepEqual(await store.findByUid('Session', uid), payload);
      assert.equal(await store.findByUid('Session', uniqueId('other-uid')), undefined);
      assert.equal(await store.findByUid('Interaction', uid), undefined);
    });

    test('findByUserCode finds the entry by its user code, only under its own model', async () => {
      const id = uniqueId('device');
      const userCode = uniqueId('WDJB-MJHT');
      const payload: AdapterPayload = { kind: 'DeviceCode', userCode, clientId: 'tv-app', scope: 'openid' };
      await store.upsert('DeviceCode', id, payload, 60);
      assert.deepEqual(await store.findByUserCode('DeviceCode', userCode), payload);
      assert.equal(await store.findByUserCode('DeviceCode', uniqueId('nope')), undefined);
      assert.equal(await store.findByUserCode('Session', userCode), undefined);
    });

    test('destroy removes the entry; destroying a missing id is harmless', async () => {
      const id = uniqueId('interaction');
      await store.upsert('Interaction', id, { kind: 'Interaction', returnTo: '/auth' }, 60);
      await store.destroy('Interaction', id);
      assert.equal(await store.find('Interaction', id), undefined);
      await store.destroy('Interaction', uniqueId('never-existed'));
    });

    test("revokeByGrantId removes every token of that grant and nothing of another grant's", async () => {
      const grant = uniqueId('grant');
      const otherGrant = uniqueId('grant');
      const mine = [
        ['AccessToken', uniqueId('at')],
        ['RefreshToken', uniqueId('rt')],
        ['AuthorizationCode', uniqueId('code')],
      ] as const;
      const theirs = [
        ['AccessToken', uniqueId('at')],
        ['RefreshToken', uniqueId('rt')],
        ['AuthorizationCode', uniqueId('code')],
      ] as const;
      for (const [model, id] of mine) await store.upsert(model, id, tokenPayload(model, { grantId: grant }), 60);
      for (const [model, id] of theirs) await store.upsert(model, id, tokenPayload(model, { grantId: otherGrant }), 60);
      // A session carries no grant and survives any grant's revocation.
      const sessionId = uniqueId('session');
      await store.upsert('Session', sessionId, { kind: 'Session', accountId: 'x' }, 60);

      await store.revokeByGrantId(grant, 60);

      for (const [model, id] of mine) assert.equal(await store.find(model, id), undefined, `${model} of the revoked grant is gone`);
      for (const [model, id] of theirs) assert.ok(await store.find(model, id), `${model} of the other grant survives`);
      assert.ok(await store.find('Session', sessionId));

      // Revoking twice, or revoking an unknown grant, is harmless.
      await store.revokeByGrantId(grant, 60);
      await store.revokeByGrantId(uniqueId('unknown-grant'), 60);
      for (const [model, id] of theirs) assert.ok(await store.find(model, id));
    });

    test('once its grant is revoked, no token can be written for it (a racing refresh loses)', async () => {
      const grant = uniqueId('grant');
      await store.upsert('AccessToken', uniqueId('at'), tokenPayload('AccessToken', { grantId: grant }), 60);
      await store.revokeByGrantId(grant, 60);
      for (const model of ['AccessToken', 'RefreshToken', 'AuthorizationCode']) {
        const later = uniqueId(model);
        await assert.rejects(store.upsert(model, later, tokenPayload(model, { grantId: grant }), 60), GrantRevokedError);
        assert.equal(await store.find(model, later), undefined);
      }
      // Entries of other grants are unaffected.
      const other = uniqueId('at');
      await store.upsert('AccessToken', other, tokenPayload('AccessToken', { grantId: uniqueId('grant') }), 60);
      assert.ok(await store.find('AccessToken', other));
    });

    test('revoking a grant blacklists the jti of each of its access tokens until it would expire', async () => {
      const grant = uniqueId('grant');
      const jti = uniqueId('at');
      await issue(store, 'AccessToken', jti, tokenPayload('AccessToken', { grantId: grant }), 60, uniqueId('hash'));
      assert.equal((await store.findIssuedByJti(jti))?.revoked, false);
      await store.revokeByGrantId(grant, 60);
      assert.equal(await store.findIssuedByJti(jti), undefined, 'the record is gone');
      // A second write of the same jti (impossible in practice) would still be reported revoked.
      await store.upsert('AccessToken', jti, tokenPayload('AccessToken'), 60);
      assert.equal((await store.findIssuedByJti(jti))?.revoked, true);
    });

    test('a grant refreshed 200 times keeps a bounded list, and revoking it still stops every live token', async () => {
      const grant = uniqueId('grant');
      const issued: Array<{ at: string; hash: string; rt: string }> = [];
      for (let i = 0; i < 200; i++) {
        // One refresh: a new access token (indexed by the hash of its sealed value) and a new
        // refresh token; the previous refresh token is consumed.
        const next = { at: uniqueId('at'), hash: uniqueId('hash'), rt: uniqueId('rt') };
        await issue(store, 'AccessToken', next.at, tokenPayload('AccessToken', { grantId: grant, jti: next.at }), 60, next.hash);
        await store.upsert('RefreshToken', next.rt, tokenPayload('RefreshToken', { grantId: grant, jti: next.rt }), 120);
        if (issued.length) assert.equal(await store.consume('RefreshToken', issued.at(-1)!.rt), true);
        issued.push(next);
      }
      const listed = await backend.listed(grant);
      assert.ok(listed < 2 * GRANT_LIST_MAX, `${listed} entries listed for the grant (bound ${GRANT_LIST_MAX})`);
      const latest = issued.at(-1)!;
      assert.ok(await store.find('RefreshToken', latest.rt));

      await store.revokeByGrantId(grant, 300);
      assert.equal(await store.find('RefreshToken', latest.rt), undefined, 'the latest refresh token is gone');
      assert.equal(await store.find('AccessToken', latest.at), undefined, 'the latest access token is gone');
      // Every access token of the grant, listed or not, now reads as revoked (or is gone).
      for (const { at, hash } of [issued[0]!, issued[100]!, latest]) {
        for (const found of [await store.findIssuedByJti(at), await store.findIssuedByHash(hash)]) {
          assert.ok(!found || found.revoked, `access token ${at} still reads as live`);
        }
      }
      assert.equal(await backend.listed(grant), 0);
    });

    test('keeping the list short never drops a live refresh token: every session of a grant keeps working', async () => {
      const grant = uniqueId('grant');
      // 150 sessions (devices) of one user with one client share the grant, each refreshing once.
      const sessions: string[] = [];
      for (let i = 0; i < 150; i++) {
        const rt = uniqueId('rt');
        await store.upsert('RefreshToken', rt, tokenPayload('RefreshToken', { grantId: grant, jti: rt }), 120);
        sessions.push(rt);
      }
      for (let i = 0; i < sessions.length; i++) {
        const at = uniqueId('at');
        await issue(store, 'AccessToken', at, tokenPayload('AccessToken', { grantId: grant, jti: at }), 60, uniqueId('hash'));
        const next = uniqueId('rt');
        await store.upsert('RefreshToken', next, tokenPayload('RefreshToken', { grantId: grant, jti: next }), 120);
        assert.equal(await store.consume('RefreshToken', sessions[i]!), true);
        sessions[i] = next;
      }
      for (const rt of sessions) assert.ok(await store.find('RefreshToken', rt), 'a live refresh token was dropped');
      assert.ok((await backend.listed(grant)) < sessions.length + 3 * GRANT_LIST_MAX);
      // And each is still listed: revoking the grant ends every one of them.
      await store.revokeByGrantId(grant, 300);
      for (const rt of sessions) assert.equal(await store.find('RefreshToken', rt), undefined, 'a refresh token outlived its grant');
    });

    test('the issued-token index finds a sealed token by the hash of its value', async () => {
      const jti = uniqueId('at');
      const hash = uniqueId('hash');
      // As oidc-provider writes it: the record's id is the token's jti.
      await issue(store, 'ClientCredentials', jti, tokenPayload('ClientCredentials', { jti }), 60, hash);
      const found = await store.findIssuedByHash(hash);
      assert.equal(found?.model, 'ClientCredentials');
      assert.equal(found?.jti, jti);
      assert.equal(await store.findIssuedByHash(uniqueId('other')), undefined);
      await store.blacklist(jti, 60);
      assert.equal((await store.findIssuedByHash(hash))?.revoked, true);
    });

    test('rotateRefreshToken: consumes the presented token, stores its successor and indexes the access token, in one step', async () => {
      const grant = uniqueId('grant');
      const presented = uniqueId('rt');
      await store.upsert('RefreshToken', presented, tokenPayload('RefreshToken', { grantId: grant, jti: presented }), 120);
      const at = uniqueId('at');
      const hash = uniqueId('hash');
      await store.upsert('AccessToken', at, tokenPayload('AccessToken', { grantId: grant, jti: at }), 60);
      const successor = { id: uniqueId('rt'), payload: tokenPayload('RefreshToken', { grantId: grant, rotations: 1 }), expiresIn: 120 };
      const outcome = await store.rotateRefreshToken({ consumed: presented, successor, accessToken: { model: 'AccessToken', jti: at, tokenHash: hash, expiresIn: 60 } });
      assert.equal(outcome, 'rotated');
      assert.ok((await store.find('RefreshToken', presented))?.consumed, 'the presented token is consumed');
      assert.equal((await store.find('RefreshToken', successor.id))?.rotations, 1, 'the successor is stored');
      assert.equal((await store.findIssuedByHash(hash))?.jti, at, 'the access token is indexed');
      // The successor is on the grant's list: revoking the grant ends it.
      await store.revokeByGrantId(grant, 300);
      assert.equal(await store.find('RefreshToken', successor.id), undefined);
    });

    test('rotateRefreshToken: a consumed, unknown or revoked-grant token writes nothing', async () => {
      const grant = uniqueId('grant');
      const presented = uniqueId('rt');
      await store.upsert('RefreshToken', presented, tokenPayload('RefreshToken', { grantId: grant, jti: presented }), 120);
      assert.equal(await store.consume('RefreshToken', presented), true);
      const attempt = () => {
        const successor = { id: uniqueId('rt'), payload: tokenPayload('RefreshToken', { grantId: grant }), expiresIn: 120 };
        const hash = uniqueId('hash');
        return { successor, hash, rotation: { consumed: presented, successor, accessToken: { model: 'AccessToken' as const, jti: uniqueId('at'), tokenHash: hash, expiresIn: 60 } } };
      };
      const reused = attempt();
      assert.equal(await store.rotateRefreshToken(reused.rotation), 'reused');
      assert.equal(await store.find('RefreshToken', reused.successor.id), undefined);
      assert.equal(await store.findIssuedByHash(reused.hash), undefined);

      const unknown = attempt();
      assert.equal(await store.rotateRefreshToken({ ...unknown.rotation, consumed: uniqueId('rt') }), 'reused');
      assert.equal(await store.find('RefreshToken', unknown.successor.id), undefined);

      const live = uniqueId('rt');
      await store.upsert('RefreshToken', live, tokenPayload('RefreshToken', { grantId: grant, jti: live }), 120);
      await store.revokeByGrantId(grant, 300);
      const revoked = attempt();
      assert.equal(await store.rotateRefreshToken({ ...revoked.rotation, consumed: live }), 'grant-revoked');
      assert.equal(await store.find('RefreshToken', revoked.successor.id), undefined);
      assert.equal(await store.findIssuedByHash(revoked.hash), undefined);
    });

    test('rotateRefreshToken: 20 concurrent rotations of one token have exactly one winner and one successor', async () => {
      const grant = uniqueId('grant');
      const presented = uniqueId('rt');
      await store.upsert('RefreshToken', presented, tokenPayload('RefreshToken', { grantId: grant, jti: presented }), 120);
      const successors = Array.from({ length: 20 }, () => ({ id: uniqueId('rt'), payload: tokenPayload('RefreshToken', { grantId: grant }), expiresIn: 120 }));
      const outcomes = await Promise.all(successors.map((successor) => store.rotateRefreshToken({ consumed: presented, successor })));
      assert.equal(outcomes.filter((o) => o === 'rotated').length, 1, `outcomes: ${outcomes.join(', ')}`);
      const stored = await Promise.all(successors.map((s) => store.find('RefreshToken', s.id)));
      assert.equal(stored.filter(Boolean).length, 1, 'exactly one successor exists');
      assert.ok(stored[outcomes.indexOf('rotated')], "the winner's successor is the one stored");
    });

    test('claimOnce: the first claim wins, a replay loses', async () => {
      const key = uniqueId('assertion');
      assert.equal(await store.claimOnce(key, 60), true);
      assert.equal(await store.claimOnce(key, 60), false);
    });

    test('consume: the first call wins, the second loses, and find then shows `consumed`', async () => {
      const id = uniqueId('code');
      const payload = tokenPayload('AuthorizationCode');
      await store.upsert('AuthorizationCode', id, payload, 60);
      const before = nowSeconds();

      assert.equal(await store.consume('AuthorizationCode', id), true);
      assert.equal(await store.consume('AuthorizationCode', id), false);

      const found = await store.find('AuthorizationCode', id);
      assert.ok(found, 'a consumed entry is still findable (for replay detection)');
      assert.equal(typeof found.consumed, 'number');
      assert.ok((found.consumed as number) >= before - 1 && (found.consumed as number) <= nowSeconds() + 1, 'consumed is a timestamp in seconds');
      const { consumed: _consumed, ...rest } = found;
      assert.deepEqual(rest, payload, 'consume changes nothing but `consumed`');
    });

    // Redis's Lua cjson would turn [] into {} and round long numbers if the script re-encoded.
    test('consume keeps any value in the payload exactly (empty arrays, full-precision numbers)', async () => {
      const id = uniqueId('rt');
      const payload = tokenPayload('RefreshToken', { amr: [], rar: [], 'x5t#S256': '', rotations: 0, ratio: 0.1234567890123456 });
      await store.upsert('RefreshToken', id, payload, 60);
      assert.equal(await store.consume('RefreshToken', id), true);
      const { consumed: _consumed, ...rest } = (await store.find('RefreshToken', id))!;
      assert.deepEqual(rest, payload);
    });

    test('consume keeps the remaining TTL', async () => {
      const id = uniqueId('code');
      await store.upsert('AuthorizationCode', id, tokenPayload('AuthorizationCode'), 1);
      assert.equal(await store.consume('AuthorizationCode', id), true);
      await sleep(1500);
      assert.equal(await store.find('AuthorizationCode', id), undefined, 'a consumed entry still expires');
    });

    test('50 concurrent consume() calls on one id have exactly one winner', async () => {
      const id = uniqueId('code');
      await store.upsert('AuthorizationCode', id, tokenPayload('AuthorizationCode'), 60);
      const results = await Promise.all(Array.from({ length: 50 }, () => store.consume('AuthorizationCode', id)));
      assert.equal(results.filter(Boolean).length, 1);
      assert.ok((await store.find('AuthorizationCode', id))?.consumed);
    });

    test('consume on a missing or destroyed id returns false', async () => {
      assert.equal(await store.consume('AuthorizationCode', uniqueId('missing')), false);
      const id = uniqueId('code');
      await store.upsert('AuthorizationCode', id, tokenPayload('AuthorizationCode'), 60);
      await store.destroy('AuthorizationCode', id);
      assert.equal(await store.consume('AuthorizationCode', id), false);
      assert.equal(await store.find('AuthorizationCode', id), undefined, 'consume does not resurrect a missing entry');
    });

    test('ping answers', async () => {
      await store.ping();
    });
  });
}

// ---------------------------------------------------------------------------------------------

let stores: TestStores;
let redisStore: RedisStore;

shortLivedStoreSuite(
  'RedisStore (real Redis)',
  async () => {
    stores = await createTestStores();
    redisStore = await connectStore({ url: stores.redisUrl, keyPrefix: stores.keyPrefix });
    return { store: redisStore, listed: (grantId) => stores.redis.llen(`${stores.keyPrefix}grant:${grantId}`) };
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
    return { store: protectedStore, listed: (grantId) => protectedStores.redis.llen(`${protectedStores.keyPrefix}grant:${grantId}`) };
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
      for (const key of batch) parts.push(key, (await stores.redis.type(key)) === 'list' ? (await stores.redis.lrange(key, 0, -1)).join(' ') : ((await stores.redis.get(key)) ?? ''));
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
    const peers = await Promise.all(
      Array.from({ length: 5 }, () => connectStore({ url: stores.redisUrl, keyPrefix: stores.keyPrefix })),
    );
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
    assert.equal(keys.length, 8, `keys found: ${keys.join(', ')}`);
    for (const key of keys) {
      assert.ok(key.startsWith(stores.keyPrefix), `${key} starts with ${stores.keyPrefix}`);
      const ttl = await stores.redis.pttl(key);
      assert.ok(ttl > 0, `${key} has a TTL (got ${ttl})`);
    }
    // The grant list lives as long as its longest-lived token.
    const grantTtl = await stores.redis.pttl(`${stores.keyPrefix}grant:${grantId}`);
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
