/**
 * The Paillier key ring of confidential claims (issue 10). One key is active: the sealer encrypts
 * `hec` claims under it. `veil keys rotate --he` makes a new key active and retires the old one,
 * which stays (for decisions on tokens it encrypted, and in the JWKS) until every such token has
 * expired (`heKeyGraceSeconds`), then is dropped. Keys are generated at the first start when none
 * exists (3072 bits by default: about 128-bit security; HE_KEY_BITS=2048: about 112-bit).
 *
 * The secret half (p, q) is sealed under the master key (Envelope, purpose `signing-keys` as the
 * cookie keys do, context `he-key:<kid>`) in KEYS_DIR or PostgreSQL (he-key-store.ts); opened
 * here, it never leaves Veil's process. Every process re-reads the store every
 * KEYS_RELOAD_SECONDS (`refresh`), so a rotation reaches all of them without a restart.
 */
import { randomBytes } from 'node:crypto';
import { MAX_RESOURCE_ACCESS_TOKEN_TTL, type VeilConfig } from '../config.js';
import { KeyFileError } from '../crypto/keys.js';
import type { Envelope } from '../crypto/master-key.js';
import {
  generateKeyPairAsync,
  keyPairFromPrimes,
  publicJwk,
  publicKeyFromJwk,
  type PaillierKeyBits,
  type PaillierPublicJwk,
  type PaillierPublicKey,
  type PaillierSecretKey,
} from '@veil/resource-server/paillier';
import type { HeKeyStore, StoredHeKey } from './he-key-store.js';

const PURPOSE = 'signing-keys';
const context = (kid: string) => `he-key:${kid}`;

/** How long a retired HE key is kept: past the longest access-token (and companion token) life, + 60 s of clock slack. */
export function heKeyGraceSeconds(ttl: VeilConfig['ttl']): number {
  return Math.max(ttl.accessToken, MAX_RESOURCE_ACCESS_TOKEN_TTL) + 60;
}

interface OpenKey {
  publicKey: PaillierPublicKey;
  secretKey: PaillierSecretKey;
  retired: boolean;
  dropAfter: number | undefined;
}

export class HeKeyRing {
  #keys: OpenKey[];
  #fingerprint: string;

  constructor(
    keys: OpenKey[],
    fingerprint: string,
    private readonly now: () => number = Date.now,
  ) {
    this.#keys = keys;
    this.#fingerprint = fingerprint;
  }

  #live(): OpenKey[] {
    const now = this.now();
    return this.#keys.filter((k) => k.dropAfter === undefined || k.dropAfter > now);
  }

  /** The key new tokens are encrypted under. */
  active(): PaillierPublicKey {
    const key = this.#live().findLast((k) => !k.retired);
    if (!key) throw new KeyFileError('no active HE key');
    return key.publicKey;
  }

  /** The public key of a kid still kept (active or retiring), else undefined. */
  publicKey(kid: string): PaillierPublicKey | undefined {
    return this.#live().find((k) => k.publicKey.kid === kid)?.publicKey;
  }

  /** The secret key of a kid still kept; only Veil's own process ever holds it. */
  secret(kid: string): PaillierSecretKey | undefined {
    return this.#live().find((k) => k.publicKey.kid === kid)?.secretKey;
  }

  /** The public JWK Set served at `he_jwks_uri`: the active key first, then the retiring ones. */
  publicJwks(): { keys: PaillierPublicJwk[] } {
    const live = this.#live();
    return { keys: [...live.filter((k) => !k.retired).reverse(), ...live.filter((k) => k.retired).reverse()].map((k) => publicJwk(k.publicKey)) };
  }

  /** Replaces the ring with what the store holds now, reusing keys already opened. */
  async refresh(store: HeKeyStore, envelope: Envelope): Promise<boolean> {
    const stored = await store.read();
    const fingerprint = fingerprintOf(stored);
    if (fingerprint === this.#fingerprint) return false;
    const opened = new Map(this.#keys.map((k) => [k.publicKey.kid, k]));
    this.#keys = stored.map((s) => {
      const known = opened.get(s.kid);
      return known ? { ...known, retired: s.retired_at !== undefined, dropAfter: dropAfterOf(s) } : openKey(store.name, s, envelope);
    });
    this.#fingerprint = fingerprint;
    return true;
  }
}

const dropAfterOf = (s: StoredHeKey): number | undefined => (s.drop_after ? Date.parse(s.drop_after) : undefined);
const fingerprintOf = (stored: StoredHeKey[]): string => stored.map((s) => `${s.kid}:${s.retired_at ?? ''}:${s.drop_after ?? ''}:${s.sealed.slice(0, 12)}`).join('|');

