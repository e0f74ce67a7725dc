/**
 * Real Redis topologies for tests, each on free local ports in a temporary directory of its own:
 * a three-master Redis Cluster, a Sentinel set (one master, one replica, three sentinels with
 * quorum 2) that can be failed over, and a bare master and replica to fail over step by step.
 * Debian's `redis-server` (and `redis-sentinel`, else `redis-server --sentinel`), which
 * scripts/test-prereqs.sh installs. Nothing is persisted;
 * `stop()` kills every server and removes the directory.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './net.js';

const run = promisify(execFile);
const HOST = '127.0.0.1';

/** Every server started by this process, killed if the test process exits without stopping them. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

/** A short-lived admin connection to one server, closed after `use`. */
async function withClient<T>(port: number, use: (client: Redis) => Promise<T>, password?: string): Promise<T> {
  const client = new Redis({ host: HOST, port, password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
  client.on('error', () => {});
  try {
    await client.connect();
    return await use(client);
  } finally {
    client.disconnect();
  }
}

function infoField(info: string, field: string): string | undefined {
  return new RegExp(`^${field}:(.*)$`, 'm').exec(info)?.[1]?.trim();
}

interface Server {
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** One server process (`redis-server <args>`, or a sentinel from its config file); resolves once it answers PING. */
async function startServer(dir: string, name: string, command: string, args: string[], port: number, password?: string): Promise<Server> {
  const log = path.join(dir, `${name}.log`);
  const child = spawn(command, args, { cwd: dir, stdio: ['ignore', fs.openSync(log, 'a'), fs.openSync(log, 'a')] });
  running.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', () => running.delete(child));
  try {
    await waitUntil(`${name} on port ${port}`, async () => {
      if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}: ${await fsp.readFile(log, 'utf8').catch(() => '')}`);
      return (await withClient(port, (c) => c.ping(), password)) === 'PONG';
    });
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    port,
    child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** `redis-server` on a free port with nothing persisted; `extra` are more `--option value` pairs. */
async function startRedisServer(dir: string, name: string, extra: string[] = [], password?: string): Promise<Server> {
  const port = await freePort();
  // No diskless-sync delay: a replica (or a demoted master) syncs at once instead of after 5 s.
  const args = [
    '--port',
    String(port),
    '--bind',
    HOST,
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--dbfilename',
    `${name}.rdb`,
    '--repl-diskless-sync-delay',
    '0',
    ...extra,
  ];
  if (password) args.push('--requirepass', password, '--masterauth', password);
  return startServer(dir, name, 'redis-server', args, port, password);
}

export interface RedisCluster {
  /** `host:port` of each master, in the form REDIS_CLUSTER_NODES takes (joined with commas). */
  nodes: string[];
  /** The same, comma-separated: REDIS_CLUSTER_NODES. */
  nodesEnv: string;
  dir: string;
  stop(): Promise<void>;
}

/** Three masters with `cluster-enabled yes`, joined by `redis-cli --cluster create`; resolves once every node says `cluster_state:ok`. */
export async function startRedisCluster(options: { masters?: number } = {}): Promise<RedisCluster> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'veil-redis-cluster-'));
  const servers: Server[] = [];
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await fsp.rm(dir, { recursive: true, force: true });
  };
  try {
    const count = options.masters ?? 3;
    for (let i = 0; i < count; i++) {
      servers.push(
        await startRedisServer(dir, `node-${i}`, ['--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, `nodes-${i}.conf`), '--cluster-node-timeout', '2000']),
      );
    }
    const nodes = servers.map((s) => `${HOST}:${s.port}`);
    await run('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes'], { timeout: 20_000 });
    await waitUntil('cluster_state:ok on every node', async () => {
      for (const s of servers) {
        const info = await withClient(s.port, (c) => c.cluster('INFO'));
        if (infoField(info, 'cluster_state') !== 'ok' || infoField(info, 'cluster_known_nodes') !== String(count)) return false;
      }
      return true;
    });
    return { nodes, nodesEnv: nodes.join(','), dir, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Redis servers started with `cluster-enabled yes` but never joined: a node list that does not
 * form a cluster (no slots assigned), for testing that Veil refuses it.
 */
export async function startUnjoinedClusterNodes(count = 2): Promise<RedisCluster> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'veil-redis-unjoined-'));
  const servers: Server[] = [];
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await fsp.rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < count; i++) {
      servers.push(await startRedisServer(dir, `node-${i}`, ['--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, `nodes-${i}.conf`)]));
    }
    const nodes = servers.map((s) => `${HOST}:${s.port}`);
    return { nodes, nodesEnv: nodes.join(','), dir, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface ReplicatedPair {
  masterPort: number;
  replicaPort: number;
  /** `REPLICAOF NO ONE` on the replica: what a failover does first. The old master keeps taking writes (and has no replica). */
  promote(): Promise<void>;
  /** The old master becomes the promoted one's replica (what Sentinel does once it sees it again); resolves once it is in sync. */
  rejoin(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A master and its replica, no sentinels: a failover taken step by step, for tests that need a
 * write to land on the old master after the promotion (the moment a Sentinel failover leaves
 * open before clients move).
 */
export async function startReplicatedPair(): Promise<ReplicatedPair> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'veil-redis-pair-'));
  const servers: Server[] = [];
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await fsp.rm(dir, { recursive: true, force: true });
  };
  try {
    const master = await startRedisServer(dir, 'master');
    servers.push(master);
    const replica = await startRedisServer(dir, 'replica', ['--replicaof', HOST, String(master.port)]);
    servers.push(replica);
    const inSync = (port: number) => async () => infoField(await withClient(port, (c) => c.info('replication')), 'master_link_status') === 'up';
    // The replica says it is linked, and a write to its master is confirmed by it (WAIT).
    const confirms = (port: number) => async () =>
      withClient(port, async (c) => {
        await c.set('pair:probe', '1', 'PX', 1000);
        return Number(await c.call('WAIT', 1, 200)) >= 1;
      });
    await waitUntil('the replica in sync', inSync(replica.port));
    await waitUntil('the master to count its replica', confirms(master.port));
    return {
      masterPort: master.port,
      replicaPort: replica.port,
      async promote() {
        await withClient(replica.port, (c) => c.call('REPLICAOF', 'NO', 'ONE'));
      },
      async rejoin() {
        await withClient(master.port, (c) => c.call('REPLICAOF', HOST, String(replica.port)));
        await waitUntil('the old master in sync with the new one', inSync(master.port));
        await waitUntil('the new master to count its replica', confirms(replica.port));
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface SentinelSet {
  /** The master's name the sentinels monitor: REDIS_SENTINEL_MASTER. */
  masterName: string;
  /** `host:port` of each sentinel: REDIS_SENTINELS (joined with commas). */
  sentinels: string[];
  /** The same, comma-separated. */
  sentinelsEnv: string;
  /** The password of the master and replica (REDIS_PASSWORD), when started with one. */
  password: string | undefined;
  dir: string;
  /** `host:port` of the current master, as the sentinels report it. */
  master(): Promise<string>;
  /**
   * `SENTINEL FAILOVER`: promotes the replica; resolves once every sentinel reports the new master
   * and it answers as a master (then calls `onPromoted`). With `rejoin`, also waits until the sentinels have turned the old
   * master into the new one's replica (about 20 s: Sentinel waits before converting it), so that
   * another failover can follow.
   */
  failover(options?: { rejoin?: boolean; onPromoted?: () => void }): Promise<{ from: string; to: string }>;
  stop(): Promise<void>;
}

/**
 * One master, one replica and three sentinels (quorum 2), all on free local ports. Resolves once
 * the replica is in sync and the sentinels know it (a failover can then be asked for at once).
 */
export async function startSentinelSet(options: { masterName?: string; password?: string } = {}): Promise<SentinelSet> {
  const masterName = options.masterName ?? 'veil-test';
  const { password } = options;
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'veil-redis-sentinel-'));
  const servers: Server[] = [];
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await fsp.rm(dir, { recursive: true, force: true });
  };
  try {
    const master = await startRedisServer(dir, 'master', [], password);
    servers.push(master);
    const replica = await startRedisServer(dir, 'replica', ['--replicaof', HOST, String(master.port)], password);
    servers.push(replica);
    const byPort = new Map([master, replica].map((s) => [s.port, s]));
    await waitUntil('the replica in sync', async () => infoField(await withClient(replica.port, (c) => c.info('replication'), password), 'master_link_status') === 'up');

    const sentinelBinary = await run('sh', ['-c', 'command -v redis-sentinel']).then(
      () => ({ command: 'redis-sentinel', args: [] as string[] }),
      () => ({ command: 'redis-server', args: ['--sentinel'] }),
    );
    const sentinelPorts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const conf = path.join(dir, `sentinel-${i}.conf`);
      await fsp.writeFile(
        conf,
        [
          `port ${port}`,
          `bind ${HOST}`,
          `dir ${dir}`,
          `sentinel monitor ${masterName} ${HOST} ${master.port} 2`,
          `sentinel down-after-milliseconds ${masterName} 2000`,
          `sentinel failover-timeout ${masterName} 10000`,
          `sentinel parallel-syncs ${masterName} 1`,
          ...(password ? [`sentinel auth-pass ${masterName} ${password}`] : []),
          '',
        ].join('\n'),
      );
      servers.push(await startServer(dir, `sentinel-${i}`, sentinelBinary.command, [conf, ...sentinelBinary.args], port));
      sentinelPorts.push(port);
    }

    const sentinel = <T>(use: (c: Redis) => Promise<T>, index = 0) => withClient(sentinelPorts[index]!, use);
    const masterAddress = async (index = 0) => {
      const [host, port] = (await sentinel((c) => c.call('SENTINEL', 'get-master-addr-by-name', masterName) as Promise<[string, string]>, index)) ?? [];
      return `${host}:${port}`;
    };
    /** Every sentinel sees the replica of the current master, up and linked. */
    const replicaKnown = async () => {
      for (let i = 0; i < sentinelPorts.length; i++) {
        const replicas = (await sentinel((c) => c.call('SENTINEL', 'replicas', masterName) as Promise<string[][]>, i)) ?? [];
        const healthy = replicas.some((fields) => {
          const f = Object.fromEntries(fields.flatMap((v, k, all) => (k % 2 === 0 ? [[v, all[k + 1]]] : [])));
          return f.flags === 'slave' && f['master-link-status'] === 'ok';
        });
        if (!healthy) return false;
      }
      return true;
    };
    await waitUntil('the sentinels to know the replica', replicaKnown);

    return {
      masterName,
      sentinels: sentinelPorts.map((p) => `${HOST}:${p}`),
      sentinelsEnv: sentinelPorts.map((p) => `${HOST}:${p}`).join(','),
      password,
      dir,
      master: () => masterAddress(),
      async failover({ rejoin = false, onPromoted }: { rejoin?: boolean; onPromoted?: () => void } = {}) {
        const from = await masterAddress();
        await sentinel((c) => c.call('SENTINEL', 'failover', masterName));
        let to = from;
        await waitUntil('the sentinels to report a new master', async () => {
          for (let i = 0; i < sentinelPorts.length; i++) if ((await masterAddress(i)) === from) return false;
          to = await masterAddress();
          return true;
        });
        const server = (address: string) => byPort.get(Number(address.split(':')[1]))!;
        await waitUntil(
          'the new master to answer as master',
          async () => infoField(await withClient(server(to).port, (c) => c.info('replication'), password), 'role') === 'master',
        );
        onPromoted?.();
        if (!rejoin) return { from, to };
        await waitUntil(
          'the old master to rejoin as a replica',
          async () => infoField(await withClient(server(from).port, (c) => c.info('replication'), password), 'master_link_status') === 'up',
          30_000,
        );
        await waitUntil('the sentinels to know the new replica', replicaKnown, 30_000);
        return { from, to };
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
