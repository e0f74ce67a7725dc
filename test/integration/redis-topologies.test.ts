/**
 * Veil on real Redis topologies started by the test (test/helpers/redis-topologies.ts): a
 * three-master Redis Cluster and a Sentinel set (one master, one replica, three sentinels). On
 * each: the ShortLivedStore semantics suite, the integration flows (client credentials with a
 * sealed token, introspection, revocation, the authorization code with refresh rotation and
 * reuse detection, the login throttle), and the invalidation bus; on Sentinel, service across a
 * failover. Then the topology settings that cannot work stop start-up, naming the variable.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { Cluster } from 'ioredis';
import { loadConfig, type RedisConfig } from '../../src/config.js';
import { Envelope } from '../../src/crypto/master-key.js';
import { envelopeAtRest } from '../../src/store/at-rest.js';
import { RedisInvalidationBus, type InvalidationTopic } from '../../src/store/invalidation.js';
import { closeRedis, connectRedis, type RedisClient } from '../../src/store/redis-connection.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { httpAuthorizationCodeFlow, postLogin, startLoginInteraction, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { startRedisCluster, startSentinelSet, startUnjoinedClusterNodes, type RedisCluster, type SentinelSet } from '../helpers/redis-topologies.js';
import { introspect, openSealed, registerResourceServer, revoke, type TestResourceServer } from '../helpers/resource-servers.js';
import { shortLivedStoreSuite } from '../helpers/short-lived-store-suite.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

type Created = { client: { client_id: string }; client_secret: string };
const REDIRECT = 'http://127.0.0.1:9/cb';

/** The Redis settings of a topology as Veil reads them (REDIS_URL cleared: startTestVeil sets it). */
type TopologyEnv = () => Record<string, string>;

/** config.redis for a topology's variables, as Veil would build it. */
function redisConfig(env: Record<string, string>, keyPrefix: string): RedisConfig {
  const redis = loadConfig({ NODE_ENV: 'test', REDIS_KEY_PREFIX: keyPrefix, ...env }).redis;
  assert.ok(redis, 'the topology variables configure Redis');
  return redis;
}

/** The store semantics suite on this topology, with payloads sealed and ids hashed as Veil stores them. */
function storeSuite(name: string, env: TopologyEnv) {
  let client: RedisClient;
  let store: RedisStore;
  shortLivedStoreSuite(
    name,
    async () => {
      const keyPrefix = `veiltest:${randomBytes(4).toString('hex')}:`;
      client = await connectRedis(redisConfig(env(), keyPrefix));
      const key = randomBytes(32);
      store = new RedisStore(client, { keyPrefix, atRest: envelopeAtRest(new Envelope([{ id: key.toString('base64url').slice(0, 8), secret: key }])) });
      return { store, listed: (grantId) => client.llen(store.grantListKey(grantId)) };
    },
    async () => {
      if (client) await closeRedis(client);
    },
  );
}

/** Two processes' buses on this topology: an announcement from one reaches the other. */
async function busCarries(env: TopologyEnv): Promise<void> {
  const keyPrefix = `veiltest:${randomBytes(4).toString('hex')}:`;
  const a = await connectRedis(redisConfig(env(), keyPrefix));
  const b = await connectRedis(redisConfig(env(), keyPrefix));
  const busA = await RedisInvalidationBus.connect(a, keyPrefix);
  const busB = await RedisInvalidationBus.connect(b, keyPrefix);
  try {
    const heard: Array<[InvalidationTopic, string]> = [];
    busB.subscribe((topic, key) => heard.push([topic, key]));
    await busA.publish('client', 'client-1');
    for (let i = 0; i < 50 && !heard.length; i++) await sleep(20);
    assert.deepEqual(heard, [['client', 'client-1']]);
  } finally {
    await busA.close();
    await busB.close();
    await closeRedis(a);
    await closeRedis(b);
  }
}

interface FlowContext {
  veil: TestVeil;
  rs: TestResourceServer;
  machine: HttpFlowClient;
  web: HttpFlowClient;
  user: { email: string; password: string };
}

/** Starts Veil on the topology (PostgreSQL from the local server) with a resource server, two clients and a user. */
async function startFlows(stores: TestStores, env: Record<string, string>): Promise<FlowContext> {
  const veil = await startTestVeil(stores, { REDIS_URL: '', ...env, LOGIN_MAX_FAILURES_PER_ACCOUNT: '3', LOGIN_MAX_FAILURES_PER_IP: '1000' });
  try {
    const rs = await registerResourceServer(veil, { identifier: 'https://topology.example/api' });
    const m = await veil.admin<Created>('POST', '/admin/clients', {
      client_name: 'machine',
      grant_types: ['client_credentials'],
      resources: [rs.identifier],
      resource_scopes: { [rs.identifier]: ['read'] },
    });
    assert.equal(m.status, 201, JSON.stringify(m.body));
    const w = await veil.admin<Created>('POST', '/admin/clients', {
      client_name: 'web',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      resources: [rs.identifier],
    });
    assert.equal(w.status, 201, JSON.stringify(w.body));
    const user = { email: `topology-${randomBytes(3).toString('hex')}@example.com`, password: 'a topology-proof passphrase' };
    assert.equal((await veil.admin('POST', '/admin/users', user)).status, 201);
    return {
      veil,
      rs,
      machine: { issuer: veil.issuer, clientId: m.body.client.client_id, clientSecret: m.body.client_secret, redirectUri: '' },
      web: { issuer: veil.issuer, clientId: w.body.client.client_id, clientSecret: w.body.client_secret, redirectUri: REDIRECT },
      user,
    };
  } catch (err) {
    await veil.stop();
    throw err;
  }
}

