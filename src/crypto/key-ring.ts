/**
 * Veil's signing keys and their lifecycle, kept in a KeyStore (KEYS_DIR/signing-keys.json or
 * PostgreSQL, see key-store.ts) with every private part encrypted under the master key.
 *
 *   next      published in the JWKS, signs nothing yet: relying parties and resource servers
 *             that cache the JWKS already know it when it starts signing
 *   active    signs (one per algorithm), published
 *   retiring  signs nothing, still published until everything it signed has expired
 *             (`retire_after`), then dropped
 *
 * `rotate` moves each algorithm one step: next -> active, active -> retiring, and a new next.
 * Every change runs under the store's write lock (`KeyStore.update`), so concurrent rotations
 * from any process or host serialize and readers never see half a ring.
 */
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import type { KeyStore } from './key-store.js';
import { KeyFileError, shortThumbprint, type SigningJwk } from './keys.js';
import type { Envelope } from './master-key.js';
import { DEFAULT_SIGNING_ALGORITHMS, SIGNING_ALGORITHMS as SUPPORTED_SIGNING_ALGORITHMS } from './algorithms.js';

/** RS256 first: the default ID token algorithm every relying party supports. ES256 signs access tokens. */
export { DEFAULT_SIGNING_ALGORITHMS, SUPPORTED_SIGNING_ALGORITHMS };
export type SigningAlgorithm = (typeof SUPPORTED_SIGNING_ALGORITHMS)[number];

export type KeyStatus = 'next' | 'active' | 'retiring';

export interface RingKey {
  kid: string;
  alg: SigningAlgorithm;
  status: KeyStatus;
  created_at: string;
  activated_at?: string;
  /** When a retiring key leaves the JWKS (everything it signed has expired by then). */
  retire_after?: string;
  public: JWK;
  /** The private JWK, sealed under the master key (Envelope, purpose signing-keys, context kid). */
  private: string;
}

export interface KeyRingFile {
  version: 2;
  keys: RingKey[];
}

const STATUS_ORDER: Record<KeyStatus, number> = { active: 0, next: 1, retiring: 2 };

async function generate(alg: SigningAlgorithm, envelope: Envelope, status: KeyStatus, now: Date): Promise<RingKey> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg.startsWith('RS') || alg.startsWith('PS') ? { modulusLength: 2048 } : {}) });
  const jwk = await exportJWK(privateKey);
  const kid = await shortThumbprint(jwk);
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk;
  return {
    kid,
    alg,
    status,
    created_at: now.toISOString(),
    ...(status === 'active' ? { activated_at: now.toISOString() } : {}),
    public: { ...pub, kid, alg, use: 'sig' },
    private: envelope.seal(JSON.stringify({ ...jwk, kid, alg, use: 'sig' }), 'signing-keys', kid),
  };
}

export class KeyRing {
  constructor(readonly file: KeyRingFile) {}

  get keys(): readonly RingKey[] {
    return this.file.keys;
  }

  /** Keys still published at `now` (retiring keys past their date are gone). */
  live(now = new Date()): RingKey[] {
    return this.file.keys
      .filter((k) => k.status !== 'retiring' || !k.retire_after || new Date(k.retire_after) > now)
      .sort((a, b) => STATUS_ORDER[a.status] - STATUS_ORDER[b.status]);
  }

  /**
   * The private JWKs for oidc-provider, active keys first. Keys that must not sign are marked
   * `key_ops: ["verify"]`, which oidc-provider's key selection honours.
   */
  signingJwks(envelope: Envelope, now = new Date()): SigningJwk[] {
    return this.live(now).map((k) => {
      const jwk = JSON.parse(envelope.open(k.private, 'signing-keys', k.kid)) as SigningJwk;
      return k.status === 'active' ? jwk : { ...jwk, key_ops: ['verify'] };
    });
  }

  publicJwks(now = new Date()): { keys: JWK[] } {
    return { keys: this.live(now).map((k) => k.public) };
  }

  active(alg: string): RingKey | undefined {
    return this.file.keys.find((k) => k.alg === alg && k.status === 'active');
  }
}

export function assertKeyRing(file: string, value: unknown): KeyRingFile {
  const ring = value as KeyRingFile;
  if (ring?.version !== 2 || !Array.isArray(ring.keys)) throw new KeyFileError(`${file} is not a Veil key ring (version 2)`);
  for (const k of ring.keys) {
    if (
      typeof k?.kid !== 'string' ||
      typeof k.alg !== 'string' ||
      !['next', 'active', 'retiring'].includes(k.status) ||
      typeof k.private !== 'string' ||
      typeof k.public !== 'object'
    ) {
      throw new KeyFileError(`${file} holds a malformed key entry`);
    }
  }
  return ring;
}

/** The same keys in the same states: what `veil keys migrate-to-database` accepts as already moved. */
export function sameRing(a: KeyRingFile, b: KeyRingFile): boolean {
  const summary = (ring: KeyRingFile) =>
    ring.keys
      .map((k) => [k.kid, k.alg, k.status, k.retire_after ? Date.parse(k.retire_after) : ''].join(' '))
      .sort()
      .join('\n');
  return summary(a) === summary(b);
}

/** Converts the first format (plain private JWKs) to a key ring with sealed private parts. */
function fromPlainKeys(keys: SigningJwk[], envelope: Envelope, now: Date): KeyRingFile {
  return {
    version: 2,
    keys: keys.map((jwk) => {
      const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk;
      return {
        kid: jwk.kid,
        alg: jwk.alg as SigningAlgorithm,
        status: 'active' as const,
        created_at: now.toISOString(),
        activated_at: now.toISOString(),
        public: pub,
        private: envelope.seal(JSON.stringify(jwk), 'signing-keys', jwk.kid),
      };
    }),
  };
}

