/**
 * A revocation that lands on the old master after a failover's promotion is applied again on the
 * new one, and a rotation that could not be confirmed is taken back (src/store/redis-store.ts
 * #untilConfirmed).
 *
 * Behind Sentinel, a replica is promoted while the old master still takes writes until the
 * clients move (and drops them when it rejoins as a replica). A revocation written there is
 * answered 503 (no replica confirms it, REDIS_WAIT_REPLICAS), but the grant row is already gone
 * from PostgreSQL: its tokens, among them a successor refresh token that a rotation answered 503
 * never delivered, would stay in Redis. The fault suite's Sentinel failover found exactly that.
 * And a rotation answered 503 that did happen would make the client's retry count as reuse,
 * revoking the grant: the fault suite saw a failover end half the chains that way.
 * Here the failover is taken step by step on a real master and replica: the store's connection
 * goes through a TCP proxy that is pointed at the promoted replica, as Sentinel's clients move.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { StoreUnavailableError } from '../../src/store/errors.js';
import { closeRedis, connectRedis, type RedisClient } from '../../src/store/redis-connection.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { GrantRevokedError } from '../../src/store/short-lived-store.js';
import { startTcpProxy } from '../helpers/net.js';
import { startReplicatedPair, type ReplicatedPair } from '../helpers/redis-topologies.js';
import { issue, tokenPayload, uniqueId } from '../helpers/short-lived-store-suite.js';

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(100);
  }
  assert.fail(`${what}: not within ${timeoutMs} ms`);
}

describe('corrections after a failover: revocations re-applied, unconfirmed rotations taken back', () => {
  const keyPrefix = 'veiltest:failover-revocation:';
  let pair: ReplicatedPair;
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
  let veilClient: RedisClient;
  /** Veil's store: through the proxy, each write confirmed by one replica. */
  let store: RedisStore;
  let promotedClient: RedisClient;
  /** The test's own view of the promoted replica (the new master), no proxy in between. */
  let promoted: RedisStore;

  before(async () => {
    pair = await startReplicatedPair();
    proxy = await startTcpProxy('127.0.0.1', pair.masterPort);
    veilClient = await connectRedis(`redis://127.0.0.1:${proxy.port}`);
    store = new RedisStore(veilClient, { keyPrefix, waitReplicas: 1 });
    promotedClient = await connectRedis(`redis://127.0.0.1:${pair.replicaPort}`);
    promoted = new RedisStore(promotedClient, { keyPrefix });
  });

  after(async () => {
    await store?.close();
    if (veilClient) await closeRedis(veilClient);
    if (promotedClient) await closeRedis(promotedClient);
    await proxy?.close();
    await pair?.stop();
  });

  test('answered 503, then applied on the new master once the connection reaches it, and confirmed once a replica is back', async () => {
    const grantId = uniqueId('grant');
    const refresh = uniqueId('refresh');
    const successor = uniqueId('successor');
    const accessJti = uniqueId('access');
    const otherGrant = uniqueId('grant');
    const otherJti = uniqueId('access');
    // Before the failover, confirmed by the replica: a refresh token, its (undelivered) successor
    // and two access tokens, of two grants.
    await store.upsert('RefreshToken', refresh, tokenPayload('RefreshToken', { grantId }), 600);
    await store.upsert('RefreshToken', successor, tokenPayload('RefreshToken', { grantId }), 600);
    await issue(store, 'AccessToken', accessJti, tokenPayload('AccessToken', { jti: accessJti, grantId }), 600, uniqueId('hash'));
    await issue(store, 'AccessToken', otherJti, tokenPayload('AccessToken', { jti: otherJti, grantId: otherGrant }), 600, uniqueId('hash'));
    await eventually(
      'the replica holds them',
      async () => (await promoted.find('RefreshToken', successor)) !== undefined && (await promoted.findIssuedByJti(otherJti)) !== undefined,
    );

    // The failover's first step: the replica is promoted; Veil's connection is still on the old master.
    await pair.promote();
    await assert.rejects(store.revokeByGrantId(grantId, 3600), StoreUnavailableError, 'no replica confirms it: 503');
    await assert.rejects(store.blacklist(otherJti, 600), StoreUnavailableError, 'likewise an access token revocation');
    assert.equal(store.unconfirmedCorrections, 2);
    // Lost for the new master: it never saw them.
    assert.ok(await promoted.find('RefreshToken', successor), 'the new master still has the successor');
    assert.equal((await promoted.findIssuedByJti(otherJti))?.revoked, false);

    // Veil's connection moves to the new master (the proxy now leads there; the old connection drops).
    proxy.retarget(pair.replicaPort);
    proxy.cut();
    proxy.restore();

    // Applied again there: the grant's tokens are gone, the grant is marked revoked, the access token blacklisted.
    await eventually('the grant revoked on the new master', async () => (await promoted.find('RefreshToken', successor)) === undefined);
    assert.equal(await promoted.find('RefreshToken', refresh), undefined);
    assert.equal(await promoted.findIssuedByJti(accessJti).then((r) => r?.payload === undefined || r.revoked), true);
    await assert.rejects(promoted.upsert('RefreshToken', uniqueId('late'), tokenPayload('RefreshToken', { grantId }), 600), GrantRevokedError, 'no write for the grant can follow');
    await eventually('the access token blacklisted on the new master', async () => (await promoted.findIssuedByJti(otherJti))?.revoked === true);
    // The new master has no replica yet: still unconfirmed, so still re-applied.
    assert.equal(store.unconfirmedCorrections, 2);

    // The old master rejoins as the new one's replica: the next pass is confirmed, and the list empties.
    await pair.rejoin();
    await eventually('the re-applied revocations confirmed', async () => store.unconfirmedCorrections === 0);
  });

  test('a rotation whose confirmation failed is taken back: the retry of the presented token rotates it, reuse is still reuse', async () => {
    // The set is whole again (the promoted replica is master, the old master its replica).
    const grantId = uniqueId('grant');
    const presented = uniqueId('refresh');
    await store.upsert('RefreshToken', presented, tokenPayload('RefreshToken', { grantId }), 600);
    const rotation = (successor: string) => ({ consumed: presented, successor: { id: successor, payload: tokenPayload('RefreshToken', { grantId }), expiresIn: 600 } });

    // The rotation runs, then the connection drops as its confirmation (WAIT) goes out: 503,
    // and the take-back cannot be written yet either.
    const cut = proxy.cutWhen((chunk) => /\r\nwait\r\n/i.test(chunk.toString('latin1')));
    const first = uniqueId('successor');
    await assert.rejects(store.rotateRefreshToken(rotation(first)), StoreUnavailableError);
    await cut;
    assert.ok(store.unconfirmedCorrections >= 1, 'the take-back is owed');
    proxy.restore();

    // What oidc-provider reads first on the retry: the presented token, not consumed (had it read
    // it consumed, it would revoke the grant as reuse).
    let read: Awaited<ReturnType<RedisStore['find']>> | 'unavailable' = 'unavailable';
    for (let attempt = 0; attempt < 50 && read === 'unavailable'; attempt++) {
      read = await store.find('RefreshToken', presented).catch(async (err: unknown) => {
        assert.ok(err instanceof StoreUnavailableError, String(err));
        await sleep(100);
        return 'unavailable' as const;
      });
    }
    assert.ok(read !== 'unavailable' && read !== undefined, 'the presented token is stored');
    assert.equal(read.consumed, undefined, 'and not consumed');

    // The client retries the token it holds (503s while the connection is re-made): rotated (the
    // first successor, which nobody received, taken back).
    let second = '';
    let outcome: string | undefined;
    for (let attempt = 0; attempt < 50 && outcome === undefined; attempt++) {
      second = uniqueId('successor');
      outcome = await store.rotateRefreshToken(rotation(second)).catch(async (err: unknown) => {
        assert.ok(err instanceof StoreUnavailableError, String(err));
        await sleep(100);
        return undefined;
      });
    }
    assert.equal(outcome, 'rotated');
    assert.equal(await promoted.find('RefreshToken', first), undefined, 'the undelivered successor is gone');
    assert.ok(await promoted.find('RefreshToken', second));
    // Presented once more: reuse, as ever (the take-back reopens only what its own rotation consumed).
    assert.equal(await store.rotateRefreshToken(rotation(uniqueId('successor'))), 'reused');
    assert.ok(await promoted.find('RefreshToken', second), 'the delivered successor stays');
    await eventually('the take-back confirmed', async () => store.unconfirmedCorrections === 0);
  });
});
