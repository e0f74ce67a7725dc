/**
 * Opens the durable store: PostgreSQL (through @prisma/adapter-pg) or, in embedded mode,
 * PGlite under the data directory. Above this module both look the same: a PrismaClient
 * plus a raw SQL runner used only by the migrator.
 */
import fs from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import type { VeilConfig } from '../config.js';
import { PrismaClient } from '../generated/prisma/client.js';
import { classifyDatabaseError } from './errors.js';

export type { PrismaClient };

/**
 * Whether a look-up key can be in PostgreSQL at all: text cannot hold NUL, and querying with one
 * is an error, not a miss. Keys from requests (client ids, identifiers) are checked with this so
 * a caller's odd input is a plain "not found", never a 500.
 */
export const storableKey = (value: string): boolean => !value.includes('\0');

/** Minimal SQL surface the migrator needs; implemented for both pg and PGlite. */
export interface SqlRunner {
  /** Runs one or more statements (simple query protocol). */
  exec(sql: string): Promise<void>;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Runs `fn` while holding a database-wide lock so concurrent starts serialize. */
  withLock<T>(fn: (runner: SqlRunner) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface Database {
  kind: 'postgres' | 'pglite';
  prisma: PrismaClient;
  /** Lightweight liveness probe. */
  ping(): Promise<void>;
  openSqlRunner(): Promise<SqlRunner>;
  close(): Promise<void>;
}

/**
 * Every query's failure is classified once, here (`classifyDatabaseError`): outages become
 * StoreUnavailableError (503 at the edges), P2002/P2025 UniqueViolation/RecordNotFound.
 */
function withClassifiedErrors(prisma: PrismaClient): PrismaClient {
  return prisma.$extends({
    query: {
      async $allOperations({ args, query }) {
        try {
          // eslint-disable-next-line @typescript-eslint/no-unsafe-return -- Prisma's extension API types every result as any; it passes through unchanged
          return await query(args);
        } catch (err) {
          throw classifyDatabaseError(err);
        }
      },
    },
  }) as unknown as PrismaClient;
}

const MIGRATION_LOCK_KEY = 7_302_611; // arbitrary, constant advisory-lock key for Veil migrations

export async function openDatabase(config: VeilConfig['database']): Promise<Database> {
  return config.kind === 'postgres' ? openPostgres(config.url) : openPglite(config.dataDir);
}

/** Runs a start-up step against the database; a failure to reach it becomes StoreUnavailableError. */
export async function reachDatabase<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    throw classifyDatabaseError(err);
  }
}

async function openPostgres(url: string): Promise<Database> {
  const pool = new pg.Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 3000 });
  // An idle client losing its connection (server restart) must not crash the process.
  pool.on('error', () => {});
  const prisma = withClassifiedErrors(new PrismaClient({ adapter: new PrismaPg(pool) }));
  return {
    kind: 'postgres',
    prisma,
    async ping() {
      await prisma.$queryRaw`SELECT 1`;
    },
    async openSqlRunner() {
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
      client.on('error', () => {});
      await client.connect();
      const runner: SqlRunner = {
        async exec(sql) {
          await client.query(sql);
        },
        async query<T>(sql: string, params: unknown[] = []) {
          return (await client.query(sql, params)).rows as T[];
        },
        async withLock(fn) {
          await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
          try {
            return await fn(runner);
          } finally {
            await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
          }
        },
        async close() {
          await client.end();
        },
      };
      return runner;
    },
    async close() {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

async function openPglite(dataDir: string): Promise<Database> {
  await fs.mkdir(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir);
  const prisma = withClassifiedErrors(new PrismaClient({ adapter: new PrismaPGlite(db) }));
  // PGlite is a single in-process connection, so the "lock" is trivially held.
  const runner: SqlRunner = {
    async exec(sql) {
      await db.exec(sql);
    },
    async query<T>(sql: string, params: unknown[] = []) {
      return (await db.query<T>(sql, params)).rows;
    },
    withLock: (fn) => fn(runner),
    async close() {},
  };
  return {
    kind: 'pglite',
    prisma,
    async ping() {
      await db.query('SELECT 1');
    },
    async openSqlRunner() {
      return runner;
    },
    async close() {
      await prisma.$disconnect();
      await db.close();
    },
  };
}
