/**
 * KEYS_STORE=database: the ring, the generated cookie keys and the pairwise-subject secret in PostgreSQL
 * (store/signing-keys.ts), so any number of hosts share them with no shared volume. Private
 * keys stay sealed exactly as in the files (the same sealed values move between the two);
 * the cookie keys, plain in KEYS_DIR, are sealed here. Changes take the ring's row lock; the
 * ring's version is what each process polls.
 */
import { randomBytes } from 'node:crypto';
import { StoreUnavailableError } from '../store/errors.js';
import type { Database } from '../store/database.js';
import { SigningKeyRepository, type StoredKeyRing } from '../store/signing-keys.js';
import { sameRing, type KeyRingFile } from './key-ring.js';
import type { KeyStore, RingChange } from './key-store.js';
import { KeyFileError } from './keys.js';
import type { Envelope } from './master-key.js';
import { openPairwiseSecret } from './pairwise-secret.js';
import { PAIRWISE_SECRET_FILE } from './key-store-file.js';

const NAME = 'KEYS_STORE=database';
// Cookie keys are sealed with the signing keys' purpose under a context no kid can take.
const COOKIE_CONTEXT = 'cookie-keys';
const NOT_INITIALISED = `${NAME}: the key tables (signing_keys, key_ring_state) are missing or empty in the database; apply the migrations (VEIL_MIGRATE_ON_START=true or \`veil migrate\`)`;

/** What `adopt` did with a ring from KEYS_DIR. */
export interface AdoptResult {
  ring: 'copied' | 'unchanged';
  cookieKeys: 'copied' | 'unchanged' | 'none';
  pairwiseSecret: 'copied' | 'unchanged' | 'none';
}

export class DatabaseKeyStore implements KeyStore {
  readonly kind = 'database';
  readonly name = NAME;

  private constructor(
    private readonly repo: SigningKeyRepository,
    private readonly envelope: Envelope,
  ) {}

  /** Opens the store, refusing with a message naming KEYS_STORE when its tables cannot be read. */
  static async open(database: Database, envelope: Envelope): Promise<DatabaseKeyStore> {
    const repo = new SigningKeyRepository(database.prisma);
    let version: number | undefined;
    try {
      version = await repo.version();
    } catch (err) {
      if (err instanceof StoreUnavailableError) throw new KeyFileError(`${NAME}: PostgreSQL cannot be reached (${causeOf(err)}); check DATABASE_URL`);
      if ((err as { code?: string }).code === 'P2021') throw new KeyFileError(NOT_INITIALISED);
      throw new KeyFileError(`${NAME}: cannot read the key tables (${(err as Error).message})`);
    }
    if (version === undefined) throw new KeyFileError(NOT_INITIALISED);
    return new DatabaseKeyStore(repo, envelope);
  }

  async read(): Promise<KeyRingFile | undefined> {
    return ringOf(await this.repo.read());
  }

  update<T>(change: (current: KeyRingFile | undefined) => Promise<RingChange<T>>): Promise<T> {
    return this.repo.locked(async (stored) => {
      if (!stored) throw new KeyFileError(NOT_INITIALISED);
      const { write, result } = await change(ringOf(stored));
      return { write: write && { keys: write.keys }, result };
    });
  }

  async fingerprint(): Promise<string | undefined> {
    const version = await this.repo.version();
    return version === undefined ? undefined : `v${version}`;
  }

