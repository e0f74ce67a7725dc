/**
 * Notices when the signing-key ring changes (a rotation through the admin API of any process
 * or host, or `veil keys rotate --local`) and tells this process to reload it. Rotations through
 * the admin API are announced on the invalidation bus and picked up at once; anything else
 * within one polling interval, which asks the store for a cheap fingerprint (the file's
 * mtime/size/inode, or the ring's version row in PostgreSQL).
 */
import type { InvalidationBus } from '../store/invalidation.js';
import type { KeyStore } from './key-store.js';

export interface KeyWatcherOptions {
  store: KeyStore;
  intervalSeconds: number;
  bus: InvalidationBus;
  /** Reloads the keys; failures are reported and retried at the next change or tick. */
  reload(): Promise<void>;
  onError(err: unknown): void;
}

export class KeyWatcher {
  readonly #timer: NodeJS.Timeout;
  #fingerprint: string | undefined;
  #running: Promise<void> = Promise.resolve();

  private constructor(
    private readonly options: KeyWatcherOptions,
    fingerprint: string | undefined,
  ) {
    this.#fingerprint = fingerprint;
    this.#timer = setInterval(() => void this.check(), options.intervalSeconds * 1000);
    this.#timer.unref();
    options.bus.subscribe((topic) => {
      if (topic === 'keys' || topic === 'all') void this.check(true);
    });
  }

  static async start(options: KeyWatcherOptions): Promise<KeyWatcher> {
    return new KeyWatcher(options, await options.store.fingerprint());
  }

  /** Reloads when the ring changed (or always, when told by another process). Runs one at a time. */
  check(force = false): Promise<void> {
    this.#running = this.#running.then(async () => {
      try {
        const now = await this.options.store.fingerprint();
        if (!force && now === this.#fingerprint) return;
        await this.options.reload();
        this.#fingerprint = now;
      } catch (err) {
        this.options.onError(err);
      }
    });
    return this.#running;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
