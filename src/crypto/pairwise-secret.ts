/**
 * The secret behind pairwise subjects (oidc/pairwise-subjects.ts): 32 random bytes generated at
 * the first start and kept for the life of the deployment, because every API and pairwise client
 * keys its users by the subjects it yields. It is stored where the key ring lives (KEYS_STORE),
 * sealed under the master key (purpose pairwise-subjects), never in plain; rotating the master key
 * re-seals it and leaves it unchanged. The stores keep only the sealed value; sealing and opening
 * are here.
 */
import { randomBytes } from 'node:crypto';
import type { KeyStore } from './key-store.js';
import { KeyFileError } from './keys.js';
import type { Envelope } from './master-key.js';

const PURPOSE = 'pairwise-subjects';
// The same context in KEYS_DIR and PostgreSQL, so `keys migrate-to-database` moves the sealed value as it is.
const CONTEXT = 'pairwise-secret';
const SECRET_BYTES = 32;

export function sealPairwiseSecret(secret: Buffer, envelope: Envelope): string {
  return envelope.seal(secret.toString('base64url'), PURPOSE, CONTEXT);
}

/** The secret a sealed value holds; `where` names the store in the error a wrong master key gives. */
export function openPairwiseSecret(where: string, sealed: string, envelope: Envelope): Buffer {
  let encoded: string;
  try {
    encoded = envelope.open(sealed, PURPOSE, CONTEXT);
  } catch (err) {
    throw new KeyFileError(
      `${where}: the pairwise-subject secret cannot be decrypted with the configured master key (VEIL_MASTER_KEY or VEIL_MASTER_KEY_FILE): ${(err as Error).message}`,
    );
  }
  const secret = Buffer.from(encoded, 'base64url');
  if (secret.length !== SECRET_BYTES) throw new KeyFileError(`${where}: the stored pairwise-subject secret is malformed`);
  return secret;
}

/** The deployment's secret: the stored one, or a new random one stored first (the store's lock makes processes starting at once agree). */
export async function loadOrCreatePairwiseSecret(store: KeyStore, envelope: Envelope): Promise<{ secret: Buffer; created: boolean }> {
  let created = false;
  const sealed = await store.sealedPairwiseSecret(() => {
    created = true;
    return sealPairwiseSecret(randomBytes(SECRET_BYTES), envelope);
  });
  return { secret: openPairwiseSecret(store.name, sealed, envelope), created };
}

/** `veil keys rotate-master`: the same secret sealed under the current master key; how many values changed (0 or 1). */
export function resealPairwiseSecret(store: KeyStore, envelope: Envelope): Promise<number> {
  return store.resealPairwiseSecret((sealed) => (envelope.isStale(sealed) ? sealPairwiseSecret(openPairwiseSecret(store.name, sealed, envelope), envelope) : undefined));
}
