/**
 * KEYS_STORE=file: the ring in KEYS_DIR/signing-keys.json, the cookie keys in
 * KEYS_DIR/cookie-keys.json, the sealed pairwise-subject secret in KEYS_DIR/pairwise-secret.json.
 * A change is written to a temporary file and renamed into place under a lock file, so
 * concurrent changes serialize and readers never see half a file.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { withLockFile } from './lock-file.js';
import { assertKeyRing, type KeyRingFile } from './key-ring.js';
import type { KeyStore, RingChange } from './key-store.js';
import { KeyFileError, SIGNING_KEYS_FILE, assertSigningKeys, loadOrCreateCookieKeys, readJsonIfPresent, type SigningJwk } from './keys.js';

export const PAIRWISE_SECRET_FILE = 'pairwise-secret.json';

type OnDisk = { kind: 'ring'; ring: KeyRingFile } | { kind: 'plain'; keys: SigningJwk[] } | undefined;

export class FileKeyStore implements KeyStore {
  readonly kind = 'file';
  readonly name: string;
  readonly #file: string;
  readonly #pairwiseFile: string;

  constructor(private readonly keysDir: string) {
    this.#file = path.join(keysDir, SIGNING_KEYS_FILE);
    this.#pairwiseFile = path.join(keysDir, PAIRWISE_SECRET_FILE);
    this.name = this.#file;
  }

  /** A file of the first format reads as no ring: start-up seals it (`update`). */
  async read(): Promise<KeyRingFile | undefined> {
    const onDisk = await this.#readOnDisk();
    return onDisk?.kind === 'ring' ? onDisk.ring : undefined;
  }

  async update<T>(change: (current: KeyRingFile | undefined, firstFormat?: SigningJwk[]) => Promise<RingChange<T>>): Promise<T> {
    await fs.mkdir(this.keysDir, { recursive: true, mode: 0o700 });
    return this.#withLock(async () => {
      const onDisk = await this.#readOnDisk();
      const { write, result } = await change(onDisk?.kind === 'ring' ? onDisk.ring : undefined, onDisk?.kind === 'plain' ? onDisk.keys : undefined);
      if (write) await this.#write(write);
      return result;
    });
  }

  async fingerprint(): Promise<string | undefined> {
    try {
      const stat = await fs.stat(this.#file);
      return `${stat.mtimeMs}:${stat.size}:${stat.ino}`;
    } catch {
      return undefined;
    }
  }

  cookieKeys(): Promise<string[]> {
    return loadOrCreateCookieKeys(this.keysDir);
  }

  /** The cookie-keys file is not sealed (it lives beside the master key). */
  async resealCookieKeys(): Promise<number> {
    return 0;
  }

  /** The sealed pairwise-subject secret in KEYS_DIR, or undefined before the first start stored one. */
  async readSealedPairwiseSecret(): Promise<string | undefined> {
    const parsed = (await readJsonIfPresent(this.#pairwiseFile)) as { version?: unknown; sealed?: unknown } | undefined;
    if (parsed === undefined) return undefined;
    if (parsed?.version !== 1 || typeof parsed.sealed !== 'string' || !/^v[12]\./.test(parsed.sealed)) {
      throw new KeyFileError(`${this.#pairwiseFile} must hold {"version": 1, "sealed": "<a value sealed under the master key>"}`);
    }
    return parsed.sealed;
  }

  async sealedPairwiseSecret(create: () => string): Promise<string> {
    const stored = await this.readSealedPairwiseSecret();
    if (stored) return stored;
    await fs.mkdir(this.keysDir, { recursive: true, mode: 0o700 });
    return this.#withLock(async () => {
      const again = await this.readSealedPairwiseSecret();
      if (again) return again;
      const sealed = create();
      await this.#writeJson(this.#pairwiseFile, { version: 1, sealed });
      return sealed;
    });
  }

  async resealPairwiseSecret(reseal: (sealed: string) => string | undefined): Promise<number> {
    if (!(await this.readSealedPairwiseSecret())) return 0;
    return this.#withLock(async () => {
      const current = await this.readSealedPairwiseSecret();
      const sealed = current && reseal(current);
      if (!sealed) return 0;
      await this.#writeJson(this.#pairwiseFile, { version: 1, sealed });
      return 1;
    });
  }

  async #readOnDisk(): Promise<OnDisk> {
    const parsed = (await readJsonIfPresent(this.#file)) as { version?: unknown } | undefined;
    if (parsed === undefined) return undefined;
    if (parsed?.version === 2) return { kind: 'ring', ring: assertKeyRing(this.#file, parsed) };
    return { kind: 'plain', keys: assertSigningKeys(this.#file, parsed) };
  }

  async #write(ring: KeyRingFile): Promise<void> {
    await this.#writeJson(this.#file, ring);
  }

  async #writeJson(file: string, data: unknown): Promise<void> {
    const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    await fs.writeFile(tmp, `${JSON.stringify(data, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    await fs.rename(tmp, file);
  }

  /** Runs `change` holding KEYS_DIR's lock file, so two changes never interleave. */
  async #withLock<T>(change: () => Promise<T>): Promise<T> {
    return withLockFile(path.join(this.keysDir, 'signing-keys.lock'), this.keysDir, 200, change);
  }
}
