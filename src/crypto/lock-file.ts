/**
 * A lock file in KEYS_DIR (`wx` create, removed after): how the file key stores (signing keys,
 * HE keys) keep two processes' changes from interleaving. A lock older than 30 s is taken as left
 * by a crashed process and broken.
 */
import fs from 'node:fs/promises';
import { KeyFileError } from './keys.js';

const LOCK_STALE_MS = 30_000;
const RETRY_MS = 25;

/** Runs `work` holding `lock` (a path in `dir`); gives up after `attempts` tries 25 ms apart. */
export async function withLockFile<T>(lock: string, dir: string, attempts: number, work: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.writeFile(lock, String(process.pid), { flag: 'wx', mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new KeyFileError(`cannot lock ${dir}: ${(err as Error).message}`);
      const stat = await fs.stat(lock).catch(() => undefined);
      if (stat && Date.now() - stat.mtimeMs > LOCK_STALE_MS) await fs.rm(lock, { force: true });
      if (attempt > attempts) throw new KeyFileError(`${lock} is held by another process`);
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }
  try {
    return await work();
  } finally {
    await fs.rm(lock, { force: true });
  }
}
