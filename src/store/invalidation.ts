/**
 * Cross-process cache invalidation. Every Veil process keeps small caches of PostgreSQL rows
 * on the hot path (clients, resource servers); a change made through any process is announced
 * here so every process drops its copy at once. Redis pub/sub when Redis is in use, an
 * in-process emitter in embedded mode (one process).
 */
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';

/** `all`: this process may have missed announcements (its subscription dropped); drop everything. */
export type InvalidationTopic = 'client' | 'resource' | 'account' | 'keys' | 'all';
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
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
    private readonly channel: string,
  ) {
    // Announcements made while the subscription was down are lost: start clean after a reconnect.
    let connectedOnce = false;
    subscriber.on('ready', () => {
      if (connectedOnce) for (const handler of this.#handlers) handler('all', '');
      connectedOnce = true;
    });
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      const sep = message.indexOf(':');
      const topic = message.slice(0, sep) as InvalidationTopic;
      for (const handler of this.#handlers) handler(topic, message.slice(sep + 1));
    });
  }

  /** `client` is the store's command connection; a subscriber needs a connection of its own. */
  static async connect(client: Redis, keyPrefix: string): Promise<RedisInvalidationBus> {
    const subscriber = client.duplicate({ enableOfflineQueue: true });
    subscriber.on('error', () => {});
    const channel = `${keyPrefix}invalidate`;
    await subscriber.subscribe(channel);
    return new RedisInvalidationBus(client, subscriber, channel);
  }

  async publish(topic: InvalidationTopic, key: string): Promise<void> {
    await this.publisher.publish(this.channel, `${topic}:${key}`);
  }

  subscribe(handler: InvalidationHandler): void {
    this.#handlers.push(handler);
  }

  async close(): Promise<void> {
    await this.subscriber.quit().catch(() => this.subscriber.disconnect());
  }
}
