/**
 * Veil's Paillier (HE) keys: generated at the first start, the secret half sealed under the
 * master key in KEYS_DIR or PostgreSQL (never in plain), published at the discovery document's
 * `he_jwks_uri`; `veil keys rotate --he` makes a new key active and keeps the old one until its
 * tokens have expired, then drops it; `veil keys rotate-master` re-seals them; and Veil refuses
 * to start when the Paillier self-test fails (OpenSSL's modexp broken by a preload).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { decrypt, encrypt, keyPairFromPrimes, publicKeyFromJwk, type PaillierPublicJwk } from '@veil/resource-server/paillier';
import { main } from '../../src/cli/main.js';
import { Envelope, MASTER_KEY_FILE, generateMasterKey, parseMasterKeys } from '../../src/crypto/master-key.js';
import { FileHeKeyStore, HE_KEYS_FILE, type StoredHeKey } from '../../src/he/he-key-store.js';
import { loadOrCreateHeKeys, resealHeKeys, rotateHeKey } from '../../src/he/he-keys.js';
import { ManagedProcess } from '../helpers/process.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

type Jwks = { keys: PaillierPublicJwk[] };

async function heJwks(veil: TestVeil): Promise<{ uri: string; jwks: Jwks; response: Response }> {
  const discovery = (await (await fetch(`${veil.issuer}/.well-known/openid-configuration`)).json()) as { he_jwks_uri: string };
  const response = await fetch(discovery.he_jwks_uri);
  return { uri: discovery.he_jwks_uri, jwks: (await response.json()) as Jwks, response };
}

async function masterEnvelope(keysDir: string): Promise<Envelope> {
  return new Envelope(parseMasterKeys((await fs.readFile(path.join(keysDir, MASTER_KEY_FILE), 'utf8')).trim(), 'master.key'));
}

function openPrimes(envelope: Envelope, key: Pick<StoredHeKey, 'kid' | 'sealed'>): { p: bigint; q: bigint } {
  const { p, q } = JSON.parse(envelope.open(key.sealed, 'signing-keys', `he-key:${key.kid}`)) as { p: string; q: string };
  return { p: BigInt(`0x${p}`), q: BigInt(`0x${q}`) };
}

/** Every textual form a prime could take at rest. */
const spellings = (x: bigint): string[] => {
  const hex = x.toString(16);
  return [hex, x.toString(10), Buffer.from(hex.padStart(hex.length + (hex.length % 2), '0'), 'hex').toString('base64url'), Buffer.from(hex, 'hex').toString('base64')];
};

