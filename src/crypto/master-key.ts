/**
 * The master key protects Veil's secrets at rest: private signing keys in KEYS_DIR, client
 * secrets and personal data columns in PostgreSQL. It comes from VEIL_MASTER_KEY or the file
 * named by VEIL_MASTER_KEY_FILE; outside production a key file is generated in KEYS_DIR on
 * first start (production refuses to start without one).
 *
 * Several master keys may be given ("new,old") so that data sealed under the old one stays
 * readable while `veil keys rotate-master` re-encrypts it; the first is used to seal.
 * Each use derives its own key (HKDF-SHA256, one `purpose` per kind of data), and every
 * sealed value names the master key that sealed it: `v2.<masterId>.<salt>.<ciphertext>.<tag>`.
 *
 * v2 seals every value under a key of its own: HKDF-Expand of the purpose key with a 32-byte
 * random salt stored in the value gives the AES-256-GCM key (see #messageKey). One purpose key seals every Redis payload for
 * the life of the master key; with random 96-bit IVs under that one key, NIST SP 800-38D caps
 * it at 2^32 messages, which a busy issuer reaches in weeks. A 256-bit salt has no such limit.
 * v1 (`v1.<masterId>.<iv>.<ciphertext>.<tag>`, the purpose key itself) is still opened, and is
 * always stale, so `veil keys rotate-master` re-seals it as v2. Tags must be the full 16 bytes.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { VeilError } from '../errors/veil-error.js';

export const MASTER_KEY_FILE = 'master.key';

/** The master key is missing, malformed, or does not open a sealed value (never shown over HTTP). */
export class MasterKeyError extends VeilError {
  constructor(message: string) {
    super('master_key_error', message);
  }
}

export interface MasterKey {
  /** Short public id of the key (a hash prefix), stored with everything it seals. */
  id: string;
  secret: Buffer;
}

export type Purpose =
  | 'signing-keys'
  | 'client-secrets'
  | 'personal-data'
  | 'short-lived-store'
  /** The short-lived store's keyed hashes of ids: never the key that encrypts its payloads. */
  | 'short-lived-store-ids'
  /** Seals the pairwise-subject secret (crypto/pairwise-secret.ts). */
  | 'pairwise-subjects';

const TAG_BYTES = 16;
const SALT_BYTES = 32;
const NONCE_BYTES = 12;
// HKDF-Expand's first block counter: T(1) = HMAC(PRK, info || 0x01).
const EXPAND_BLOCK_1 = Buffer.from([1]);
const SEALED = /^v[12]\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+$/;

const keyId = (secret: Buffer) => createHash('sha256').update('veil master key id').update(secret).digest('base64url').slice(0, 8);

/** Parses "key[,key...]" (each base64url of 32 bytes). */
export function parseMasterKeys(value: string, origin: string): MasterKey[] {
  const keys = value
    .split(/[,\s]+/)
    .filter(Boolean)
    .map((encoded) => {
      const secret = Buffer.from(encoded, 'base64url');
      if (secret.length !== 32 || secret.toString('base64url') !== encoded.replace(/=+$/, '')) {
        throw new MasterKeyError(`${origin} must hold base64url-encoded 32-byte keys (generate one with: veil keys generate-master)`);
      }
      return { id: keyId(secret), secret };
    });
  if (keys.length === 0) throw new MasterKeyError(`${origin} is empty`);
  return keys;
}

export function generateMasterKey(): string {
  return randomBytes(32).toString('base64url');
}

export interface MasterKeySource {
  env?: string;
  file?: string;
  keysDir: string;
  production: boolean;
}

