/**
 * The steps start-up takes once per deployment state, shared by a single process
 * (src/app.ts) and the cluster primary (src/cluster.ts), in the same order: migrations, then
 * the master key, the key store (KEYS_STORE: KEYS_DIR or PostgreSQL) with the signing key ring,
 * the cookie keys and the pairwise-subject secret, and the admin token in KEYS_DIR.
 */
import { loadOrCreateAdminToken } from './admin/admin-token.js';
import type { VeilConfig } from './config.js';
import { loadOrCreateKeyRing, type LoadResult } from './crypto/key-ring.js';
import { openKeyStore, type KeyStore } from './crypto/key-store.js';
import { Envelope, loadMasterKeys } from './crypto/master-key.js';
import { loadOrCreatePairwiseSecret } from './crypto/pairwise-secret.js';
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
  /** Where the ring lives (KEYS_STORE); the provider host, the key watcher and the admin API use it. */
  keyStore: KeyStore;
  keyRing: LoadResult;
  cookieKeys: string[];
  /** The pairwise-subject secret (crypto/pairwise-secret.ts): the same for the life of the deployment. */
  pairwiseSecret: Buffer;
  /** ADMIN_TOKEN / ADMIN_TOKEN_FILE, else KEYS_DIR/admin-token (created at the first start). */
  adminToken: string;
}

/** `database` holds the ring with KEYS_STORE=database; nothing is read from it otherwise. */
export async function loadKeyMaterial(config: VeilConfig, logger: Logger, database: Database): Promise<KeyMaterial> {
  const master = await loadMasterKeys({ env: config.masterKey.value, file: config.masterKey.file, keysDir: config.keysDir, production: config.production });
  if (master.created) logger.warn({ file: master.origin }, 'generated a development master key; production needs VEIL_MASTER_KEY or VEIL_MASTER_KEY_FILE');
  const envelope = new Envelope(master.keys);
  const keyStore = await openKeyStore(config, database, envelope);
  const keyRing = await loadOrCreateKeyRing(keyStore, envelope);
  if (keyRing.created) logger.info({ keyStore: keyStore.name, kids: keyRing.ring.live().map((k) => k.kid) }, 'generated signing keys');
  if (keyRing.upgraded) logger.info({ keyStore: keyStore.name }, 'signing keys sealed under the master key (key ring format)');
  const cookieKeys = config.cookieKeys ?? (await keyStore.cookieKeys());
  const pairwise = await loadOrCreatePairwiseSecret(keyStore, envelope);
  if (pairwise.created) logger.info({ keyStore: keyStore.name }, 'generated the pairwise-subject secret');
  let adminToken = config.admin.token;
  if (adminToken === undefined) {
    const generated = await loadOrCreateAdminToken(config.keysDir);
    // The file's name only, never its content.
    if (generated.created) logger.info({ file: generated.file }, 'generated the admin API token (the veil CLI on this machine reads it from there)');
    adminToken = generated.token;
  }
  return { envelope, keyStore, keyRing, cookieKeys, pairwiseSecret: pairwise.secret, adminToken };
}