async function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const code = await main(['node', 'veil', '--json', ...args], { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), readStdin: async () => '' });
    return { code, stdout, stderr };
  } finally {
    for (const k of Object.keys(env)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

describe('HE keys with KEYS_STORE=file', () => {
  let veil: TestVeil;
  let keysDir: string;
  before(async () => {
    veil = await startTestVeil(undefined, { HE_KEY_BITS: '2048', KEYS_RELOAD_SECONDS: '1', HE_POOL_SIZE: '4' });
    keysDir = veil.config.keysDir;
  });
  after(async () => {
    await veil?.stop();
  });

  test('generated at the first start, sealed in KEYS_DIR, published at he_jwks_uri', async () => {
    const { uri, jwks, response } = await heJwks(veil);
    assert.equal(uri, `${veil.issuer}/he/jwks`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^application\/jwk-set\+json/);
    assert.equal(jwks.keys.length, 1);
    const published = publicKeyFromJwk(jwks.keys[0]);
    assert.equal(published.bits, 2048);
    assert.deepEqual(Object.keys(jwks.keys[0]!).sort(), ['alg', 'kid', 'kty', 'n', 'use']);

    const text = await fs.readFile(path.join(keysDir, HE_KEYS_FILE), 'utf8');
    const stored = (JSON.parse(text) as { keys: StoredHeKey[] }).keys;
    assert.equal(stored.length, 1);
    assert.equal(stored[0]!.kid, published.kid);
    assert.match(stored[0]!.sealed, /^v2\./);
    const envelope = await masterEnvelope(keysDir);
    const { p, q } = openPrimes(envelope, stored[0]!);
    assert.equal(p * q, published.n);
    for (const s of [...spellings(p), ...spellings(q)]) assert.ok(!text.includes(s), 'no prime in plain in he-keys.json');
    // The sealed value is bound to its kid: it does not open as another key's.
    assert.throws(() => openPrimes(envelope, { kid: 'he-other', sealed: stored[0]!.sealed }));
    // What a node encrypts under the published key, the sealed primes decrypt.
    const { secretKey } = keyPairFromPrimes(p, q, published.kid);
    assert.equal(decrypt(secretKey, encrypt(published, -34n)), -34n);
  });

  test('the randomness pool costs nothing before the first confidential claim (GET /metrics)', async () => {
    // test/unit/he-randomness-pool.test.ts fills pools through real worker threads; test/integration/he-claims.test.ts issues through this one.
    await new Promise((r) => setTimeout(r, 500));
    const text = await (await fetch(`${veil.adminUrl}/metrics`)).text();
    assert.match(text, /^veil_he_randomness_pool_ready 0$/m);
    assert.match(text, /^veil_he_randomness_served_total 0$/m);
    assert.match(text, /^veil_he_randomness_misses_total 0$/m);
  });

  test('he_jwks_uri answers GET and HEAD only, in OAuth JSON', async () => {
    const { uri } = await heJwks(veil);
    assert.equal((await fetch(uri, { method: 'HEAD' })).status, 200);
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const res = await fetch(uri, { method });
      assert.equal(res.status, 405);
      assert.equal(res.headers.get('allow'), 'GET, HEAD');
      assert.equal(((await res.json()) as { error: string }).error, 'invalid_request');
    }
  });

  test('veil keys rotate --he (admin API, then --local): the new key is active, the old ones kept until their tokens have expired', async () => {
    const before = (await heJwks(veil)).jwks.keys.map((k) => k.kid);
    assert.equal(before.length, 1);
    const env = { NODE_ENV: 'test', KEYS_DIR: keysDir, VEIL_DATA_DIR: path.join(veil.tmpDir, 'data'), HE_KEY_BITS: '2048' };
    type Out = { activated: { kid: string; bits: number; status: string }; keys: Array<{ kid: string; status: string; drop_after?: string }> };

    const viaApi = await cli(['--admin-url', veil.adminUrl, '--admin-token', veil.adminToken, 'keys', 'rotate', '--he'], env);
    assert.equal(viaApi.code, 0, viaApi.stderr);
    const first = JSON.parse(viaApi.stdout) as Out;
    assert.equal(first.activated.bits, 2048);
    assert.equal(first.activated.status, 'active');
    const old = first.keys.find((k) => k.kid === before[0]);
    assert.equal(old?.status, 'retiring');
    // Kept past the longest access token (one day) a resource server may be registered with.
    assert.ok(Date.parse(old.drop_after!) - Date.now() >= 86_400_000);
    assert.ok(!JSON.stringify(first).includes('sealed'));
    // The process that served the rotation re-read its ring at once.
    assert.deepEqual(
      (await heJwks(veil)).jwks.keys.map((k) => k.kid),
      [first.activated.kid, before[0]],
    );

    const viaStore = await cli(['keys', 'rotate', '--he', '--local'], env);
    assert.equal(viaStore.code, 0, viaStore.stderr);
    const second = JSON.parse(viaStore.stdout) as Out;
    // Running processes pick a rotation in the store up within KEYS_RELOAD_SECONDS.
    let kids: string[] = [];
    for (let i = 0; i < 50 && kids.length < 3; i++) {
      await new Promise((r) => setTimeout(r, 200));
      kids = (await heJwks(veil)).jwks.keys.map((k) => k.kid);
    }
    assert.deepEqual(kids, [second.activated.kid, first.activated.kid, before[0]]);
    const listed = await veil.admin<{ keys: Array<{ kid: string; status: string }> }>('GET', '/admin/keys/he');
    assert.deepEqual(
      listed.body.keys.map((k) => [k.kid, k.status]).sort(),
      [
        [before[0], 'retiring'],
        [first.activated.kid, 'retiring'],
        [second.activated.kid, 'active'],
      ].sort(),
    );
  });

  test('the admin routes refuse callers without the admin token, and change nothing', async () => {
    const before = await fs.readFile(path.join(keysDir, HE_KEYS_FILE), 'utf8');
    for (const headers of [{}, { authorization: 'Bearer wrong-token-wrong-token-wrong-token' }] as Array<Record<string, string>>) {
      const rotate = await fetch(`${veil.adminUrl}/admin/keys/he/rotate`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{}' });
      assert.equal(rotate.status, 401);
      const list = await fetch(`${veil.adminUrl}/admin/keys/he`, { headers });
      assert.equal(list.status, 401);
    }
    assert.equal(await fs.readFile(path.join(keysDir, HE_KEYS_FILE), 'utf8'), before);
  });
});

describe('HE key lifecycle on a file store', () => {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-he-keys-'));
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('a retired key is dropped once its grace has passed; the active key never is', async () => {
    const envelope = new Envelope(parseMasterKeys(generateMasterKey(), 'test'));
    const store = new FileHeKeyStore(dir);
    const { ring, created } = await loadOrCreateHeKeys(store, envelope, 2048);
    assert.ok(created);
    const first = ring.active().kid;
    // A second start finds the key and creates none.
    assert.equal((await loadOrCreateHeKeys(store, envelope, 2048)).created, undefined);

    const { activated } = await rotateHeKey(store, envelope, { bits: 2048, graceSeconds: 1 });
    assert.equal(await ring.refresh(store, envelope), true);
    assert.equal(ring.active().kid, activated.kid);
    assert.ok(ring.secret(first), 'the old key still decrypts');
    assert.deepEqual(
      ring.publicJwks().keys.map((k) => k.kid),
      [activated.kid, first],
    );
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal(ring.secret(first), undefined);
    assert.deepEqual(
      ring.publicJwks().keys.map((k) => k.kid),
      [activated.kid],
    );
    assert.ok(ring.secret(activated.kid));
    // The next change removes it from the store too.
    const third = await rotateHeKey(store, envelope, { bits: 2048, graceSeconds: 60 });
    assert.deepEqual(
      third.keys.map((k) => k.kid),
      [activated.kid, third.activated.kid],
    );
  });

  test('rotate-master re-seals HE keys: they then open under the new master key alone', async () => {
    const oldKey = generateMasterKey();
    const newKey = generateMasterKey();
    const sub = await fs.mkdtemp(path.join(dir, 'reseal-'));
    const store = new FileHeKeyStore(sub);
    const { ring } = await loadOrCreateHeKeys(store, new Envelope(parseMasterKeys(oldKey, 'old')), 2048);
    await assert.rejects(loadOrCreateHeKeys(store, new Envelope(parseMasterKeys(newKey, 'new')), 2048), /cannot be opened with the configured master key/);
    assert.equal(await resealHeKeys(store, new Envelope(parseMasterKeys(`${newKey},${oldKey}`, 'both'))), 1);
    const reopened = await loadOrCreateHeKeys(store, new Envelope(parseMasterKeys(newKey, 'new')), 2048);
    assert.equal(reopened.created, undefined);
    assert.equal(reopened.ring.active().n, ring.active().n);
    assert.equal(await resealHeKeys(store, new Envelope(parseMasterKeys(newKey, 'new'))), 0);
  });

  test('a stored key whose primes do not match its modulus is refused', async () => {
    const envelope = new Envelope(parseMasterKeys(generateMasterKey(), 'test'));
    const sub = await fs.mkdtemp(path.join(dir, 'tamper-'));
    const store = new FileHeKeyStore(sub);
    await loadOrCreateHeKeys(store, envelope, 2048);
    const other = await fs.mkdtemp(path.join(dir, 'other-'));
    await loadOrCreateHeKeys(new FileHeKeyStore(other), envelope, 2048);
    const a = JSON.parse(await fs.readFile(path.join(sub, HE_KEYS_FILE), 'utf8')) as { version: 1; keys: StoredHeKey[] };
    const b = JSON.parse(await fs.readFile(path.join(other, HE_KEYS_FILE), 'utf8')) as { version: 1; keys: StoredHeKey[] };
    a.keys[0]!.n = b.keys[0]!.n;
    await fs.writeFile(path.join(sub, HE_KEYS_FILE), JSON.stringify(a));
    await assert.rejects(loadOrCreateHeKeys(store, envelope, 2048), /do not match its public modulus/);
  });
});

describe('HE keys with KEYS_STORE=database', () => {
  let stores: TestStores;
  let veil: TestVeil;
  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores, { KEYS_STORE: 'database', HE_KEY_BITS: '2048' });
  });
  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  test('one sealed row in he_keys, its public half at he_jwks_uri, no prime in plain anywhere in the row', async () => {
    const db = new pg.Client({ connectionString: stores.databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query<{ kid: string; bits: number; public_n: string; sealed_secret: string; whole: string }>(
        'SELECT kid, bits, public_n, sealed_secret, row_to_json(h)::text AS whole FROM he_keys h',
      );
      assert.equal(rows.length, 1);
      const row = rows[0]!;
      assert.equal(row.bits, 2048);
      assert.match(row.sealed_secret, /^v2\./);
      const { jwks } = await heJwks(veil);
      assert.deepEqual(
        jwks.keys.map((k) => [k.kid, k.n]),
        [[row.kid, row.public_n]],
      );
      const { p, q } = openPrimes(await masterEnvelope(veil.config.keysDir), { kid: row.kid, sealed: row.sealed_secret });
      assert.equal(p * q, publicKeyFromJwk(jwks.keys[0]).n);
      for (const s of [...spellings(p), ...spellings(q)]) assert.ok(!row.whole.includes(s), 'no prime in plain in he_keys');
      // The table itself refuses a plain secret.
      await assert.rejects(
        db.query("INSERT INTO he_keys (kid, bits, public_n, sealed_secret, created_at) VALUES ('x', 2048, 'n', $1, now())", [
          JSON.stringify({ p: p.toString(16), q: q.toString(16) }),
        ]),
        /he_keys_secret_sealed_check/,
      );
    } finally {
      await db.end();
    }
  });

  test('a restart keeps the key (no second key generated)', async () => {
    const kid = (await heJwks(veil)).jwks.keys[0]!.kid;
    const second = await startTestVeil(stores, { KEYS_STORE: 'database', HE_KEY_BITS: '2048', KEYS_DIR: veil.config.keysDir });
    try {
      assert.deepEqual(
        (await heJwks(second)).jwks.keys.map((k) => k.kid),
        [kid],
      );
    } finally {
      await second.stop();
    }
  });
});

