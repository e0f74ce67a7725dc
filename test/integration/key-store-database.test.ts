/**
 * KEYS_STORE=database against real PostgreSQL: the ring and cookie keys in rows sealed under
 * the master key; writes from several "hosts" (separate connection pools) at once serialize
 * and keep every key; a ring under another master key or missing tables stop start-up naming
 * the setting; `adopt` (migrate-to-database) copies, accepts the same ring, refuses another.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { loadOrCreateKeyRing, readKeyRing, retireKey, rotateKeys, type KeyRingFile } from '../../src/crypto/key-ring.js';
import { DatabaseKeyStore } from '../../src/crypto/key-store-database.js';
import { KeyFileError } from '../../src/crypto/keys.js';
import { Envelope, generateMasterKey, parseMasterKeys } from '../../src/crypto/master-key.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { migrate, readMigrations } from '../../src/store/migrator.js';
import { createTestStores } from '../helpers/stores.js';

const envelope = (key = generateMasterKey()) => new Envelope(parseMasterKeys(key, 'test'));

/** A migrated database, and `hosts()` to open independent pools on it (one per simulated host). */
async function freshDatabase(options: { migrated?: boolean } = {}) {
  const stores = await createTestStores();
  const opened: Database[] = [];
  const open = async () => {
    const db = await openDatabase({ kind: 'postgres', url: stores.databaseUrl });
    opened.push(db);
    return db;
  };
  const first = await open();
  if (options.migrated !== false) {
    const runner = await first.openSqlRunner();
    await migrate(runner, await readMigrations());
    await runner.close();
  }
  return {
    stores,
    db: first,
    open,
    async sql<T>(text: string): Promise<T[]> {
      const client = new pg.Client({ connectionString: stores.databaseUrl });
      await client.connect();
      try {
        return (await client.query(text)).rows as T[];
      } finally {
        await client.end();
      }
    },
    async close() {
      await Promise.all(opened.map((d) => d.close()));
      await stores.cleanup();
    },
  };
}