/** Loads the master keys; outside production, creates KEYS_DIR/master.key when none is configured. */
export async function loadMasterKeys(source: MasterKeySource): Promise<{ keys: MasterKey[]; origin: string; created: boolean }> {
  if (source.env) return { keys: parseMasterKeys(source.env, 'VEIL_MASTER_KEY'), origin: 'VEIL_MASTER_KEY', created: false };
  if (source.file) return { keys: await readKeyFile(source.file, 'VEIL_MASTER_KEY_FILE'), origin: source.file, created: false };
  if (source.production) throw new MasterKeyError('production needs a master key: set VEIL_MASTER_KEY or VEIL_MASTER_KEY_FILE');
  const file = path.join(source.keysDir, MASTER_KEY_FILE);
  try {
    return { keys: await readKeyFile(file, file), origin: file, created: false };
  } catch (err) {
    if (!(err instanceof MasterKeyError && err.message.includes('ENOENT'))) throw err;
  }
  await fs.mkdir(source.keysDir, { recursive: true, mode: 0o700 });
  try {
    await fs.writeFile(file, `${generateMasterKey()}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new MasterKeyError(`cannot write ${file}: ${(err as Error).message}`);
  }
  return { keys: await readKeyFile(file, file), origin: file, created: true };
}

async function readKeyFile(file: string, origin: string): Promise<MasterKey[]> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new MasterKeyError(`cannot read ${origin}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseMasterKeys(text.trim(), origin);
}

/** Authenticated encryption under the master key (AES-256-GCM), bound to a purpose and a context. */
export class Envelope {
  readonly #derived = new Map<string, Buffer>();
  readonly #byId: Map<string, MasterKey>;

  constructor(readonly keys: MasterKey[]) {
    if (keys.length === 0) throw new MasterKeyError('no master key');
    this.#byId = new Map(keys.map((k) => [k.id, k]));
  }

  get currentId(): string {
    return this.keys[0]!.id;
  }

  #key(master: MasterKey, purpose: Purpose): Buffer {
    const cacheKey = `${master.id}:${purpose}`;
    let key = this.#derived.get(cacheKey);
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', master.secret, Buffer.alloc(0), `veil ${purpose}`, 32));
      this.#derived.set(cacheKey, key);
    }
    return key;
  }

  /** The derived key of the i-th configured master key (0 = current), e.g. to key a hash. */
  keyForIndex(purpose: Purpose, index: number): Buffer {
    return this.#key(this.keys[index]!, purpose);
  }

  /**
   * The key and nonce of one v2 value. The key is HKDF-Expand (RFC 5869 §2.3) of the purpose key
   * (already a pseudorandom key, the output of HKDF) with info `veil <purpose> message` || 0 ||
   * salt: one HMAC-SHA256 block. Full HKDF (hkdfSync) costs about 18 µs a call here against 5 µs,
   * on the token-issuing hot path. Each key seals exactly one value, so the nonce only needs to be
   * distinct per key; it is the salt's first 12 bytes.
   */
  #messageKey(master: MasterKey, purpose: Purpose, salt: Buffer): { key: Buffer; nonce: Buffer } {
    const key = createHmac('sha256', this.#key(master, purpose)).update(`veil ${purpose} message\0`).update(salt).update(EXPAND_BLOCK_1).digest();
    return { key, nonce: salt.subarray(0, NONCE_BYTES) };
  }

  /** `context` binds the ciphertext to where it is stored (a row id, a key id): it cannot be moved. */
  seal(plaintext: string, purpose: Purpose, context = ''): string {
    const master = this.keys[0]!;
    const salt = randomBytes(SALT_BYTES);
    const { key, nonce } = this.#messageKey(master, purpose, salt);
    const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(`v2|${master.id}|${context}`));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return ['v2', master.id, salt.toString('base64url'), ciphertext.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
  }

  isSealed(value: unknown): value is string {
    return typeof value === 'string' && SEALED.test(value);
  }

  /** Whether a sealed value needs re-sealing: under an older master key, or in the v1 format. */
  isStale(sealed: string): boolean {
    const [version, id] = sealed.split('.');
    return version !== 'v2' || id !== this.currentId;
  }

  open(sealed: string, purpose: Purpose, context = ''): string {
    const [version, id, saltOrIv, ciphertext, tag, extra] = sealed.split('.');
    if ((version !== 'v1' && version !== 'v2') || !id || !saltOrIv || ciphertext === undefined || !tag || extra !== undefined) {
      throw new MasterKeyError('not a sealed value');
    }
    const master = this.#byId.get(id);
    if (!master) throw new MasterKeyError(`sealed under master key ${id}, which is not configured`);
    try {
      const authTag = Buffer.from(tag, 'base64url');
      // GCM would verify a truncated tag (down to 4 bytes): only the full tag is accepted.
      if (authTag.length !== TAG_BYTES) throw new MasterKeyError('bad tag length');
      let decipher;
      if (version === 'v2') {
        const { key, nonce } = this.#messageKey(master, purpose, Buffer.from(saltOrIv, 'base64url'));
        decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
        decipher.setAAD(Buffer.from(`v2|${master.id}|${context}`));
      } else {
        decipher = createDecipheriv('aes-256-gcm', this.#key(master, purpose), Buffer.from(saltOrIv, 'base64url'), { authTagLength: TAG_BYTES });
        decipher.setAAD(Buffer.from(`${master.id}|${context}`));
      }
      decipher.setAuthTag(authTag);
      return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      throw new MasterKeyError(`cannot decrypt a value sealed under master key ${id}: wrong key or corrupted data`);
    }
  }
}