function openKey(where: string, s: StoredHeKey, envelope: Envelope): OpenKey {
  let primes: { p: string; q: string };
  try {
    primes = JSON.parse(envelope.open(s.sealed, PURPOSE, context(s.kid))) as { p: string; q: string };
  } catch (err) {
    throw new KeyFileError(`${where}: HE key ${s.kid} cannot be opened with the configured master key (VEIL_MASTER_KEY or VEIL_MASTER_KEY_FILE): ${(err as Error).message}`);
  }
  const { publicKey, secretKey } = keyPairFromPrimes(BigInt(`0x${primes.p}`), BigInt(`0x${primes.q}`), s.kid);
  const published = publicKeyFromJwk({ kty: 'Paillier', kid: s.kid, alg: `Paillier-${s.bits}`, n: s.n });
  if (published.n !== publicKey.n) throw new KeyFileError(`${where}: HE key ${s.kid}: the sealed primes do not match its public modulus`);
  return { publicKey, secretKey, retired: s.retired_at !== undefined, dropAfter: dropAfterOf(s) };
}

function sealKey(secretKey: PaillierSecretKey, envelope: Envelope): string {
  return envelope.seal(JSON.stringify({ p: secretKey.p.toString(16), q: secretKey.q.toString(16) }), PURPOSE, context(secretKey.publicKey.kid));
}

async function newStoredKey(bits: PaillierKeyBits, envelope: Envelope, now: Date): Promise<StoredHeKey> {
  const kid = `he-${now.toISOString().slice(0, 10).replaceAll('-', '')}-${randomBytes(6).toString('base64url')}`;
  // The prime search runs on libuv's thread pool: the event loop keeps serving.
  const { publicKey, secretKey } = await generateKeyPairAsync(bits, kid);
  return { kid, bits, n: publicJwk(publicKey).n, sealed: sealKey(secretKey, envelope), created_at: now.toISOString() };
}

/** Keys whose tokens have all expired are dropped at every change. */
const prune = (keys: StoredHeKey[], now: Date): StoredHeKey[] => keys.filter((k) => !k.drop_after || Date.parse(k.drop_after) > now.getTime());

/** The ring, generating the first key when the store holds none (one process wins under the store's lock). */
export async function loadOrCreateHeKeys(store: HeKeyStore, envelope: Envelope, bits: PaillierKeyBits): Promise<{ ring: HeKeyRing; created: StoredHeKey | undefined }> {
  let stored = await store.read();
  let created: StoredHeKey | undefined;
  if (!stored.some((k) => !k.retired_at)) {
    // Generated outside the lock (seconds at 3072 bits); kept only if no other process won.
    const candidate = await newStoredKey(bits, envelope, new Date());
    created = await store.update(async (current) => {
      if (current.some((k) => !k.retired_at)) return { result: undefined };
      return { write: [...prune(current, new Date()), candidate], result: candidate };
    });
    stored = await store.read();
  }
  return {
    ring: new HeKeyRing(
      stored.map((s) => openKey(store.name, s, envelope)),
      fingerprintOf(stored),
    ),
    created,
  };
}

/** `veil keys rotate --he`: a new active key; the old one kept until `graceSeconds` after now. */
export async function rotateHeKey(
  store: HeKeyStore,
  envelope: Envelope,
  options: { bits: PaillierKeyBits; graceSeconds: number },
): Promise<{ activated: StoredHeKey; keys: StoredHeKey[] }> {
  const now = new Date();
  const fresh = await newStoredKey(options.bits, envelope, now);
  const dropAfter = new Date(now.getTime() + options.graceSeconds * 1000).toISOString();
  return store.update(async (current) => {
    const keys = [...prune(current, now).map((k) => (k.retired_at ? k : { ...k, retired_at: now.toISOString(), drop_after: dropAfter })), fresh];
    return { write: keys, result: { activated: fresh, keys } };
  });
}

/** `veil keys rotate-master`: re-seals every HE key under the current master key; how many changed. */
export async function resealHeKeys(store: HeKeyStore, envelope: Envelope): Promise<number> {
  return store.update(async (current) => {
    const stale = current.filter((k) => envelope.isStale(k.sealed));
    if (stale.length === 0) return { result: 0 };
    const keys = current.map((k) => (envelope.isStale(k.sealed) ? { ...k, sealed: envelope.seal(envelope.open(k.sealed, PURPOSE, context(k.kid)), PURPOSE, context(k.kid)) } : k));
    return { write: keys, result: stale.length };
  });
}
