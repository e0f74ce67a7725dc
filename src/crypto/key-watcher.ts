/**
 * Notices when the signing keys in KEYS_DIR change (a rotation through the admin API of any
 * process, or `veil keys rotate --local` on the shared directory) and tells this process to
 * reload them. Rotations through the admin API are announced on the invalidation bus and
 * picked up at once; anything else within one polling interval.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { InvalidationBus } from '../store/invalidation.js';
import { SIGNING_KEYS_FILE } from './keys.js';

export interface KeyWatcherOptions {
  keysDir: string;
  intervalSeconds: number;
  bus: InvalidationBus;
  /** Reloads the keys; failures are reported and retried at the next change or tick. */
  reload(): Promise<void>;
  onError(err: unknown): void;
}

export class KeyWatcher {
  readonly #file: string;
  readonly #timer: NodeJS.Timeout;
  #fingerprint: string | undefined;
  #running: Promise<void> = Promise.resolve();

  private constructor(private readonly options: KeyWatcherOptions, fingerprint: string | undefined) {
    this.#file = path.join(options.keysDir, SIGNING_KEYS_FILE);
    this.#fingerprint = fingerprint;
    this.#timer = setInterval(() => void this.check(), options.intervalSeconds * 1000);
    this.#timer.unref();
    options.bus.subscribe((topic) => {
      if (topic === 'keys' || topic === 'all') void this.check(true);
    });
  }

  static async start(options: KeyWatcherOptions): Promise<KeyWatcher> {
    return new KeyWatcher(options, await fingerprintOf(path.join(options.keysDir, SIGNING_KEYS_FILE)));
  }

  /** Reloads when the file changed (or always, when told by another process). Runs one at a time. */
  check(force = false): Promise<void> {
    this.#running = this.#running.then(async () => {
      try {
        const now = await fingerprintOf(this.#file);
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

async function fingerprintOf(file: string): Promise<string | undefined> {
  try {
    const stat = await fs.stat(file);
    return `${stat.mtimeMs}:${stat.size}:${stat.ino}`;
  } catch {
    return undefined;
  }
}
