/**
 * The signing-key lifecycle (next -> active -> retiring -> gone) and the master key that seals
 * private keys at rest.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CompactSign, compactVerify, createLocalJWKSet, importJWK, type JWK } from 'jose';
import { loadOrCreateKeyRing, retireKey, rotateKeys } from '../../src/crypto/key-ring.js';
import { FileKeyStore } from '../../src/crypto/key-store-file.js';
import { KeyFileError, SIGNING_KEYS_FILE, loadOrCreateSigningKeys } from '../../src/crypto/keys.js';
import { Envelope, MasterKeyError, generateMasterKey, loadMasterKeys, parseMasterKeys } from '../../src/crypto/master-key.js';

let root: string;
let n = 0;
const freshDir = () => path.join(root, `ring-${++n}`);
const envelope = () => new Envelope(parseMasterKeys(generateMasterKey(), 'test'));

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-ring-'));
});
after(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

async function sign(jwk: JWK, alg: string): Promise<string> {
  return new CompactSign(new TextEncoder().encode('hello')).setProtectedHeader({ alg, kid: jwk.kid }).sign(await importJWK(jwk, alg));
}

describe('key ring', () => {
  test('first start: an active and a next key per algorithm; no private part readable on disk', async () => {
    const dir = freshDir();
    const env = envelope();
    const { ring, created } = await loadOrCreateKeyRing(new FileKeyStore(dir), env);
    assert.equal(created, true);
    assert.deepEqual(ring.keys.map((k) => `${k.alg}:${k.status}`).sort(), ['ES256:active', 'ES256:next', 'RS256:active', 'RS256:next']);
    const text = await fs.readFile(path.join(dir, SIGNING_KEYS_FILE), 'utf8');
    assert.doesNotMatch(text, /"d"\s*:/, 'no private JWK member on disk');
    assert.equal((await fs.stat(path.join(dir, SIGNING_KEYS_FILE))).mode & 0o777, 0o600);
    // Only active keys may sign; next keys are published for verification only.
    const jwks = ring.signingJwks(env);
    assert.deepEqual(
      jwks
        .filter((k) => !k.key_ops)
        .map((k) => k.alg)
        .sort(),
      ['ES256', 'RS256'],
    );
    assert.ok(jwks.filter((k) => k.key_ops).every((k) => k.key_ops!.join() === 'verify'));
    assert.equal(ring.publicJwks().keys.length, 4);
    assert.ok(ring.publicJwks().keys.every((k) => !('d' in k)));
  });

  test('a wrong master key stops start-up with a clear error and leaves the file untouched', async () => {
    const dir = freshDir();
    await loadOrCreateKeyRing(new FileKeyStore(dir), envelope());
    const before = await fs.readFile(path.join(dir, SIGNING_KEYS_FILE), 'utf8');
    await assert.rejects(
      loadOrCreateKeyRing(new FileKeyStore(dir), envelope()),
      (err: unknown) => err instanceof KeyFileError && /cannot be decrypted with the configured master key/.test(err.message),
    );
    assert.equal(await fs.readFile(path.join(dir, SIGNING_KEYS_FILE), 'utf8'), before);
  });

  test('a key file of the first format (plain private keys) is sealed in place, keeping its kids', async () => {
    const dir = freshDir();
    const { keys } = await loadOrCreateSigningKeys(dir);
    const env = envelope();
    const { ring, upgraded } = await loadOrCreateKeyRing(new FileKeyStore(dir), env);
    assert.equal(upgraded, true);
    for (const old of keys) assert.equal(ring.active(old.alg)?.kid, old.kid);
    assert.doesNotMatch(await fs.readFile(path.join(dir, SIGNING_KEYS_FILE), 'utf8'), /"d"\s*:/);
  });

  test('rotation: next becomes active, the old active keeps verifying until its grace ends, then leaves the JWKS', async () => {
    const dir = freshDir();
    const env = envelope();
    const { ring } = await loadOrCreateKeyRing(new FileKeyStore(dir), env);
    const oldActive = ring.active('ES256')!;
    const published = ring.keys.find((k) => k.alg === 'ES256' && k.status === 'next')!;
    const oldJwk = ring.signingJwks(env).find((k) => k.kid === oldActive.kid)!;
    const oldSignature = await sign(oldJwk, 'ES256');

    const now = new Date();
    const { ring: rotated, activated } = await rotateKeys(new FileKeyStore(dir), env, { algs: ['ES256'], graceSeconds: 600, now });
    assert.deepEqual(
      activated.map((k) => k.kid),
      [published.kid],
      'the key published in advance is the one that starts signing',
    );
    assert.equal(rotated.active('ES256')!.kid, published.kid);
    assert.equal(rotated.active('RS256')!.kid, ring.active('RS256')!.kid, 'other algorithms untouched');
    // The old signature still verifies against the published JWKS during the grace period...
    await compactVerify(oldSignature, createLocalJWKSet(rotated.publicJwks(now)));
    // ...and not once it is over.
    const later = new Date(now.getTime() + 601_000);
    await assert.rejects(compactVerify(oldSignature, createLocalJWKSet(rotated.publicJwks(later))));
    // A new next key is published for the following rotation.
    assert.ok(rotated.keys.some((k) => k.alg === 'ES256' && k.status === 'next' && k.kid !== published.kid));
  });

  test('retire: refused for active keys and before the grace ends unless forced', async () => {
    const dir = freshDir();
    const env = envelope();
    const { ring } = await loadOrCreateKeyRing(new FileKeyStore(dir), env);
    const active = ring.active('RS256')!;
    await assert.rejects(retireKey(new FileKeyStore(dir), active.kid), /only retiring keys/);
    await rotateKeys(new FileKeyStore(dir), env, { algs: ['RS256'], graceSeconds: 600 });
    await assert.rejects(retireKey(new FileKeyStore(dir), active.kid), /--force/);
    const after = await retireKey(new FileKeyStore(dir), active.kid, { force: true });
    assert.equal(
      after.keys.some((k) => k.kid === active.kid),
      false,
    );
  });

  test('concurrent rotations serialize: each activates a distinct key', async () => {
    const dir = freshDir();
    const env = envelope();
    await loadOrCreateKeyRing(new FileKeyStore(dir), env);
    const results = await Promise.all([1, 2, 3].map(() => rotateKeys(new FileKeyStore(dir), env, { algs: ['ES256'], graceSeconds: 60 })));
    const kids = results.map((r) => r.activated[0]!.kid);
    assert.equal(new Set(kids).size, 3);
  });
});

describe('master key', () => {
  test('VEIL_MASTER_KEY must be base64url of 32 bytes; several keys are accepted, current first', () => {
    assert.throws(() => parseMasterKeys('short', 'VEIL_MASTER_KEY'), MasterKeyError);
    const [a, b] = [generateMasterKey(), generateMasterKey()];
    const keys = parseMasterKeys(`${a},${b}`, 'VEIL_MASTER_KEY');
    assert.equal(keys.length, 2);
    assert.equal(keys[0]!.secret.toString('base64url'), a);
  });

  test('production without a master key is refused; development generates one (0600) once', async () => {
    const dir = freshDir();
    await assert.rejects(loadMasterKeys({ keysDir: dir, production: true }), /production needs a master key/);
    const first = await loadMasterKeys({ keysDir: dir, production: false });
    assert.equal(first.created, true);
    const second = await loadMasterKeys({ keysDir: dir, production: false });
    assert.equal(second.created, false);
    assert.equal(second.keys[0]!.id, first.keys[0]!.id);
  });

  test('sealed values are bound to their purpose and context, and readable after rotation ("new,old")', () => {
    const old = generateMasterKey();
    const before = new Envelope(parseMasterKeys(old, 't'));
    const sealed = before.seal('secret', 'client-secrets', 'client-1');
    assert.equal(before.open(sealed, 'client-secrets', 'client-1'), 'secret');
    assert.throws(() => before.open(sealed, 'client-secrets', 'client-2'), MasterKeyError);
    assert.throws(() => before.open(sealed, 'personal-data', 'client-1'), MasterKeyError);
    const rotated = new Envelope(parseMasterKeys(`${generateMasterKey()},${old}`, 't'));
    assert.equal(rotated.open(sealed, 'client-secrets', 'client-1'), 'secret');
    assert.equal(rotated.isStale(sealed), true);
    assert.equal(rotated.isStale(rotated.seal('x', 'client-secrets')), false);
    const stranger = new Envelope(parseMasterKeys(generateMasterKey(), 't'));
    assert.throws(() => stranger.open(sealed, 'client-secrets', 'client-1'), /not configured/);
  });
});