  async cookieKeys(): Promise<string[]> {
    const stored = await this.repo.read();
    if (stored?.sealedCookieKeys) return this.#openCookieKeys(stored.sealedCookieKeys);
    return this.repo.locked(async (current) => {
      if (!current) throw new KeyFileError(NOT_INITIALISED);
      if (current.sealedCookieKeys) return { result: this.#openCookieKeys(current.sealedCookieKeys) };
      const keys = [randomBytes(32).toString('base64url')];
      return { write: { sealedCookieKeys: this.#sealCookieKeys(keys) }, result: keys };
    });
  }

  resealCookieKeys(): Promise<number> {
    return this.repo.locked(async (current) => {
      if (!current?.sealedCookieKeys || !this.envelope.isStale(current.sealedCookieKeys)) return { result: 0 };
      return { write: { sealedCookieKeys: this.#sealCookieKeys(this.#openCookieKeys(current.sealedCookieKeys)) }, result: 1 };
    });
  }

  async sealedPairwiseSecret(create: () => string): Promise<string> {
    const stored = await this.repo.read();
    if (stored?.sealedPairwiseSecret) return stored.sealedPairwiseSecret;
    return this.repo.locked(async (current) => {
      if (!current) throw new KeyFileError(NOT_INITIALISED);
      if (current.sealedPairwiseSecret) return { result: current.sealedPairwiseSecret };
      const sealed = create();
      return { write: { sealedPairwiseSecret: sealed }, result: sealed };
    });
  }

  resealPairwiseSecret(reseal: (sealed: string) => string | undefined): Promise<number> {
    return this.repo.locked(async (current) => {
      const sealed = current?.sealedPairwiseSecret && reseal(current.sealedPairwiseSecret);
      return sealed ? { write: { sealedPairwiseSecret: sealed }, result: 1 } : { result: 0 };
    });
  }

  /**
   * Takes over a ring (and cookie keys, and the sealed pairwise-subject secret) from KEYS_DIR, in one transaction: copied when the
   * database holds none, accepted when it holds the same, refused (nothing written) when it
   * holds a different one. Never overwrites.
   */
  adopt(ring: KeyRingFile, cookieKeys: string[] | undefined, sealedPairwiseSecret?: string): Promise<AdoptResult> {
    return this.repo.locked(async (current) => {
      if (!current) throw new KeyFileError(NOT_INITIALISED);
      const held = ringOf(current);
      if (held && !sameRing(held, ring)) {
        throw new KeyFileError(
          `the database already holds a different signing-key ring (kids ${held.keys.map((k) => k.kid).join(', ')}; KEYS_DIR has ${ring.keys.map((k) => k.kid).join(', ')}); nothing was written. Hosts with KEYS_STORE=database already use it: keep it, or empty signing_keys by hand before moving this ring`,
        );
      }
      let cookie: AdoptResult['cookieKeys'] = 'none';
      if (cookieKeys && current.sealedCookieKeys) {
        const heldCookies = this.#openCookieKeys(current.sealedCookieKeys);
        if (heldCookies.join('\n') !== cookieKeys.join('\n')) {
          throw new KeyFileError('the database already holds different cookie keys than KEYS_DIR/cookie-keys.json; nothing was written');
        }
        cookie = 'unchanged';
      } else if (cookieKeys) {
        cookie = 'copied';
      }
      // The same secret keeps every pairwise subject: a different one held here would change them all.
      let pairwise: AdoptResult['pairwiseSecret'] = 'none';
      if (sealedPairwiseSecret && current.sealedPairwiseSecret) {
        const held = openPairwiseSecret(NAME, current.sealedPairwiseSecret, this.envelope);
        if (!held.equals(openPairwiseSecret('KEYS_DIR', sealedPairwiseSecret, this.envelope))) {
          throw new KeyFileError(`the database already holds a different pairwise-subject secret than KEYS_DIR/${PAIRWISE_SECRET_FILE}; nothing was written`);
        }
        pairwise = 'unchanged';
      } else if (sealedPairwiseSecret) {
        openPairwiseSecret('KEYS_DIR', sealedPairwiseSecret, this.envelope);
        pairwise = 'copied';
      }
      return {
        write: {
          ...(held ? {} : { keys: ring.keys }),
          ...(cookie === 'copied' ? { sealedCookieKeys: this.#sealCookieKeys(cookieKeys!) } : {}),
          ...(pairwise === 'copied' ? { sealedPairwiseSecret } : {}),
        },
        result: { ring: held ? 'unchanged' : 'copied', cookieKeys: cookie, pairwiseSecret: pairwise },
      };
    });
  }

  #sealCookieKeys(keys: string[]): string {
    return this.envelope.seal(JSON.stringify(keys), 'signing-keys', COOKIE_CONTEXT);
  }

  #openCookieKeys(sealed: string): string[] {
    let keys: unknown;
    try {
      keys = JSON.parse(this.envelope.open(sealed, 'signing-keys', COOKIE_CONTEXT));
    } catch (err) {
      throw new KeyFileError(`${NAME}: the cookie keys cannot be decrypted with the configured master key (VEIL_MASTER_KEY or VEIL_MASTER_KEY_FILE): ${(err as Error).message}`);
    }
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string' && k.length >= 32)) throw new KeyFileError(`${NAME}: the stored cookie keys are malformed`);
    return keys as string[];
  }
}

/** No keys stored means no ring yet (version 0, or every key deleted by hand). */
function ringOf(stored: StoredKeyRing | undefined): KeyRingFile | undefined {
  return stored && stored.keys.length ? { version: 2, keys: stored.keys } : undefined;
}

function causeOf(err: StoreUnavailableError): string {
  const cause = err.cause as { message?: string; code?: string } | undefined;
  return cause?.code ?? cause?.message ?? 'unavailable';
}
