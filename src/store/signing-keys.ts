/**
 * The signing-key ring's rows for KEYS_STORE=database: `signing_keys` (one row per key, the
 * private JWK sealed) and the one `key_ring_state` row (the ring's version, the sealed
 * cookie keys and the sealed pairwise-subject secret). Every write runs in a transaction holding that row's lock (SELECT ... FOR
 * UPDATE), so writers on any number of hosts serialize and each sees the ring the previous one
 * left: two rotations at once never lose a key.
 */
import type { JWK } from 'jose';
import type { KeyStatus, RingKey, SigningAlgorithm } from '../crypto/key-ring.js';
import type { PrismaClient } from './database.js';

const STATE_ID = 'ring';

export interface StoredKeyRing {
  /** Bumped by every ring write; 0 until the first. */
  version: number;
  keys: RingKey[];
  /** The generated cookie keys, sealed (a JSON array), if any were stored. */
  sealedCookieKeys: string | undefined;
  /** The pairwise-subject secret, sealed, if one was stored. */
  sealedPairwiseSecret: string | undefined;
}

export interface KeyRingWrite {
  /** The whole ring after the change: rows not in it are deleted. */
  keys?: RingKey[];
  sealedCookieKeys?: string;
  sealedPairwiseSecret?: string;
}

type Tx = Parameters<Parameters<PrismaClient['$transaction']>[0]>[0];
type Row = Awaited<ReturnType<PrismaClient['signingKey']['findMany']>>[number];

const toRingKey = (row: Row): RingKey => ({
  kid: row.kid,
  alg: row.alg as SigningAlgorithm,
  status: row.status as KeyStatus,
  created_at: row.createdAt.toISOString(),
  ...(row.activatedAt ? { activated_at: row.activatedAt.toISOString() } : {}),
  ...(row.retireAfter ? { retire_after: row.retireAfter.toISOString() } : {}),
  public: row.publicJwk as JWK,
  private: row.privateJwk,
});

const toRow = (key: RingKey) => ({
  alg: key.alg,
  status: key.status,
  createdAt: new Date(key.created_at),
  activatedAt: key.activated_at ? new Date(key.activated_at) : null,
  retireAfter: key.retire_after ? new Date(key.retire_after) : null,
  publicJwk: key.public as object,
  privateJwk: key.private,
});

/** Keys in creation order, so the ring reads back as it was written. */
const ORDER = [{ createdAt: 'asc' as const }, { kid: 'asc' as const }];

export class SigningKeyRepository {
  constructor(private readonly prisma: PrismaClient) {}

  /** The ring's version: one indexed row, cheap enough to poll. Undefined when the state row is missing. */
  async version(): Promise<number | undefined> {
    const state = await this.prisma.keyRingState.findUnique({ where: { id: STATE_ID }, select: { version: true } });
    return state?.version;
  }

  /** Undefined when the state row is missing (the migration was not applied, or was tampered with). */
  async read(): Promise<StoredKeyRing | undefined> {
    const [state, rows] = await Promise.all([this.prisma.keyRingState.findUnique({ where: { id: STATE_ID } }), this.prisma.signingKey.findMany({ orderBy: ORDER })]);
    return state
      ? { version: state.version, keys: rows.map(toRingKey), sealedCookieKeys: state.cookieKeys ?? undefined, sealedPairwiseSecret: state.pairwiseSecret ?? undefined }
      : undefined;
  }

  /**
   * Runs `change` on the current rows while holding the state row's lock, then applies what it
   * returns in the same transaction. `current` is undefined when the state row is missing.
   */
  async locked<T>(change: (current: StoredKeyRing | undefined) => Promise<{ write?: KeyRingWrite; result: T }>): Promise<T> {
    return this.prisma.$transaction(
      async (tx) => {
        const states = await tx.$queryRaw<
          { version: number; cookie_keys: string | null; pairwise_secret: string | null }[]
        >`SELECT version, cookie_keys, pairwise_secret FROM key_ring_state WHERE id = ${STATE_ID} FOR UPDATE`;
        const state = states[0];
        // Read after taking the lock: what the previous writer committed.
        const current = state && {
          version: state.version,
          keys: (await tx.signingKey.findMany({ orderBy: ORDER })).map(toRingKey),
          sealedCookieKeys: state.cookie_keys ?? undefined,
          sealedPairwiseSecret: state.pairwise_secret ?? undefined,
        };
        const { write, result } = await change(current);
        if (state && write) await apply(tx, write);
        return result;
      },
      // Key generation (RSA) runs inside, and writers queue on the lock: more than Prisma's 5 s default.
      { maxWait: 10_000, timeout: 30_000 },
    );
  }
}

async function apply(tx: Tx, write: KeyRingWrite): Promise<void> {
  if (write.keys) {
    const keys = write.keys;
    await tx.signingKey.deleteMany({ where: { kid: { notIn: keys.map((k) => k.kid) } } });
    for (const key of keys) {
      const row = toRow(key);
      await tx.signingKey.upsert({ where: { kid: key.kid }, create: { kid: key.kid, ...row }, update: row });
    }
  }
  await tx.keyRingState.update({
    where: { id: STATE_ID },
    data: {
      ...(write.keys ? { version: { increment: 1 } } : {}),
      ...(write.sealedCookieKeys !== undefined ? { cookieKeys: write.sealedCookieKeys } : {}),
      ...(write.sealedPairwiseSecret !== undefined ? { pairwiseSecret: write.sealedPairwiseSecret } : {}),
      updatedAt: new Date(),
    },
  });
}