describe('start-up self-test', () => {
  test('Veil refuses to start when OpenSSL modexp misbehaves, and says why', async () => {
    const stores = await createTestStores();
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-he-selftest-'));
    try {
      const env = {
        NODE_ENV: 'test',
        HOST: '127.0.0.1',
        PORT: '0',
        ADMIN_PORT: '0',
        KEYS_DIR: path.join(tmp, 'keys'),
        VEIL_DATA_DIR: path.join(tmp, 'data'),
        VEIL_SEED: 'off',
        DATABASE_URL: stores.databaseUrl,
        REDIS_URL: stores.redisUrl,
        REDIS_KEY_PREFIX: stores.keyPrefix,
        HE_KEY_BITS: '2048',
        WEB_CONCURRENCY: '1',
      };
      const proc = new ManagedProcess(process.execPath, ['--import', 'tsx', '--import', './test/helpers/broken-modexp.ts', 'src/main.ts'], env);
      const code = await new Promise<number | null>((resolve) => proc.child.once('close', resolve));
      assert.equal(code, 1, proc.output);
      assert.match(proc.output, /Paillier self-test failed/);
      assert.match(proc.output, /start-up failed/);
      // Nothing was generated: the self-test runs before any HE key exists.
      await assert.rejects(fs.access(path.join(tmp, 'keys', HE_KEYS_FILE)));
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
      await stores.cleanup();
    }
  });
});
