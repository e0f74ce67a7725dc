/**
 * Key material in KEYS_DIR: generated once, loaded afterwards, never overwritten.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { calculateJwkThumbprint, compactVerify, CompactSign, importJWK, type JWK } from 'jose';
import { COOKIE_KEYS_FILE, KeyFileError, SIGNING_KEYS_FILE, loadOrCreateCookieKeys, loadOrCreateSigningKeys, type SigningJwk } from '../../src/crypto/keys.js';

let root: string;
let counter = 0;

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-keys-test-'));
});
after(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

/** A keys directory path that does not exist yet (the functions must create it). */
function freshKeysDir(): string {
  counter += 1;
  return path.join(root, `case-${counter}`, 'keys');
}

async function writeKeyFile(dir: string, file: string, content: string): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const target = path.join(dir, file);
  await fs.writeFile(target, content);
  return target;
}

const mode = async (p: string) => (await fs.stat(p)).mode & 0o777;

function publicPart(jwk: SigningJwk): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk;
  return pub;
}

async function rejectsWithKeyFileError(promise: Promise<unknown>, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof KeyFileError, `expected KeyFileError, got ${String(err)}`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

describe('loadOrCreateSigningKeys', () => {
  test('the first call creates an RS256 and an ES256 private JWK with kids, in a 0600 file', async () => {
    const dir = freshKeysDir();
    const { keys, created } = await loadOrCreateSigningKeys(dir);
    assert.equal(created, true);
    assert.deepEqual(
      keys.map((k) => k.alg),
      ['RS256', 'ES256'],
    );

    const [rsa, ec] = keys as [SigningJwk, SigningJwk];
    assert.equal(rsa.kty, 'RSA');
    assert.equal(Buffer.from(rsa.n!, 'base64url').length * 8, 2048, 'RSA modulus is 2048 bits');
    for (const part of ['d', 'p', 'q', 'dp', 'dq', 'qi'] as const) assert.ok(rsa[part], `RSA key has private part ${part}`);
    assert.equal(ec.kty, 'EC');
    assert.equal(ec.crv, 'P-256');
    assert.ok(ec.d, 'EC key has its private part');

    for (const key of keys) {
      assert.equal(key.use, 'sig');
      assert.equal(key.kid, (await calculateJwkThumbprint(publicPart(key))).slice(0, 16), 'kid is the start of the RFC 7638 thumbprint');
    }
    assert.notEqual(rsa.kid, ec.kid);

    const file = path.join(dir, SIGNING_KEYS_FILE);
    assert.equal(await mode(file), 0o600, 'signing keys file is private to its owner');
    assert.equal(await mode(dir), 0o700, 'a keys directory it creates is private to its owner');
    assert.deepEqual(JSON.parse(await fs.readFile(file, 'utf8')), { keys });
  });

  test('the generated keys sign, and their public parts verify', async () => {
    const { keys } = await loadOrCreateSigningKeys(freshKeysDir());
    for (const key of keys) {
      const jws = await new CompactSign(new TextEncoder().encode('veil')).setProtectedHeader({ alg: key.alg, kid: key.kid }).sign(await importJWK(key, key.alg));
      const { payload } = await compactVerify(jws, await importJWK(publicPart(key), key.alg));
      assert.equal(new TextDecoder().decode(payload), 'veil');
    }
  });

  test('the second call loads the identical keys and does not rewrite the file', async () => {
    const dir = freshKeysDir();
    const first = await loadOrCreateSigningKeys(dir);
    const file = path.join(dir, SIGNING_KEYS_FILE);
    const contentBefore = await fs.readFile(file, 'utf8');
    const mtimeBefore = (await fs.stat(file)).mtimeMs;

    const second = await loadOrCreateSigningKeys(dir);
    assert.equal(second.created, false);
    assert.deepEqual(second.keys, first.keys);
    assert.equal(await fs.readFile(file, 'utf8'), contentBefore);
    assert.equal((await fs.stat(file)).mtimeMs, mtimeBefore);
  });

  test('concurrent first calls agree on one set of keys', async () => {
    const dir = freshKeysDir();
    const results = await Promise.all([loadOrCreateSigningKeys(dir), loadOrCreateSigningKeys(dir), loadOrCreateSigningKeys(dir)]);
    assert.equal(results.filter((r) => r.created).length, 1, 'exactly one call created the file');
    for (const r of results) assert.deepEqual(r.keys, results[0].keys);
    assert.deepEqual((JSON.parse(await fs.readFile(path.join(dir, SIGNING_KEYS_FILE), 'utf8')) as { keys: unknown }).keys, results[0].keys);
  });

  test('a file that is not valid JSON throws KeyFileError and is left untouched', async () => {
    const dir = freshKeysDir();
    const corrupt = '{"keys": [ {"kty": "RSA", truncated';
    const file = await writeKeyFile(dir, SIGNING_KEYS_FILE, corrupt);
    await rejectsWithKeyFileError(loadOrCreateSigningKeys(dir), /not valid JSON/);
    assert.equal(await fs.readFile(file, 'utf8'), corrupt, 'the corrupt file was not overwritten');
    assert.deepEqual(await fs.readdir(dir), [SIGNING_KEYS_FILE], 'no replacement file was written next to it');
  });

  test('a file with an empty "keys" array throws KeyFileError and is left untouched', async () => {
    const dir = freshKeysDir();
    const file = await writeKeyFile(dir, SIGNING_KEYS_FILE, '{"keys": []}');
    await rejectsWithKeyFileError(loadOrCreateSigningKeys(dir), /"keys"/);
    assert.equal(await fs.readFile(file, 'utf8'), '{"keys": []}');
  });

  test('a file without a "keys" array, or with a public-only key, throws KeyFileError', async () => {
    const dir = freshKeysDir();
    await writeKeyFile(dir, SIGNING_KEYS_FILE, '{"kty": "RSA"}');
    await rejectsWithKeyFileError(loadOrCreateSigningKeys(dir));

    const { keys } = await loadOrCreateSigningKeys(freshKeysDir());
    const publicOnly = keys.map((k) => ({ ...publicPart(k), kid: k.kid, alg: k.alg, use: k.use }));
    const other = freshKeysDir();
    await writeKeyFile(other, SIGNING_KEYS_FILE, JSON.stringify({ keys: publicOnly }));
    await rejectsWithKeyFileError(loadOrCreateSigningKeys(other), /private part/);
  });
});

describe('loadOrCreateCookieKeys', () => {
  test('the first call creates one random key of 32+ characters in a 0600 file', async () => {
    const dir = freshKeysDir();
    const keys = await loadOrCreateCookieKeys(dir);
    assert.equal(keys.length, 1);
    assert.ok(keys[0]!.length >= 32, 'cookie key has at least 32 characters');
    const file = path.join(dir, COOKIE_KEYS_FILE);
    assert.equal(await mode(file), 0o600);
    assert.deepEqual(JSON.parse(await fs.readFile(file, 'utf8')), { keys });
  });

  test('later calls reuse the same keys; another directory gets different ones', async () => {
    const dir = freshKeysDir();
    const first = await loadOrCreateCookieKeys(dir);
    const contentBefore = await fs.readFile(path.join(dir, COOKIE_KEYS_FILE), 'utf8');
    assert.deepEqual(await loadOrCreateCookieKeys(dir), first);
    assert.deepEqual(await loadOrCreateCookieKeys(dir), first);
    assert.equal(await fs.readFile(path.join(dir, COOKIE_KEYS_FILE), 'utf8'), contentBefore);
    assert.notDeepEqual(await loadOrCreateCookieKeys(freshKeysDir()), first);
  });

  test('an operator-provided file with several keys is loaded as is', async () => {
    const dir = freshKeysDir();
    const keys = ['k'.repeat(32), 'l'.repeat(48)];
    await writeKeyFile(dir, COOKIE_KEYS_FILE, JSON.stringify({ keys }));
    assert.deepEqual(await loadOrCreateCookieKeys(dir), keys);
  });

  test('concurrent first calls agree on one key', async () => {
    const dir = freshKeysDir();
    const results = await Promise.all(Array.from({ length: 5 }, () => loadOrCreateCookieKeys(dir)));
    for (const r of results) assert.deepEqual(r, results[0]);
  });

  test('signing keys and cookie keys live side by side in one directory', async () => {
    const dir = freshKeysDir();
    const cookie = await loadOrCreateCookieKeys(dir);
    const signing = await loadOrCreateSigningKeys(dir);
    assert.equal(signing.created, true);
    assert.deepEqual((await fs.readdir(dir)).sort(), [COOKIE_KEYS_FILE, SIGNING_KEYS_FILE].sort());
    assert.deepEqual(await loadOrCreateCookieKeys(dir), cookie);
  });

  test('a file that is not valid JSON throws KeyFileError and is left untouched', async () => {
    const dir = freshKeysDir();
    const file = await writeKeyFile(dir, COOKIE_KEYS_FILE, 'keys = abc');
    await rejectsWithKeyFileError(loadOrCreateCookieKeys(dir), /not valid JSON/);
    assert.equal(await fs.readFile(file, 'utf8'), 'keys = abc');
  });

  test('a file with a short key, or no "keys" array, throws KeyFileError and is left untouched', async () => {
    for (const content of [JSON.stringify({ keys: ['too-short'] }), JSON.stringify({ keys: 'x'.repeat(40) }), '{}']) {
      const dir = freshKeysDir();
      const file = await writeKeyFile(dir, COOKIE_KEYS_FILE, content);
      await rejectsWithKeyFileError(loadOrCreateCookieKeys(dir), /32\+ characters/);
      assert.equal(await fs.readFile(file, 'utf8'), content);
    }
  });
});