describe('signing keys in PostgreSQL (KEYS_STORE=database)', () => {
  let fresh: Awaited<ReturnType<typeof freshDatabase>>;
  const master = generateMasterKey();

  before(async () => {
    fresh = await freshDatabase();
  });
  after(async () => fresh?.close());

  test('first start creates the ring in rows that hold only sealed private keys; cookie keys are sealed too', async () => {
    const store = await DatabaseKeyStore.open(fresh.db, envelope(master));
    const before = await store.fingerprint();
    const { ring, created } = await loadOrCreateKeyRing(store, envelope(master));
    assert.equal(created, true);
    assert.deepEqual(ring.keys.map((k) => `${k.alg}:${k.status}`).sort(), ['ES256:active', 'ES256:next', 'RS256:active', 'RS256:next']);
    assert.notEqual(await store.fingerprint(), before, 'a write changes the version the watchers poll');

    const rows = await fresh.sql<{ kid: string; public_jwk: Record<string, unknown>; private_jwk: string }>('SELECT kid, public_jwk, private_jwk FROM signing_keys');
    assert.equal(rows.length, 4);
    for (const row of rows) {
      assert.equal('d' in row.public_jwk, false);
      assert.match(row.private_jwk, /^v2\./);
      assert.doesNotMatch(row.private_jwk, /"d"/);
      // The very sealed value the file format holds: opened with the kid as context.
      assert.equal((JSON.parse(envelope(master).open(row.private_jwk, 'signing-keys', row.kid)) as { kid: string }).kid, row.kid);
    }
    // A second host reads the same ring and signs with the same keys.
    const other = await DatabaseKeyStore.open(await fresh.open(), envelope(master));
    const again = await loadOrCreateKeyRing(other, envelope(master));
    assert.equal(again.created, false);
    assert.deepEqual(again.ring.keys.map((k) => k.kid).sort(), ring.keys.map((k) => k.kid).sort());

    const cookieKeys = await store.cookieKeys();
    assert.deepEqual(await other.cookieKeys(), cookieKeys, 'hosts share the cookie keys');
    const [state] = await fresh.sql<{ cookie_keys: string }>('SELECT cookie_keys FROM key_ring_state');
    assert.match(state!.cookie_keys, /^v2\./);
    assert.ok(!state!.cookie_keys.includes(cookieKeys[0]!), 'cookie keys are not stored in plain');
  });

  test('concurrent rotations from several hosts keep every key; a retirement racing them loses none either', async () => {
    const hosts = await Promise.all([1, 2, 3, 4, 5].map(async () => DatabaseKeyStore.open(await fresh.open(), envelope(master))));
    const env = envelope(master);
    const start = (await readKeyRing(hosts[0]!))!;
    const kidsBefore = new Set(start.keys.filter((k) => k.alg === 'ES256').map((k) => k.kid));
    const results = await Promise.all(hosts.map((h) => rotateKeys(h, env, { algs: ['ES256'], graceSeconds: 600 })));
    const activated = results.map((r) => r.activated[0]!.kid);
    assert.equal(new Set(activated).size, hosts.length, 'each rotation activated a distinct key');

    const ring = (await readKeyRing(hosts[0]!))!;
    const es = ring.keys.filter((k) => k.alg === 'ES256');
    // Start: active + next. Each rotation adds one next key: nothing overwritten by a racing writer.
    assert.equal(es.length, kidsBefore.size + hosts.length);
    for (const kid of [...kidsBefore, ...activated])
      assert.ok(
        es.some((k) => k.kid === kid),
        `key ${kid} kept`,
      );
    assert.equal(es.filter((k) => k.status === 'active').length, 1);
    assert.equal(es.filter((k) => k.status === 'next').length, 1);
    assert.ok(activated.includes(ring.active('ES256')!.kid));

    // A retirement and a rotation at the same time: the retired key goes, the rotation's keys stay.
    const retiring = es.find((k) => k.status === 'retiring')!;
    const [retired, rotated] = await Promise.all([retireKey(hosts[1]!, retiring.kid, { force: true }), rotateKeys(hosts[2]!, env, { algs: ['RS256'], graceSeconds: 600 })]);
    assert.equal(
      retired.keys.some((k) => k.kid === retiring.kid),
      false,
    );
    const final = (await readKeyRing(hosts[3]!))!;
    assert.equal(
      final.keys.some((k) => k.kid === retiring.kid),
      false,
      'the retirement is not undone by the racing rotation',
    );
    assert.equal(final.active('RS256')!.kid, rotated.activated[0]!.kid, 'the rotation is not undone by the racing retirement');
    assert.equal(final.keys.length, ring.keys.length - 1 /* retired */ + 1 /* RS256's new next key */);
  });

  test('a ring sealed under another master key stops start-up naming VEIL_MASTER_KEY; nothing is written', async () => {
    const stranger = envelope();
    const store = await DatabaseKeyStore.open(fresh.db, stranger);
    const before = await fresh.sql('SELECT kid, status, private_jwk FROM signing_keys ORDER BY kid');
    const version = await store.fingerprint();
    await assert.rejects(
      loadOrCreateKeyRing(store, stranger),
      (err: unknown) => err instanceof KeyFileError && /KEYS_STORE=database/.test(err.message) && /VEIL_MASTER_KEY/.test(err.message),
    );
    await assert.rejects(store.cookieKeys(), (err: unknown) => err instanceof KeyFileError && /VEIL_MASTER_KEY/.test(err.message));
    assert.deepEqual(await fresh.sql('SELECT kid, status, private_jwk FROM signing_keys ORDER BY kid'), before);
    assert.equal(await store.fingerprint(), version);
  });

  test('a database without the key tables stops start-up naming KEYS_STORE', async () => {
    const bare = await freshDatabase({ migrated: false });
    try {
      await assert.rejects(
        DatabaseKeyStore.open(bare.db, envelope()),
        (err: unknown) => err instanceof KeyFileError && /KEYS_STORE=database/.test(err.message) && /migrat/.test(err.message),
      );
    } finally {
      await bare.close();
    }
  });

  test('adopt (migrate-to-database): copies into an empty database, accepts the same ring again, refuses a different one', async () => {
    const target = await freshDatabase();
    try {
      const env = envelope(master);
      const store = await DatabaseKeyStore.open(target.db, env);
      const fileRing = (await readKeyRing(await DatabaseKeyStore.open(fresh.db, env)))!.file;
      const cookies = ['c'.repeat(43)];
      assert.deepEqual(await store.adopt(fileRing, cookies), { ring: 'copied', cookieKeys: 'copied', pairwiseSecret: 'none' });
      assert.deepEqual(
        (await readKeyRing(store))!.keys.map((k) => [k.kid, k.status, k.private]),
        fileRing.keys.map((k) => [k.kid, k.status, k.private]),
      );
      assert.deepEqual(await store.cookieKeys(), cookies);
      const version = await store.fingerprint();
      assert.deepEqual(await store.adopt(fileRing, cookies), { ring: 'unchanged', cookieKeys: 'unchanged', pairwiseSecret: 'none' }, 'idempotent');
      assert.equal(await store.fingerprint(), version, 'nothing rewritten');

      const other = await DatabaseKeyStore.open(target.db, env);
      const mutated: KeyRingFile = { version: 2, keys: fileRing.keys.filter((k) => k.status !== 'next') };
      await assert.rejects(
        other.adopt(mutated, cookies),
        (err: unknown) => err instanceof KeyFileError && /different signing-key ring/.test(err.message) && /nothing was written/.test(err.message),
      );
      await assert.rejects(other.adopt(fileRing, ['d'.repeat(43)]), /different cookie keys/);
      assert.equal(await store.fingerprint(), version);
      assert.deepEqual(await store.cookieKeys(), cookies);
    } finally {
      await target.close();
    }
  });
});
