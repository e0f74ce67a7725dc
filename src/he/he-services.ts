/**
 * Builds `services.he` at start-up: checks the Paillier primitives (`selfTest`: Veil refuses to
 * start if OpenSSL's modexp misbehaves as used), loads or generates the HE key ring, starts the
 * randomness pool on the active key and re-reads the store every KEYS_RELOAD_SECONDS so rotations
 * from any process reach this one.
 */
import type { VeilConfig } from '../config.js';
import type { Envelope } from '../crypto/master-key.js';
import { VeilError } from '../errors/veil-error.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import { errorFields, type Logger } from '../observability/logger.js';
import type { Database } from '../store/database.js';
import { SECURITY_BITS, selfTest } from '@veil/resource-server/paillier';
import { HeEncryptor } from './he-encryptor.js';
import { openHeKeyStore, type HeKeyStore } from './he-key-store.js';
import { loadOrCreateHeKeys, type HeKeyRing } from './he-keys.js';
import { RandomnessPool } from './randomness-pool.js';

export interface HeServices {
  keys: HeKeyRing;
  encryptor: HeEncryptor;
  pool: RandomnessPool;
  store: HeKeyStore;
  /** Re-reads the store now (after a rotation in this process); the timer does it otherwise. */
  refresh(): Promise<void>;
}

/** The Paillier self-test failed: this build of Node/OpenSSL cannot be trusted with HE claims. */
export class HeSelfTestError extends VeilError {
  constructor(message: string) {
    super('key_error', message);
  }
}

export async function buildHeServices(deps: { config: VeilConfig; logger: Logger; database: Database; envelope: Envelope; cleanup: CleanupStack }): Promise<HeServices> {
  const { config, logger, database, envelope, cleanup } = deps;
  try {
    selfTest();
  } catch (err) {
    throw new HeSelfTestError(
      `refusing to start: ${(err as Error).message} (OpenSSL's modular exponentiation as reached through node:crypto's Diffie-Hellman API gave a wrong answer)`,
    );
  }
  const store = openHeKeyStore(config, database);
  const { ring, created } = await loadOrCreateHeKeys(store, envelope, config.he.keyBits);
  if (created) logger.info({ kid: created.kid, bits: created.bits, securityBits: SECURITY_BITS[created.bits], keyStore: store.name }, 'generated the HE (Paillier) key');
  const pool = new RandomnessPool({ size: config.he.poolSize, workers: config.he.poolWorkers, mode: config.he.randomness });
  cleanup.push(() => pool.close());
  const follow = () => pool.use(ring.secret(ring.active().kid)!);
  follow();
  const refresh = async () => {
    if (await ring.refresh(store, envelope)) follow();
  };
  const timer = setInterval(() => {
    refresh().catch((err: unknown) => logger.warn({ err: errorFields(err) }, 'cannot re-read the HE keys; keeping the ones loaded'));
  }, config.keysReloadSeconds * 1000);
  timer.unref();
  cleanup.push(() => clearInterval(timer));
  return { keys: ring, encryptor: new HeEncryptor(ring, pool), pool, store, refresh };
}
