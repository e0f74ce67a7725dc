/**
 * The offline migrator against real PostgreSQL (a fresh database per case) and embedded PGlite.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openDatabase, type Database } from '../../src/store/database.js';
import { DEFAULT_MIGRATIONS_DIR, MigrationError, migrate, readMigrations, type Migration } from '../../src/store/migrator.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';

const EXPECTED_TABLES = [
  '_prisma_migrations',
  'account_attributes',
  'accounts',
  'audit_events',
  'clients',
  'grant_api_consents',
  'grants',
  'he_keys',
  'he_policies',
  'key_ring_state',
  'resource_servers',
  'signing_keys',
];

interface BookkeepingRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
}

/** A fresh PostgreSQL database, opened; dropped again by `close`. */
async function freshPostgres(): Promise<{ stores: TestStores; db: Database; close(): Promise<void> }> {
  const stores = await createTestStores();
  const db = await openDatabase({ kind: 'postgres', url: stores.databaseUrl });
  return {
    stores,
    db,
    async close() {
      await db.close();
      await stores.cleanup();
    },
  };
}

async function tablesIn(db: Database): Promise<string[]> {
  const runner = await db.openSqlRunner();
  try {
    const rows = await runner.query<{ table_name: string }>(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`);
    return rows.map((r) => r.table_name);
  } finally {
    await runner.close();
  }
}

async function bookkeeping(db: Database): Promise<BookkeepingRow[]> {
  const runner = await db.openSqlRunner();
  try {
    return await runner.query<BookkeepingRow>(`SELECT migration_name, checksum, finished_at FROM "_prisma_migrations" ORDER BY migration_name`);
  } finally {
    await runner.close();
  }
}

async function migrateOnce(db: Database, migrations: Migration[]) {
  const runner = await db.openSqlRunner();
  try {
    return await migrate(runner, migrations);
  } finally {
    await runner.close();
  }
}

async function rejectsWithMigrationError(promise: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof MigrationError, `expected MigrationError, got ${String(err)}`);
    assert.match(err.message, message);
    return true;
  });
}

/** A temporary migrations directory; `write` adds one migration folder. */
async function tempMigrationsDir() {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-migrations-'));
  return {
    dir,
    async write(name: string, sql: string) {
      await fs.mkdir(path.join(dir, name), { recursive: true });
      await fs.writeFile(path.join(dir, name, 'migration.sql'), sql);
    },
    remove: () => fs.rm(dir, { recursive: true, force: true }),
  };
}

let migrations: Migration[];

before(async () => {
  migrations = await readMigrations();
  assert.ok(migrations.length > 0, 'prisma/migrations holds at least one migration');
});

describe('migrate on PostgreSQL', () => {
  let pgdb: Awaited<ReturnType<typeof freshPostgres>>;

  before(async () => {
    pgdb = await freshPostgres();
  });
  after(async () => {
    await pgdb?.close();
  });

  test('the first run on a fresh database applies every migration and creates the tables', async () => {
    assert.deepEqual(await tablesIn(pgdb.db), []);
    const result = await migrateOnce(pgdb.db, migrations);
    assert.deepEqual(
      result.applied,
      migrations.map((m) => m.name),
    );
    assert.deepEqual(result.alreadyApplied, []);
    assert.deepEqual(await tablesIn(pgdb.db), EXPECTED_TABLES);

    const rows = await bookkeeping(pgdb.db);
    assert.deepEqual(
      rows.map((r) => r.migration_name),
      migrations.map((m) => m.name),
    );
    assert.deepEqual(
      rows.map((r) => r.checksum),
      migrations.map((m) => m.checksum),
    );
    assert.ok(
      rows.every((r) => r.finished_at instanceof Date),
      'every applied migration is marked finished',
    );
  });

  test('the second run applies nothing and lists every migration as already applied', async () => {
    const result = await migrateOnce(pgdb.db, migrations);
    assert.deepEqual(result.applied, []);
    assert.deepEqual(
      result.alreadyApplied,
      migrations.map((m) => m.name),
    );
    assert.equal((await bookkeeping(pgdb.db)).length, migrations.length);
  });

  test('the migrated schema is usable through Prisma', async () => {
    assert.equal(await pgdb.db.prisma.account.count(), 0);
  });
});

describe('concurrent migrate on PostgreSQL', () => {
  test('5 runners on separate connections migrating a fresh database at once all succeed, applying each migration once', async () => {
    const pgdb = await freshPostgres();
    try {
      const runners = await Promise.all(Array.from({ length: 5 }, () => pgdb.db.openSqlRunner()));
      try {
        const results = await Promise.all(runners.map((r) => migrate(r, migrations)));
        // Exactly one runner applied everything; the other four found it already applied.
        const names = migrations.map((m) => m.name);
        const appliers = results.filter((r) => r.applied.length > 0);
        assert.equal(appliers.length, 1);
        assert.deepEqual(appliers[0]!.applied, names);
        for (const r of results.filter((x) => x !== appliers[0])) {
          assert.deepEqual(r.applied, []);
          assert.deepEqual(r.alreadyApplied, names);
        }
      } finally {
        await Promise.all(runners.map((r) => r.close()));
      }

      const rows = await bookkeeping(pgdb.db);
      assert.deepEqual(
        rows.map((r) => r.migration_name),
        migrations.map((m) => m.name),
        'exactly one row per migration',
      );
      assert.deepEqual(await tablesIn(pgdb.db), EXPECTED_TABLES);
    } finally {
      await pgdb.close();
    }
  });
});

describe('migrate refuses unsafe states', () => {
  test('a migration whose file changed after it was applied is refused with MigrationError', async () => {
    const pgdb = await freshPostgres();
    const tmp = await tempMigrationsDir();
    try {
      await fs.cp(DEFAULT_MIGRATIONS_DIR, tmp.dir, { recursive: true });
      const original = await readMigrations(tmp.dir);
      assert.deepEqual(
        original.map((m) => m.name),
        migrations.map((m) => m.name),
      );
      await migrateOnce(pgdb.db, original);

      const edited = original[0]!;
      const file = path.join(tmp.dir, edited.name, 'migration.sql');
      await fs.appendFile(file, '\n-- edited after being applied\nCREATE TABLE "sneaky" ("id" INTEGER);\n');
      const changed = await readMigrations(tmp.dir);
      assert.notEqual(changed[0]!.checksum, edited.checksum);

      await rejectsWithMigrationError(migrateOnce(pgdb.db, changed), new RegExp(`${edited.name}.*checksum`));
      assert.ok(!(await tablesIn(pgdb.db)).includes('sneaky'), 'the edited migration was not re-run');
      const rows = await bookkeeping(pgdb.db);
      assert.equal(rows.find((r) => r.migration_name === edited.name)?.checksum, edited.checksum, 'bookkeeping keeps the original checksum');

      // The advisory lock was released: an unchanged set still migrates (as a no-op) afterwards.
      const again = await migrateOnce(pgdb.db, original);
      assert.deepEqual(again.applied, []);
    } finally {
      await tmp.remove();
      await pgdb.close();
    }
  });

  test('a failing migration after a good one throws MigrationError and leaves no partial state', async () => {
    const pgdb = await freshPostgres();
    const tmp = await tempMigrationsDir();
    try {
      await tmp.write('20260101000000_good', 'CREATE TABLE "good_table" ("id" INTEGER PRIMARY KEY);');
      // The first statement succeeds, the second fails: the whole migration must roll back.
      await tmp.write('20260102000000_bad', 'CREATE TABLE "half_made" ("id" INTEGER);\nINSERT INTO "good_table" ("id") VALUES (1);\nSELEKT nonsense FROM nowhere;');
      await tmp.write('20260103000000_after', 'CREATE TABLE "after_bad" ("id" INTEGER);');
      const set = await readMigrations(tmp.dir);

      await rejectsWithMigrationError(migrateOnce(pgdb.db, set), /20260102000000_bad/);

      const tables = await tablesIn(pgdb.db);
      assert.ok(tables.includes('good_table'), 'the good migration before it stays applied');
      assert.ok(!tables.includes('half_made'), 'the failing migration left no table behind');
      assert.ok(!tables.includes('after_bad'), 'migrations after the failing one were not run');
      const runner = await pgdb.db.openSqlRunner();
      try {
        assert.deepEqual(await runner.query(`SELECT id FROM "good_table"`), [], 'no rows from the failing migration');
      } finally {
        await runner.close();
      }
      assert.deepEqual(
        (await bookkeeping(pgdb.db)).map((r) => r.migration_name),
        ['20260101000000_good'],
        'no bookkeeping row for the failure',
      );

      // Once fixed, the migration applies and the runner is usable again (lock released, no open transaction).
      await tmp.write('20260102000000_bad', 'CREATE TABLE "half_made" ("id" INTEGER);');
      const fixed = await migrateOnce(pgdb.db, await readMigrations(tmp.dir));
      assert.deepEqual(fixed.applied, ['20260102000000_bad', '20260103000000_after']);
      assert.deepEqual(fixed.alreadyApplied, ['20260101000000_good']);
    } finally {
      await tmp.remove();
      await pgdb.close();
    }
  });
});

describe('migrate on embedded PGlite', () => {
  let dataDir: string;

  before(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-pglite-'));
  });
  after(async () => {
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  test('migrations persist across close and reopen of the same data directory', async () => {
    const first = await openDatabase({ kind: 'pglite', dataDir });
    try {
      const result = await migrateOnce(first, migrations);
      assert.deepEqual(
        result.applied,
        migrations.map((m) => m.name),
      );
      assert.deepEqual(await tablesIn(first), EXPECTED_TABLES);
    } finally {
      await first.close();
    }

    const reopened = await openDatabase({ kind: 'pglite', dataDir });
    try {
      const result = await migrateOnce(reopened, migrations);
      assert.deepEqual(result.applied, []);
      assert.deepEqual(
        result.alreadyApplied,
        migrations.map((m) => m.name),
      );
      assert.deepEqual(await tablesIn(reopened), EXPECTED_TABLES);
    } finally {
      await reopened.close();
    }
  });
});

describe('migrations at start-up', () => {
  async function tables(databaseUrl: string) {
    const db = await openDatabase({ kind: 'postgres', url: databaseUrl });
    try {
      const rows = await db.prisma.$queryRaw<{ table_name: string }[]>`
        SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`;
      return rows.map((r) => r.table_name);
    } finally {
      await db.close();
    }
  }

  test('Veil applies pending migrations when it starts, and not when VEIL_MIGRATE_ON_START=false', async () => {
    const { startTestVeil } = await import('../helpers/veil.js');
    const off = await createTestStores();
    const on = await createTestStores();
    try {
      const skipped = await startTestVeil(off, { VEIL_MIGRATE_ON_START: 'false' });
      await skipped.stop();
      assert.deepEqual(await tables(off.databaseUrl), []);

      const migrated = await startTestVeil(on);
      await migrated.stop();
      assert.deepEqual(await tables(on.databaseUrl), EXPECTED_TABLES);
    } finally {
      await off.cleanup();
      await on.cleanup();
    }
  });
});
