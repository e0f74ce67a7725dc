/**
 * Cross-process cache invalidation. Every Veil process keeps small caches of PostgreSQL rows
 * on the hot path (clients, resource servers); a change made through any process is announced
 * here so every process drops its copy at once. Redis pub/sub when Redis is in use, an
 * in-process emitter in embedded mode (one process).
 */
import { EventEmitter } from 'node:events';
import type { Cluster, Redis } from 'ioredis';
import { StoreUnavailableError } from './errors.js';
import type { RedisClient } from './redis-connection.js';

/** `all`: this process may have missed announcements (its subscription dropped); drop everything. */
export type InvalidationTopic = 'client' | 'resource' | 'account' | 'grant' | 'keys' | 'all';
export type InvalidationHandler = (topic: InvalidationTopic, key: string) => void;

export interface InvalidationBus {
  publish(topic: InvalidationTopic, key: string): Promise<void>;
  subscribe(handler: InvalidationHandler): void;
  close(): Promise<void>;
}

export class LocalInvalidationBus implements InvalidationBus {
  readonly #emitter = new EventEmitter();
  async publish(topic: InvalidationTopic, key: string): Promise<void> {
    this.#emitter.emit('invalidate', topic, key);
  }
  subscribe(handler: InvalidationHandler): void {
    this.#emitter.on('invalidate', handler);
  }
  async close(): Promise<void> {
    this.#emitter.removeAllListeners();
  }
}

export class RedisInvalidationBus implements InvalidationBus {
  readonly #handlers: InvalidationHandler[] = [];

  private constructor(
    private readonly publisher: RedisClient,
    private readonly subscriber: RedisClient,
    private readonly channel: string,
  ) {
    // Announcements made while the subscription was down are lost: start clean after a reconnect
    // (on Sentinel, also the move to a new master after a failover).
    // (Subscribed before this runs: the first 'ready' has passed, the next one is a reconnect.)
    let connectedOnce = subscriber.status === 'ready';
    const dropAll = () => {
      for (const handler of this.#handlers) handler('all', '');
    };
    subscriber.on('ready', () => {
      if (connectedOnce) dropAll();
      connectedOnce = true;
    });
    // On a Cluster, the subscription lives on one node that ioredis replaces when it leaves the
    // cluster (or a node joins while there is none): announcements may have been missed then.
    if (subscriber.isCluster) for (const event of ['+node', '-node']) subscriber.on(event, () => connectedOnce && dropAll());
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      const sep = message.indexOf(':');
      const topic = message.slice(0, sep) as InvalidationTopic;
      for (const handler of this.#handlers) handler(topic, message.slice(sep + 1));
    });
  }

  /**
   * `client` is the store's command connection; a subscriber needs a connection of its own. On a
   * Cluster, PUBLISH reaches every node, so one subscription on any node hears every process.
   */
  static async connect(client: RedisClient, keyPrefix: string): Promise<RedisInvalidationBus> {
    const subscriber = client.isCluster
      ? (client as Cluster).duplicate([], { enableOfflineQueue: true, lazyConnect: false })
      : (client as Redis).duplicate({ enableOfflineQueue: true });
    subscriber.on('error', () => {});
    const channel = `${keyPrefix}invalidate`;
    await subscriber.subscribe(channel);
    return new RedisInvalidationBus(client, subscriber, channel);
  }

  /** Fails with StoreUnavailableError (503 at every edge) when Redis is away, like every other Redis call. */
  async publish(topic: InvalidationTopic, key: string): Promise<void> {
    try {
      await this.publisher.publish(this.channel, `${topic}:${key}`);
    } catch (err) {
      throw new StoreUnavailableError('Redis', err);
    }
  }

  subscribe(handler: InvalidationHandler): void {
    this.#handlers.push(handler);
  }

  async close(): Promise<void> {
    await this.subscriber.quit().catch(() => {});
    this.subscriber.disconnect();
  }
}
