/**
 * The steps start-up takes once per deployment state, shared by a single process
 * (src/app.ts) and the cluster primary (src/cluster.ts), in the same order: migrations, then
 * the master key, the signing key ring and the cookie keys in KEYS_DIR.
 */
import type { VeilConfig } from './config.js';
import { loadOrCreateKeyRing, type LoadResult } from './crypto/key-ring.js';
import { loadOrCreateCookieKeys } from './crypto/keys.js';
import { Envelope, loadMasterKeys } from './crypto/master-key.js';
import type { Logger } from './observability/logger.js';
import { reachDatabase, type Database } from './store/database.js';
import { migrate, readMigrations } from './store/migrator.js';

export async function applyMigrations(database: Database, logger: Logger): Promise<void> {
  const runner = await reachDatabase(() => database.openSqlRunner());
  try {
    const result = await migrate(runner, await readMigrations());
    if (result.applied.length) logger.info({ applied: result.applied }, 'database migrations applied');
  } finally {
    await runner.close();
  }
}

export interface KeyMaterial {
  envelope: Envelope;
  keyRing: LoadResult;
  cookieKeys: string[];
}

export async function loadKeyMaterial(config: VeilConfig, logger: Logger): Promise<KeyMaterial> {
  const master = await loadMasterKeys({ env: config.masterKey.value, file: config.masterKey.file, keysDir: config.keysDir, production: config.production });
  if (master.created) logger.warn({ file: master.origin }, 'generated a development master key; production needs VEIL_MASTER_KEY or VEIL_MASTER_KEY_FILE');
  const envelope = new Envelope(master.keys);
  const keyRing = await loadOrCreateKeyRing(config.keysDir, envelope);
  if (keyRing.created) logger.info({ keysDir: config.keysDir, kids: keyRing.ring.live().map((k) => k.kid) }, 'generated signing keys');
  if (keyRing.upgraded) logger.info({ keysDir: config.keysDir }, 'signing keys sealed under the master key (key ring format)');
  const cookieKeys = config.cookieKeys ?? (await loadOrCreateCookieKeys(config.keysDir));
  return { envelope, keyRing, cookieKeys };
}