const rsCredentials = (rs: TestResourceServer) => ({ id: rs.clientId, secret: rs.clientSecret });
const active = async (f: FlowContext, token: string) => (await introspect(f.veil.issuer, rsCredentials(f.rs), token)).body.active;

async function clientCredentialsFlow(f: FlowContext): Promise<void> {
  const res = await tokenRequest(f.machine, { grant_type: 'client_credentials', resource: f.rs.identifier, scope: 'read' });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const token = res.body.access_token!;
  assert.equal(token.split('.').length, 5, 'a sealed token (JWE)');
  const { payload } = await openSealed(token, f.rs.privateKey, f.veil.issuer, f.rs.identifier);
  assert.equal(payload.client_id, f.machine.clientId);
  assert.equal(await active(f, token), true);
  assert.equal((await revoke(f.veil.issuer, { id: f.machine.clientId, secret: f.machine.clientSecret! }, token)).status, 200);
  assert.equal(await active(f, token), false, 'a revoked token is inactive');
}

async function codeRefreshReuseFlow(f: FlowContext): Promise<void> {
  const first = await httpAuthorizationCodeFlow(f.web, f.user, 'openid offline_access', { resource: f.rs.identifier });
  assert.equal(await active(f, first.access_token), true);
  const refreshed = await tokenRequest(f.web, { grant_type: 'refresh_token', refresh_token: first.refresh_token, resource: f.rs.identifier });
  assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
  const second = refreshed.body as { access_token: string; refresh_token: string };
  assert.notEqual(second.refresh_token, first.refresh_token, 'the refresh token rotates');
  assert.equal(await active(f, second.access_token), true);
  // The first refresh token again: reuse. The grant is revoked, and every token of it with it.
  const reused = await tokenRequest(f.web, { grant_type: 'refresh_token', refresh_token: first.refresh_token, resource: f.rs.identifier });
  assert.equal(reused.status, 400);
  assert.equal(reused.body.error, 'invalid_grant');
  assert.equal(await active(f, second.access_token), false, 'the access token of the revoked grant is inactive');
  const after = await tokenRequest(f.web, { grant_type: 'refresh_token', refresh_token: second.refresh_token, resource: f.rs.identifier });
  assert.equal(after.status, 400, 'the successor refresh token died with its grant');
}

async function loginThrottleFlow(f: FlowContext): Promise<void> {
  // A user of its own: the lock must not stop the other flows.
  const user = { email: `locked-${randomBytes(3).toString('hex')}@example.com`, password: 'another topology-proof passphrase' };
  assert.equal((await f.veil.admin('POST', '/admin/users', user)).status, 201);
  const attempt = async (password: string) => postLogin(f.veil.issuer, await startLoginInteraction(f.veil.issuer, f.web.clientId, REDIRECT), user.email, password);
  assert.equal((await attempt(user.password)).status, 303, 'the right password signs in');
  const wrong = await attempt('not the password');
  assert.equal(wrong.status, 401);
  await attempt('not the password');
  await attempt('not the password');
  assert.equal((await attempt(user.password)).status, 401, 'after 3 failures the account is locked: the right password is refused');
}

/** The flows on this topology, each a test. */
function flowSuite(name: string, env: TopologyEnv, more?: (context: () => FlowContext) => void) {
  describe(`integration flows: ${name}`, () => {
    let stores: TestStores;
    let f: FlowContext;
    before(async () => {
      stores = await createTestStores();
      f = await startFlows(stores, env());
    });
    after(async () => {
      await f?.veil.stop();
      await stores?.cleanup();
    });
    test('client credentials: a sealed token, introspected, revoked', () => clientCredentialsFlow(f));
    test('authorization code, refresh rotation, and a reused refresh token revoking the grant', () => codeRefreshReuseFlow(f));
    test('the login throttle locks an account after 3 failures', () => loginThrottleFlow(f));
    test('the invalidation bus carries announcements between processes', () => busCarries(env));
    more?.(() => f);
  });
}

describe('a three-master Redis Cluster', () => {
  let cluster: RedisCluster;
  const env: TopologyEnv = () => ({ REDIS_CLUSTER_NODES: cluster.nodesEnv });
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(() => cluster?.stop());

  storeSuite('RedisStore on a Redis Cluster', env);
  flowSuite('Redis Cluster', env, () => {
    test("Veil's keys are spread over the masters (the flows above ran across nodes)", async () => {
      const client = (await connectRedis(redisConfig(env(), ''))) as Cluster;
      try {
        const perNode = await Promise.all(client.nodes('master').map((node) => node.dbsize()));
        assert.ok(perNode.filter((n) => n > 0).length >= 2, `keys per master: ${perNode.join(', ')}`);
      } finally {
        await closeRedis(client);
      }
    });
  });
});

