/**
 * The pairwise-subject secret in both key stores (crypto/pairwise-secret.ts): processes starting
 * at once agree on one secret (KEYS_DIR's lock file; key_ring_state's row lock in PostgreSQL),
 * stored only sealed; a wrong master key is refused naming it, with nothing written; re-sealing
 * keeps the secret; `adopt` (keys migrate-to-database) moves it, and refuses a different one.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { loadOrCreateKeyRing } from '../../src/crypto/key-ring.js';
import { DatabaseKeyStore } from '../../src/crypto/key-store-database.js';
import { FileKeyStore } from '../../src/crypto/key-store-file.js';
import { KeyFileError } from '../../src/crypto/keys.js';
import { Envelope, generateMasterKey, parseMasterKeys } from '../../src/crypto/master-key.js';
import { loadOrCreatePairwiseSecret, resealPairwiseSecret, sealPairwiseSecret } from '../../src/crypto/pairwise-secret.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { migrate, readMigrations } from '../../src/store/migrator.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';

const envelopeOf = (...keys: string[]) => new Envelope(parseMasterKeys(keys.join(','), 'test'));
const plainForms = (secret: Buffer) => [secret.toString('base64url'), secret.toString('hex'), secret.toString('base64')];

describe('pairwise-subject secret, KEYS_STORE=file', () => {
  let dir: string;
  const master = generateMasterKey();
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-pairwise-secret-'));
  });
  after(async () => fs.rm(dir, { recursive: true, force: true }));

  test('five processes starting at once store one secret, sealed; later starts read it', async () => {
    const results = await Promise.all([1, 2, 3, 4, 5].map(() => loadOrCreatePairwiseSecret(new FileKeyStore(dir), envelopeOf(master))));
    assert.equal(results.filter((r) => r.created).length, 1, 'exactly one process generated it');
    for (const r of results) assert.ok(r.secret.equals(results[0]!.secret), 'every process has the same secret');
    assert.equal(results[0]!.secret.length, 32);
    const text = await fs.readFile(path.join(dir, 'pairwise-secret.json'), 'utf8');
    assert.match((JSON.parse(text) as { sealed: string }).sealed, /^v2\./);
    for (const form of plainForms(results[0]!.secret)) assert.ok(!text.includes(form), 'not stored in plain');
    assert.equal(((await fs.stat(path.join(dir, 'pairwise-secret.json'))).mode & 0o777).toString(8), '600');
    const later = await loadOrCreatePairwiseSecret(new FileKeyStore(dir), envelopeOf(master));
    assert.deepEqual([later.created, later.secret.equals(results[0]!.secret)], [false, true]);
  });

  test('another master key is refused naming VEIL_MASTER_KEY; the file is left as it was', async () => {
    const file = path.join(dir, 'pairwise-secret.json');
    const before = await fs.readFile(file, 'utf8');
    await assert.rejects(
      loadOrCreatePairwiseSecret(new FileKeyStore(dir), envelopeOf(generateMasterKey())),
      (err: unknown) => err instanceof KeyFileError && /pairwise-subject secret/.test(err.message) && /VEIL_MASTER_KEY/.test(err.message),
    );
    assert.equal(await fs.readFile(file, 'utf8'), before);
  });

  test('re-sealing under a new master key keeps the secret; a second pass changes nothing', async () => {
    const store = new FileKeyStore(dir);
    const { secret } = await loadOrCreatePairwiseSecret(store, envelopeOf(master));
    const next = generateMasterKey();
    assert.equal(await resealPairwiseSecret(store, envelopeOf(next, master)), 1);
    assert.equal(await resealPairwiseSecret(store, envelopeOf(next, master)), 0);
    const reopened = await loadOrCreatePairwiseSecret(store, envelopeOf(next));
    assert.deepEqual([reopened.created, reopened.secret.equals(secret)], [false, true]);
  });

  test('a malformed file stops start-up instead of being replaced', async () => {
    const other = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-pairwise-secret-bad-'));
    try {
      await fs.writeFile(path.join(other, 'pairwise-secret.json'), JSON.stringify({ version: 1, sealed: 'a plain secret' }));
      await assert.rejects(loadOrCreatePairwiseSecret(new FileKeyStore(other), envelopeOf(master)), KeyFileError);
      assert.match(await fs.readFile(path.join(other, 'pairwise-secret.json'), 'utf8'), /a plain secret/);
    } finally {
      await fs.rm(other, { recursive: true, force: true });
    }
  });
});

describe('pairwise-subject secret, KEYS_STORE=database', () => {
  let stores: TestStores;
  const opened: Database[] = [];
  const master = generateMasterKey();
  const open = async () => {
    const db = await openDatabase({ kind: 'postgres', url: stores.databaseUrl });
    opened.push(db);
    return db;
  };
  async function sql<T>(text: string, values: unknown[] = []): Promise<T[]> {
    const client = new pg.Client({ connectionString: stores.databaseUrl });
    await client.connect();
    try {
      return (await client.query(text, values)).rows as T[];
    } finally {
      await client.end();
    }
  }
  const storedRow = async () => (await sql<{ pairwise_secret: string | null }>('SELECT pairwise_secret FROM key_ring_state'))[0]!.pairwise_secret;

  before(async () => {
    stores = await createTestStores();
    const runner = await (await open()).openSqlRunner();
    await migrate(runner, await readMigrations());
    await runner.close();
  });
  after(async () => {
    await Promise.all(opened.map((d) => d.close()));
    await stores?.cleanup();
  });

  test('five hosts starting at once store one secret, sealed in key_ring_state; the ring version is not bumped', async () => {
    const hosts = await Promise.all([1, 2, 3, 4, 5].map(async () => DatabaseKeyStore.open(await open(), envelopeOf(master))));
    const version = await hosts[0]!.fingerprint();
    const results = await Promise.all(hosts.map((h) => loadOrCreatePairwiseSecret(h, envelopeOf(master))));
    assert.equal(results.filter((r) => r.created).length, 1, 'exactly one host generated it');
    for (const r of results) assert.ok(r.secret.equals(results[0]!.secret), 'every host has the same secret');
    const row = (await storedRow())!;
    assert.match(row, /^v2\./);
    const all = JSON.stringify(await sql('SELECT * FROM key_ring_state'));
    for (const form of plainForms(results[0]!.secret)) assert.ok(!all.includes(form), 'not stored in plain');
    assert.equal(await hosts[0]!.fingerprint(), version, 'key watchers are not woken by it');
    // The column refuses a plain value.
    await assert.rejects(sql('UPDATE key_ring_state SET pairwise_secret = $1', [results[0]!.secret.toString('base64url')]), /key_ring_state_pairwise_sealed_check/);
  });

  test('another master key is refused naming KEYS_STORE and VEIL_MASTER_KEY; nothing is written', async () => {
    const before = await storedRow();
    const store = await DatabaseKeyStore.open(await open(), envelopeOf(generateMasterKey()));
    await assert.rejects(
      loadOrCreatePairwiseSecret(store, envelopeOf(generateMasterKey())),
      (err: unknown) => err instanceof KeyFileError && /KEYS_STORE=database/.test(err.message) && /VEIL_MASTER_KEY/.test(err.message),
    );
    assert.equal(await storedRow(), before);
  });

  test('re-sealing keeps the secret', async () => {
    const store = await DatabaseKeyStore.open(await open(), envelopeOf(master));
    const { secret } = await loadOrCreatePairwiseSecret(store, envelopeOf(master));
    const next = generateMasterKey();
    const rotating = await DatabaseKeyStore.open(await open(), envelopeOf(next, master));
    assert.equal(await resealPairwiseSecret(rotating, envelopeOf(next, master)), 1);
    assert.equal(await resealPairwiseSecret(rotating, envelopeOf(next, master)), 0);
    assert.match((await storedRow())!, new RegExp(`^v2\\.${parseMasterKeys(next, 'test')[0]!.id}\\.`));
    const after = await loadOrCreatePairwiseSecret(await DatabaseKeyStore.open(await open(), envelopeOf(next)), envelopeOf(next));
    assert.deepEqual([after.created, after.secret.equals(secret)], [false, true]);
  });

  test('adopt (migrate-to-database) moves the secret from KEYS_DIR, accepts it again, refuses a different one', async () => {
    const target = await createTestStores();
    const db = await openDatabase({ kind: 'postgres', url: target.databaseUrl });
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-pairwise-adopt-'));
    try {
      const runner = await db.openSqlRunner();
      await migrate(runner, await readMigrations());
      await runner.close();
      const env = envelopeOf(master);
      const files = new FileKeyStore(dir);
      const { ring } = await loadOrCreateKeyRing(files, env);
      const { secret } = await loadOrCreatePairwiseSecret(files, env);
      const sealed = (await files.readSealedPairwiseSecret())!;
      const store = await DatabaseKeyStore.open(db, env);
      assert.deepEqual(await store.adopt(ring.file, undefined, sealed), { ring: 'copied', cookieKeys: 'none', pairwiseSecret: 'copied' });
      const moved = await loadOrCreatePairwiseSecret(store, env);
      assert.deepEqual([moved.created, moved.secret.equals(secret)], [false, true], 'the same subjects after the move');
      assert.deepEqual(await store.adopt(ring.file, undefined, sealed), { ring: 'unchanged', cookieKeys: 'none', pairwiseSecret: 'unchanged' });
      // The same secret sealed again (another salt) is the same secret.
      assert.equal((await store.adopt(ring.file, undefined, sealPairwiseSecret(secret, env))).pairwiseSecret, 'unchanged');
      const [before] = await db.prisma.$queryRaw<{ pairwise_secret: string }[]>`SELECT pairwise_secret FROM key_ring_state`;
      await assert.rejects(
        store.adopt(ring.file, undefined, sealPairwiseSecret(Buffer.alloc(32, 7), env)),
        (err: unknown) => err instanceof KeyFileError && /different pairwise-subject secret/.test(err.message) && /nothing was written/.test(err.message),
      );
      const [after] = await db.prisma.$queryRaw<{ pairwise_secret: string }[]>`SELECT pairwise_secret FROM key_ring_state`;
      assert.equal(after!.pairwise_secret, before!.pairwise_secret);
    } finally {
      await db.close();
      await target.cleanup();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