export interface LoadResult {
  ring: KeyRing;
  created: boolean;
  /** The file held plain private keys and was converted (sealed) in place. */
  upgraded: boolean;
}

/**
 * Loads the key ring, creating it (an active and a next key per algorithm) on first start.
 * A file in the first format (plain private JWKs) is sealed in place. A ring the master key
 * cannot open stops start-up, before anything is written.
 */
export async function loadOrCreateKeyRing(store: KeyStore, envelope: Envelope, now = new Date()): Promise<LoadResult> {
  const existing = await store.read();
  if (existing) {
    checkOpens(store.name, existing, envelope);
    return { ring: new KeyRing(existing), created: false, upgraded: false };
  }
  return store.update<LoadResult>(async (again, firstFormat) => {
    if (again) {
      checkOpens(store.name, again, envelope);
      return { result: { ring: new KeyRing(again), created: false, upgraded: false } };
    }
    if (firstFormat) {
      const ring = fromPlainKeys(firstFormat, envelope, now);
      for (const alg of new Set(ring.keys.map((k) => k.alg))) ring.keys.push(await generate(alg, envelope, 'next', now));
      return { write: ring, result: { ring: new KeyRing(ring), created: false, upgraded: true } };
    }
    const keys: RingKey[] = [];
    for (const alg of DEFAULT_SIGNING_ALGORITHMS) {
      keys.push(await generate(alg, envelope, 'active', now), await generate(alg, envelope, 'next', now));
    }
    const ring: KeyRingFile = { version: 2, keys };
    return { write: ring, result: { ring: new KeyRing(ring), created: true, upgraded: false } };
  });
}

/** A wrong master key must stop start-up with a message naming it, before anything is written. */
export function checkOpens(where: string, ring: KeyRingFile, envelope: Envelope): void {
  for (const k of ring.keys) {
    try {
      envelope.open(k.private, 'signing-keys', k.kid);
    } catch (err) {
      throw new KeyFileError(`${where}: key ${k.kid} cannot be decrypted with the configured master key (VEIL_MASTER_KEY or VEIL_MASTER_KEY_FILE): ${(err as Error).message}`);
    }
  }
}

export async function readKeyRing(store: KeyStore): Promise<KeyRing | undefined> {
  const ring = await store.read();
  return ring && new KeyRing(ring);
}

export interface RotateOptions {
  /** Algorithms to rotate; all that have keys when omitted. */
  algs?: string[];
  /** How long a retired-from-signing key stays published: the longest lifetime of anything it signed. */
  graceSeconds: number;
  now?: Date;
}

/** next -> active, active -> retiring (published for `graceSeconds`), new next; per algorithm. */
export async function rotateKeys(store: KeyStore, envelope: Envelope, options: RotateOptions): Promise<{ ring: KeyRing; activated: RingKey[] }> {
  return store.update(async (current) => {
    if (!current) throw new KeyFileError(`${store.name} holds no key ring yet: start Veil once to create it`);
    const now = options.now ?? new Date();
    const algs = options.algs?.length ? options.algs : [...new Set(current.keys.map((k) => k.alg))];
    for (const alg of algs) {
      if (!(SUPPORTED_SIGNING_ALGORITHMS as readonly string[]).includes(alg)) throw new KeyFileError(`unsupported algorithm ${alg}`);
    }
    const keys = new KeyRing(current).live(now);
    const activated: RingKey[] = [];
    for (const alg of algs as SigningAlgorithm[]) {
      for (const k of keys.filter((x) => x.alg === alg && x.status === 'active')) {
        k.status = 'retiring';
        k.retire_after = new Date(now.getTime() + options.graceSeconds * 1000).toISOString();
      }
      const next = keys.find((x) => x.alg === alg && x.status === 'next') ?? (await generate(alg, envelope, 'next', now));
      if (!keys.includes(next)) keys.push(next);
      next.status = 'active';
      next.activated_at = now.toISOString();
      activated.push(next);
      keys.push(await generate(alg, envelope, 'next', now));
    }
    const ring: KeyRingFile = { version: 2, keys };
    return { write: ring, result: { ring: new KeyRing(ring), activated } };
  });
}

/** Drops a retiring key from the JWKS now. Refused for active and next keys, and before its date unless forced. */
export async function retireKey(store: KeyStore, kid: string, options: { force?: boolean; now?: Date } = {}): Promise<KeyRing> {
  return store.update(async (current) => {
    const key = current?.keys.find((k) => k.kid === kid);
    if (!current || !key) throw new KeyFileError(`no key ${kid}`);
    if (key.status !== 'retiring') throw new KeyFileError(`key ${kid} is ${key.status}; only retiring keys can be retired (rotate first)`);
    const now = options.now ?? new Date();
    if (!options.force && key.retire_after && new Date(key.retire_after) > now) {
      throw new KeyFileError(`key ${kid} may still verify tokens until ${key.retire_after}; pass --force to retire it now`);
    }
    const ring: KeyRingFile = { version: 2, keys: current.keys.filter((k) => k.kid !== kid) };
    return { write: ring, result: new KeyRing(ring) };
  });
}

/** Re-seals every private key under the current master key (after a master key rotation). */
export async function resealKeyRing(store: KeyStore, envelope: Envelope): Promise<number> {
  return store.update(async (current) => {
    if (!current) return { result: 0 };
    let changed = 0;
    for (const k of current.keys) {
      if (!envelope.isStale(k.private)) continue;
      k.private = envelope.seal(envelope.open(k.private, 'signing-keys', k.kid), 'signing-keys', k.kid);
      changed++;
    }
    return { write: changed ? current : undefined, result: changed };
  });
}