describe('a Sentinel set (one master, one replica, three sentinels)', () => {
  let set: SentinelSet;
  const env: TopologyEnv = () => ({ REDIS_SENTINELS: set.sentinelsEnv, REDIS_SENTINEL_MASTER: set.masterName });
  before(async () => {
    set = await startSentinelSet();
  });
  after(() => set?.stop());

  storeSuite('RedisStore through Sentinel', env);
  flowSuite('Redis Sentinel', env, (context) => {
    test('after a failover, Veil follows the new master: tokens issued before still work, new ones are issued', async () => {
      const f = context();
      const before = await httpAuthorizationCodeFlow(f.web, f.user, 'openid offline_access', { resource: f.rs.identifier });
      const bus = await connectRedis(redisConfig(env(), 'veiltest:bus:'));
      const subscription = await RedisInvalidationBus.connect(bus, 'veiltest:bus:');
      const dropped: InvalidationTopic[] = [];
      subscription.subscribe((topic) => dropped.push(topic));
      try {
        // Let the replica catch up with what was just written (replication is asynchronous).
        await sleep(200);
        // Veil has each write that matters confirmed by a replica (REDIS_WAIT_REPLICAS, 1 with
        // Sentinel): with one replica in the set, that is once the old master has rejoined.
        const { from, to } = await set.failover({ rejoin: true });
        assert.notEqual(from, to);
        // Within a few seconds of the set being whole again, requests succeed on the new master.
        let refreshed: Awaited<ReturnType<typeof tokenRequest>> | undefined;
        const deadline = Date.now() + 5000;
        while (Date.now() < deadline) {
          refreshed = await tokenRequest(f.web, { grant_type: 'refresh_token', refresh_token: before.refresh_token, resource: f.rs.identifier });
          if (refreshed.status === 200) break;
          assert.equal(refreshed.status, 503, `during the switch: 503 or success, got ${refreshed.status} ${JSON.stringify(refreshed.body)}`);
          await sleep(200);
        }
        assert.equal(refreshed?.status, 200, 'the refresh token issued before the failover is honoured after it');
        assert.equal(await active(f, (refreshed.body as { access_token: string }).access_token), true);
        await clientCredentialsFlow(f);
        // The bus moved with it, and said so: caches are dropped after a resubscription.
        for (let i = 0; i < 50 && !dropped.includes('all'); i++) await sleep(100);
        assert.ok(dropped.includes('all'), 'the bus told its subscribers to drop their caches');
      } finally {
        await subscription.close();
        await closeRedis(bus);
      }
    });
  });
});

describe('a topology setting that cannot work stops start-up, naming the variable', () => {
  let stores: TestStores;
  before(async () => {
    stores = await createTestStores();
  });
  after(() => stores?.cleanup());

  test('a master name the sentinels do not monitor: REDIS_SENTINEL_MASTER', async () => {
    const set = await startSentinelSet({ masterName: 'real-master' });
    try {
      await assert.rejects(startTestVeil(stores, { REDIS_URL: '', REDIS_SENTINELS: set.sentinelsEnv, REDIS_SENTINEL_MASTER: 'no-such-master' }), (err: Error) => {
        assert.match(err.message, /^REDIS_SENTINEL_MASTER: .*"no-such-master"/);
        return true;
      });
    } finally {
      await set.stop();
    }
  });

  test('cluster nodes never joined into a cluster: REDIS_CLUSTER_NODES', async () => {
    const nodes = await startUnjoinedClusterNodes();
    try {
      await assert.rejects(startTestVeil(stores, { REDIS_URL: '', REDIS_CLUSTER_NODES: nodes.nodesEnv }), (err: Error) => {
        assert.match(err.message, /^REDIS_CLUSTER_NODES: .*do not form a working Redis Cluster/);
        return true;
      });
    } finally {
      await nodes.stop();
    }
  });

  test('a server without cluster support given as a cluster node: REDIS_CLUSTER_NODES', async () => {
    const url = new URL(stores.redisUrl);
    await assert.rejects(startTestVeil(stores, { REDIS_URL: '', REDIS_CLUSTER_NODES: `${url.hostname}:${url.port}` }), (err: Error) => {
      assert.match(err.message, /^REDIS_CLUSTER_NODES: .*is not a Redis Cluster node/);
      return true;
    });
  });

  test('no sentinel answers: Redis is unavailable, naming REDIS_SENTINELS', async () => {
    await assert.rejects(startTestVeil(stores, { REDIS_URL: '', REDIS_SENTINELS: '127.0.0.1:1', REDIS_SENTINEL_MASTER: 'any' }), (err: Error) => {
      assert.match(err.message, /REDIS_SENTINELS/);
      return true;
    });
  });
});
