/**
 * Where the Paillier (HE) keys of confidential claims live, per KEYS_STORE like the signing keys:
 * KEYS_DIR/he-keys.json (written to a temporary file and renamed under a lock file) or the
 * `he_keys` table in PostgreSQL (changes under a transaction-scoped advisory lock). Both hold the
 * same records: the public modulus in the clear, the primes sealed under the master key
 * (he-keys.ts seals and opens them; nothing here sees a secret in the clear).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { withLockFile } from '../crypto/lock-file.js';
import type { VeilConfig } from '../config.js';
import { KeyFileError, readJsonIfPresent } from '../crypto/keys.js';
import type { Database, PrismaClient } from '../store/database.js';

export const HE_KEYS_FILE = 'he-keys.json';

/** One key as stored. Times are ISO 8601. */
export interface StoredHeKey {
  kid: string;
  bits: 2048 | 3072;
  /** base64url of the modulus n (public). */
  n: string;
  /** The primes, sealed under the master key (Envelope, purpose signing-keys, context he-key:<kid>). */
  sealed: string;
  created_at: string;
  /** Set when a newer key took over: no new token uses this one. */
  retired_at?: string;
  /** When every token that used this key has expired: the key is dropped after this. */
  drop_after?: string;
}

export interface HeKeyStore {
  readonly name: string;
  read(): Promise<StoredHeKey[]>;
  /** Runs `change` holding the store's lock; writes the list it returns (nothing if undefined). */
  update<T>(change: (current: StoredHeKey[]) => Promise<{ write?: StoredHeKey[]; result: T }>): Promise<T>;
}

const isIso = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));

function assertStored(where: string, value: unknown): StoredHeKey[] {
  const keys = (value as { version?: unknown; keys?: unknown } | undefined)?.keys;
  if ((value as { version?: unknown }).version !== 1 || !Array.isArray(keys)) throw new KeyFileError(`${where} is not an HE key file (version 1)`);
  for (const k of keys as Array<Record<string, unknown>>) {
    const ok =
      typeof k.kid === 'string' &&
      (k.bits === 2048 || k.bits === 3072) &&
      typeof k.n === 'string' &&
      typeof k.sealed === 'string' &&
      /^v[12]\./.test(k.sealed) &&
      isIso(k.created_at) &&
      (k.retired_at === undefined || isIso(k.retired_at)) &&
      (k.drop_after === undefined || isIso(k.drop_after));
    if (!ok) throw new KeyFileError(`${where} holds a malformed HE key`);
  }
  return keys as StoredHeKey[];
}

export class FileHeKeyStore implements HeKeyStore {
  readonly name: string;
  readonly #file: string;

  constructor(private readonly keysDir: string) {
    this.#file = path.join(keysDir, HE_KEYS_FILE);
    this.name = this.#file;
  }

  async read(): Promise<StoredHeKey[]> {
    const parsed = await readJsonIfPresent(this.#file);
    return parsed === undefined ? [] : assertStored(this.#file, parsed);
  }

  async update<T>(change: (current: StoredHeKey[]) => Promise<{ write?: StoredHeKey[]; result: T }>): Promise<T> {
    await fs.mkdir(this.keysDir, { recursive: true, mode: 0o700 });
    return this.#withLock(async () => {
      const { write, result } = await change(await this.read());
      if (write) {
        const tmp = `${this.#file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
        await fs.writeFile(tmp, `${JSON.stringify({ version: 1, keys: write }, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
        await fs.rename(tmp, this.#file);
      }
      return result;
    });
  }

  async #withLock<T>(work: () => Promise<T>): Promise<T> {
    return withLockFile(path.join(this.keysDir, 'he-keys.lock'), this.keysDir, 400, work);
  }
}

type Row = Awaited<ReturnType<PrismaClient['heKey']['findMany']>>[number];

const fromRow = (row: Row): StoredHeKey => ({
  kid: row.kid,
  bits: row.bits as 2048 | 3072,
  n: row.publicN,
  sealed: row.sealedSecret,
  created_at: row.createdAt.toISOString(),
  ...(row.retiredAt ? { retired_at: row.retiredAt.toISOString() } : {}),
  ...(row.dropAfter ? { drop_after: row.dropAfter.toISOString() } : {}),
});

const toRow = (key: StoredHeKey) => ({
  bits: key.bits,
  publicN: key.n,
  sealedSecret: key.sealed,
  createdAt: new Date(key.created_at),
  retiredAt: key.retired_at ? new Date(key.retired_at) : null,
  dropAfter: key.drop_after ? new Date(key.drop_after) : null,
});

const ORDER = [{ createdAt: 'asc' as const }, { kid: 'asc' as const }];
// pg_advisory_xact_lock key: writers on every host serialize on it, released at commit.
const LOCK_KEY = 0x7665696c_6865n; // "veil" "he"

export class DatabaseHeKeyStore implements HeKeyStore {
  readonly name = 'KEYS_STORE=database (he_keys)';

  constructor(private readonly prisma: PrismaClient) {}

  async read(): Promise<StoredHeKey[]> {
    try {
      return (await this.prisma.heKey.findMany({ orderBy: ORDER })).map(fromRow);
    } catch (err) {
      if ((err as { code?: string }).code === 'P2021') {
        throw new KeyFileError(`${this.name}: the he_keys table is missing; apply the migrations (VEIL_MIGRATE_ON_START=true or \`veil migrate\`)`);
      }
      throw err;
    }
  }

  update<T>(change: (current: StoredHeKey[]) => Promise<{ write?: StoredHeKey[]; result: T }>): Promise<T> {
    return this.prisma.$transaction(
      async (tx) => {
        await tx.$executeRaw`SELECT pg_advisory_xact_lock(${LOCK_KEY})`;
        const current = (await tx.heKey.findMany({ orderBy: ORDER })).map(fromRow);
        const { write, result } = await change(current);
        if (write) {
          await tx.heKey.deleteMany({ where: { kid: { notIn: write.map((k) => k.kid) } } });
          for (const key of write) {
            const row = toRow(key);
            await tx.heKey.upsert({ where: { kid: key.kid }, create: { kid: key.kid, ...row }, update: row });
          }
        }
        return result;
      },
      { maxWait: 10_000, timeout: 30_000 },
    );
  }
}

export function openHeKeyStore(config: Pick<VeilConfig, 'keysStore' | 'keysDir'>, database: Database): HeKeyStore {
  return config.keysStore === 'file' ? new FileHeKeyStore(config.keysDir) : new DatabaseHeKeyStore(database.prisma);
}
