/**
 * The Envelope's AES-GCM details: full-length tags only, a key of its own for every sealed value
 * (so random IVs never approach GCM's per-key limit), values sealed by the first format still
 * open (and count as stale, so re-sealing upgrades them), and the short-lived store's keyed id
 * hashes use a key of their own, never the payload-encryption key.
 */
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { Envelope, MasterKeyError, generateMasterKey, parseMasterKeys, type MasterKey, type Purpose } from '../../src/crypto/master-key.js';
import { envelopeAtRest } from '../../src/store/at-rest.js';

const purposeKey = (master: MasterKey, purpose: Purpose) => Buffer.from(hkdfSync('sha256', master.secret, Buffer.alloc(0), `veil ${purpose}`, 32));

/** A value as the first format (`v1`) sealed it: the purpose key itself, a random IV. */
function sealV1(master: MasterKey, plaintext: string, purpose: Purpose, context = ''): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', purposeKey(master, purpose), iv);
  cipher.setAAD(Buffer.from(`${master.id}|${context}`));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ['v1', master.id, iv.toString('base64url'), ct.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
}

/** The same value with its tag cut to `bytes` bytes. */
function truncateTag(sealed: string, bytes: number): string {
  const parts = sealed.split('.');
  parts[parts.length - 1] = Buffer.from(parts.at(-1)!, 'base64url').subarray(0, bytes).toString('base64url');
  return parts.join('.');
}

describe('Envelope', () => {
  const [master] = parseMasterKeys(generateMasterKey(), 't') as [MasterKey];
  const envelope = new Envelope([master]);

  test('a value whose tag is cut short does not open (v1 and current format)', () => {
    for (const sealed of [sealV1(master, 'secret', 'client-secrets', 'c1'), envelope.seal('secret', 'client-secrets', 'c1')]) {
      assert.equal(envelope.open(sealed, 'client-secrets', 'c1'), 'secret');
      for (const bytes of [4, 8, 12, 15]) {
        assert.throws(() => envelope.open(truncateTag(sealed, bytes), 'client-secrets', 'c1'), MasterKeyError, `${bytes}-byte tag`);
      }
    }
  });

  test('every value is sealed under a key of its own: HKDF-Expand of the purpose key with a random salt stored in the value', () => {
    const a = envelope.seal('same text', 'short-lived-store', 'k');
    const b = envelope.seal('same text', 'short-lived-store', 'k');
    const [version, id, salt, ct, tag] = a.split('.') as [string, string, string, string, string];
    assert.equal(version, 'v2');
    assert.equal(id, master.id);
    assert.equal(Buffer.from(salt, 'base64url').length, 32);
    assert.equal(Buffer.from(tag, 'base64url').length, 16);
    assert.notEqual(salt, b.split('.')[2], 'a fresh salt per value');
    // Opened by hand: the per-message key is HKDF-Expand(purpose key, info || salt), one
    // HMAC block, and the nonce the salt's first 12 bytes; the purpose key itself does not open it.
    const saltBytes = Buffer.from(salt, 'base64url');
    const messageKey = createHmac('sha256', purposeKey(master, 'short-lived-store'))
      .update(Buffer.concat([Buffer.from('veil short-lived-store message\0'), saltBytes, Buffer.from([1])]))
      .digest();
    const okm = Buffer.concat([messageKey, saltBytes.subarray(0, 12)]);
    const decipher = createDecipheriv('aes-256-gcm', okm.subarray(0, 32), okm.subarray(32), { authTagLength: 16 });
    decipher.setAAD(Buffer.from(`v2|${master.id}|k`));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    assert.equal(Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8'), 'same text');
    assert.equal(envelope.isSealed(a), true);
  });

  test('values of the first format still open, bound as before, and are stale so re-sealing upgrades them', () => {
    const v1 = sealV1(master, 'Ada', 'personal-data', 'account-1');
    assert.equal(envelope.isSealed(v1), true);
    assert.equal(envelope.open(v1, 'personal-data', 'account-1'), 'Ada');
    assert.throws(() => envelope.open(v1, 'personal-data', 'account-2'), MasterKeyError);
    assert.equal(envelope.isStale(v1), true, 'v1 under the current master key is stale');
    const resealed = envelope.seal(envelope.open(v1, 'personal-data', 'account-1'), 'personal-data', 'account-1');
    assert.equal(envelope.isStale(resealed), false);
    // A v2 value cannot be passed off as v1 (or the reverse): the version is bound in.
    const v2 = envelope.seal('Ada', 'personal-data', 'account-1');
    assert.throws(() => envelope.open(v2.replace(/^v2\./, 'v1.'), 'personal-data', 'account-1'), MasterKeyError);
  });

  test('the short-lived store hashes ids under a key of their own, and still finds ids hashed the old way', () => {
    const atRest = envelopeAtRest(envelope);
    const encryptionKey = envelope.keyForIndex('short-lived-store', 0);
    const legacy = createHmac('sha256', encryptionKey).update('refresh-token-value').digest('base64url');
    const forms = atRest.ids('refresh-token-value');
    assert.notEqual(forms[0], legacy, 'writes do not hash under the encryption key');
    assert.ok(forms.includes(legacy), 'reads still try the old form');
    assert.equal(forms[0], createHmac('sha256', envelope.keyForIndex('short-lived-store-ids', 0)).update('refresh-token-value').digest('base64url'));
  });
});
