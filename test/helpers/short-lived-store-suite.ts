/**
 * The behavioural contract of ShortLivedStore, as one suite to run against every implementation
 * and topology: MemoryStore, RedisStore on the local Redis (test/integration/short-lived-store.test.ts),
 * and RedisStore on a real Redis Cluster and Sentinel set (test/integration/redis-topologies.test.ts).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { AdapterPayload } from 'oidc-provider';
import { GRANT_LIST_MAX, GrantRevokedError, type SealedModel, type ShortLivedStore } from '../../src/store/short-lived-store.js';

/** An access token as Veil issues it: the record by jti, then the index by the sealed value's hash. */
export async function issue(store: ShortLivedStore, model: SealedModel, jti: string, payload: AdapterPayload, ttl: number, hash: string): Promise<void> {
  await store.upsert(model, jti, payload, ttl);
  // Without the grant: the store finds the record itself (the edge passes it when it knows it).
  await store.indexIssued({ model, jti, tokenHash: hash, expiresIn: ttl });
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);
export const uniqueId = (label: string) => `${label}-${randomUUID()}`;

/** A payload shaped like the ones oidc-provider writes for codes and refresh tokens. */
export function tokenPayload(kind: string, extra: Partial<AdapterPayload> = {}): AdapterPayload {
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

export interface Backend {
  store: ShortLivedStore;
  /** How many entries the store lists for a grant (what revoking it has to walk). */
  listed(grantId: string): Promise<number>;
}

export function shortLivedStoreSuite(name: string, setup: () => Promise<Backend>, teardown: () => Promise<void>) {
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
        return {
          successor,
          hash,
          rotation: { consumed: presented, successor, accessToken: { model: 'AccessToken' as const, jti: uniqueId('at'), tokenHash: hash, expiresIn: 60 } },
        };
      };
      const reused = attempt();
      assert.equal(await store.rotateRefreshToken(reused.rotation), 'reused');
      assert.equal(await store.find('RefreshToken', reused.successor.id), undefined);
      assert.equal(await store.findIssuedByHash(reused.hash), undefined);

      const unknown = attempt();
      assert.equal(await store.rotateRefreshToken({ ...unknown.rotation, consumed: uniqueId('rt') }), 'gone');
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
      const { consumed: _consumed, ...rest } = found as Record<string, unknown>;
      assert.deepEqual(rest, payload, 'consume changes nothing but `consumed`');
    });

    // Redis's Lua cjson would turn [] into {} and round long numbers if the script re-encoded.
    test('consume keeps any value in the payload exactly (empty arrays, full-precision numbers)', async () => {
      const id = uniqueId('rt');
      const payload = tokenPayload('RefreshToken', { amr: [], rar: [], 'x5t#S256': '', rotations: 0, ratio: 0.1234567890123456 });
      await store.upsert('RefreshToken', id, payload, 60);
      assert.equal(await store.consume('RefreshToken', id), true);
      const { consumed: _consumed, ...rest } = (await store.find('RefreshToken', id)) as Record<string, unknown>;
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
