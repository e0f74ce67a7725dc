/**
 * Where the signing-key ring, the generated cookie keys and the sealed pairwise-subject secret
 * live (KEYS_STORE): files in KEYS_DIR (key-store-file.ts) or rows in PostgreSQL
 * (key-store-database.ts), sealed under the master key
 * the same way in both. Everything that reads or changes the ring (start-up, the key watcher,
 * the provider host's reload, the admin API, the CLI) goes through a KeyStore; the lifecycle
 * rules themselves (create, rotate, retire, re-seal) are in key-ring.ts.
 */
import type { VeilConfig } from '../config.js';
import type { Database } from '../store/database.js';
import type { KeyRingFile } from './key-ring.js';
import type { SigningJwk } from './keys.js';
import type { Envelope } from './master-key.js';

/** What a change decides: the ring to write (nothing when undefined) and what to hand back. */
export interface RingChange<T> {
  write?: KeyRingFile;
  result: T;
}

export interface KeyStore {
  readonly kind: 'file' | 'database';
  /** Names the ring in messages and logs: the file, or KEYS_STORE=database. */
  readonly name: string;
  /** The ring, or undefined before the first start created it. */
  read(): Promise<KeyRingFile | undefined>;
  /**
   * Runs `change` on the current ring holding the store's write lock (KEYS_DIR's lock file, or
   * the ring's row lock in PostgreSQL) and writes what it returns atomically: concurrent
   * changes from any process or host serialize, and readers never see half a ring.
   * `firstFormat`: a file of plain private keys from before the ring format (file store only).
   */
  update<T>(change: (current: KeyRingFile | undefined, firstFormat?: SigningJwk[]) => Promise<RingChange<T>>): Promise<T>;
  /** A cheap value that changes whenever the ring does: what the key watcher polls. */
  fingerprint(): Promise<string | undefined>;
  /** The generated cookie keys (when COOKIE_KEYS is unset), created on first use. */
  cookieKeys(): Promise<string[]>;
  /** Re-seals stored cookie keys under the current master key; how many values changed. */
  resealCookieKeys(): Promise<number>;
  /**
   * The pairwise-subject secret as stored (sealed; pairwise-secret.ts seals and opens it). When
   * none is stored, stores `create()`'s value under the write lock unless another process did
   * first: every process gets the one value stored.
   */
  sealedPairwiseSecret(create: () => string): Promise<string>;
  /** Under the write lock, replaces the stored secret with `reseal(it)` when that gives a value; how many values changed. */
  resealPairwiseSecret(reseal: (sealed: string) => string | undefined): Promise<number>;
}

/**
 * The configured store. The database store is probed here, so a keys table that is missing or
 * unreachable stops start-up (and the CLI) with a message naming KEYS_STORE.
 */
export async function openKeyStore(config: Pick<VeilConfig, 'keysStore' | 'keysDir'>, database: Database, envelope: Envelope): Promise<KeyStore> {
  if (config.keysStore === 'file') {
    const { FileKeyStore } = await import('./key-store-file.js');
    return new FileKeyStore(config.keysDir);
  }
  const { DatabaseKeyStore } = await import('./key-store-database.js');
  return DatabaseKeyStore.open(database, envelope);
}
