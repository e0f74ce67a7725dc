/**
 * The process's one Redis connection, shared by the short-lived store, the invalidation bus
 * (which duplicates it for its subscription) and the throttles. Three topologies (config.ts
 * RedisConfig): one server by URL; a master found through Sentinel, followed across failovers;
 * or a Redis Cluster (ioredis `Cluster`, which routes each command to its slot's node). Each is
 * checked before start-up goes on, and a topology setting that cannot work stops it with a
 * message naming the variable.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { ConfigError, type HostPort, type RedisConfig } from '../config.js';
import { StoreUnavailableError } from './errors.js';

/** A single Redis, a Sentinel-backed one or a Cluster: the commands Veil uses behave alike on each. */
export type RedisClient = Redis | Cluster;

// Fail fast while disconnected so callers can answer 503 instead of hanging.
const FAIL_FAST = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  connectTimeout: 3000,
  // A command in flight when the connection drops is kept to be resent after reconnecting,
  // beyond maxRetriesPerRequest's reach: its request would wait the outage out, and its write
  // land after the caller was told 503. Fail it instead, within commandTimeout.
  autoResendUnfulfilledCommands: false,
  commandTimeout: 1000,
} satisfies RedisOptions;

const retryStrategy = (attempt: number) => Math.min(attempt * 200, 2000);

/** A server that was master and is now a replica (a failover) answers writes with READONLY: reconnect, through the sentinels, to the new master. */
const reconnectOnReadOnly = (err: Error) => err.message.startsWith('READONLY');

export function createRedisClient(url: string, extra: RedisOptions = {}): Redis {
  const client = new Redis(url, {
    lazyConnect: true,
    ...FAIL_FAST,
    retryStrategy,
    // Commands issued in the same tick share one write: under load that is one syscall for
    // many requests' store calls instead of one each.
    enableAutoPipelining: true,
    ...extra,
  });
  // Connection errors surface on the commands that fail; the event only needs a listener so
  // ioredis does not print them as unhandled.
  client.on('error', () => {});
  return client;
}

const list = (nodes: HostPort[]) => nodes.map((n) => (n.host.includes(':') ? `[${n.host}]:${n.port}` : `${n.host}:${n.port}`)).join(',');

/** The topology as it may be logged: never a password. */
export function describeRedis(config: RedisConfig): string {
  if (config.kind === 'sentinel') return `Redis master "${config.masterName}" through Sentinel ${list(config.sentinels)}`;
  if (config.kind === 'cluster') return `Redis Cluster ${list(config.nodes)}`;
  const u = new URL(config.url);
  return `Redis ${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
}

/**
 * Asks the sentinels, in turn, where the master is: the first that answers decides. A name it
 * does not monitor is a configuration error (ioredis would only retry "all sentinels unreachable").
 */
async function checkSentinelMaster(config: Extract<RedisConfig, { kind: 'sentinel' }>): Promise<void> {
  let lastError: unknown;
  for (const sentinel of config.sentinels) {
    const probe = new Redis({ ...sentinel, password: config.sentinelPassword, lazyConnect: true, ...FAIL_FAST, maxRetriesPerRequest: 0, retryStrategy: () => null });
    let reason: unknown;
    probe.on('error', (err) => (reason ??= err));
    try {
      await probe.connect();
      const address = await probe.call('SENTINEL', 'get-master-addr-by-name', config.masterName);
      if (address === null) {
        throw new ConfigError(`REDIS_SENTINEL_MASTER: the sentinel at ${list([sentinel])} monitors no master named "${config.masterName}"`);
      }
      return;
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      lastError = reason ?? err;
    } finally {
      probe.disconnect();
    }
  }
  throw new StoreUnavailableError(`Redis Sentinel (REDIS_SENTINELS: no sentinel of ${list(config.sentinels)} answered)`, lastError);
}

function createSentinelClient(config: Extract<RedisConfig, { kind: 'sentinel' }>): Redis {
  return createRedisClient('', {
    sentinels: config.sentinels,
    name: config.masterName,
    password: config.password,
    sentinelPassword: config.sentinelPassword,
    sentinelRetryStrategy: retryStrategy,
    // Listen to the sentinels' +switch-master and move at once, rather than when the old master
    // first fails a command.
    failoverDetector: true,
    reconnectOnError: reconnectOnReadOnly,
  });
}

export function createClusterClient(config: Extract<RedisConfig, { kind: 'cluster' }>, extra: ClusterOptions = {}): Cluster {
  const client = new Cluster(config.nodes, {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    clusterRetryStrategy: retryStrategy,
    redisOptions: { ...FAIL_FAST, password: config.password },
    ...extra,
  });
  client.on('error', () => {});
  return client;
}

/**
 * Asks the listed nodes, in turn, whether they form a working cluster: the first that answers
 * decides. A server without cluster support, or nodes never joined (`cluster_state:fail`, no
 * slots), is a configuration error; ioredis would only keep retrying them.
 */
async function checkClusterNodes(config: Extract<RedisConfig, { kind: 'cluster' }>): Promise<void> {
  let lastError: unknown;
  for (const node of config.nodes) {
    const probe = new Redis({ ...node, password: config.password, lazyConnect: true, ...FAIL_FAST, maxRetriesPerRequest: 0, retryStrategy: () => null });
    let reason: unknown;
    probe.on('error', (err) => (reason ??= err));
    try {
      await probe.connect();
      let info: string;
      try {
        info = String(await probe.call('CLUSTER', 'INFO'));
      } catch (err) {
        throw new ConfigError(`REDIS_CLUSTER_NODES: ${list([node])} is not a Redis Cluster node (${(err as Error).message})`);
      }
      const state = /^cluster_state:(\w+)/m.exec(info)?.[1];
      if (state !== 'ok')
        throw new ConfigError(`REDIS_CLUSTER_NODES: ${list(config.nodes)} do not form a working Redis Cluster (${list([node])} says cluster_state:${state ?? '?'})`);
      return;
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      lastError = reason ?? err;
    } finally {
      probe.disconnect();
    }
  }
  throw new StoreUnavailableError(`Redis Cluster (REDIS_CLUSTER_NODES: no node of ${list(config.nodes)} answered)`, lastError);
}

/** How long start-up waits for a topology to become usable before giving up. */
const CONNECT_DEADLINE_MS = 5000;

/**
 * Connects and checks the topology: a URL's server answers; Sentinel knows the master name and
 * its master answers; the cluster's nodes form a cluster with every slot served. Fails with a
 * ConfigError naming the variable for a setting that cannot work, StoreUnavailableError with
 * the reason for a server that cannot be reached. A string is a REDIS_URL.
 */
export async function connectRedis(target: RedisConfig | string): Promise<RedisClient> {
  const config: RedisConfig = typeof target === 'string' ? { kind: 'url', url: target, keyPrefix: '' } : target;
  if (config.kind === 'sentinel') await checkSentinelMaster(config);
  if (config.kind === 'cluster') return connectCluster(config);
  const client = config.kind === 'sentinel' ? createSentinelClient(config) : createRedisClient(config.url);
  let reason: unknown;
  client.once('error', (err) => (reason = err));
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    client.disconnect();
    throw new StoreUnavailableError(config.kind === 'sentinel' ? `Redis (master "${config.masterName}" through Sentinel)` : 'Redis', reason ?? err);
  }
  return client;
}

async function connectCluster(config: Extract<RedisConfig, { kind: 'cluster' }>): Promise<Cluster> {
  await checkClusterNodes(config);
  const client = createClusterClient(config);
  let reason: unknown;
  client.on('error', (err) => {
    reason ??= err;
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not ready within ${CONNECT_DEADLINE_MS} ms`)), CONNECT_DEADLINE_MS);
    });
    await Promise.race([client.connect().then(() => client.ping()), deadline]);
  } catch (err) {
    client.disconnect();
    throw new StoreUnavailableError(`Redis Cluster (REDIS_CLUSTER_NODES ${list(config.nodes)})`, reason ?? err);
  } finally {
    clearTimeout(timer);
  }
  return client;
}

/** Closes the connection; `disconnect` after `quit` also ends what ioredis opened beside it (Sentinel's failover detector). */
export async function closeRedis(client: RedisClient): Promise<void> {
  await client.quit().catch(() => {});
  client.disconnect();
}
