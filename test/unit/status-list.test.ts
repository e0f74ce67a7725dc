/**
 * The Token Status List core without a server: the byte layout and compression against the
 * draft's own examples and test vectors, the BITFIELD offsets Redis is written at, the settings'
 * checks, slot encoding, and the renderer on the in-process store: its tokens verified with jose,
 * read by an independent implementation (@sd-jwt/jwt-status-list), a tampered one refused, and
 * one render per ttl however many ask.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, test } from 'node:test';
import { getListFromStatusListJWT, StatusList } from '@sd-jwt/jwt-status-list';
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import type { SigningKey } from '../../src/crypto/sealer.js';
import { TokenStatus, compressList, decompressList, listByteLength, readStatus, redisBitOffset, storedValue, writeStatus, type StatusBits } from '../../src/status-list/format.js';
import { MemoryStatusListStore } from '../../src/status-list/memory-status-list-store.js';
import { STATUS_LIST_DEFAULTS, isListId, statusListSettings, statusListUri } from '../../src/status-list/options.js';
import { StatusListRenderer } from '../../src/status-list/renderer.js';
import { decodeSlot, encodeSlot, newListId, type StatusListSnapshot } from '../../src/status-list/store.js';

const ISSUER = 'https://veil.example.com';

/** An ES256 key pair, re-imported from DER (a JWK export of a key fresh from generateKeyPairSync can deadlock Node 20). */
function es256(): { signer: SigningKey; publicKey: KeyObject } {
  const generate = generateKeyPairSync as unknown as (t: string, o: object) => { privateKey: Buffer };
  const der = generate('ec', { namedCurve: 'P-256', publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } });
  const key = createPrivateKey({ key: der.privateKey, format: 'der', type: 'pkcs8' });
  return { signer: { kid: 'status-test-key', alg: 'ES256', key }, publicKey: createPublicKey(key) };
}

// ---------------------------------------------------------------------------------------------
// Byte layout and compression: the draft's examples (§4.1) and test vectors (Appendix).

describe('status list format', () => {
  test('bits are packed from the least significant bit of byte 0, as the draft examples lay them out', () => {
    // §4.1, bits 1: statuses of 16 tokens make 0xB9 0xA3.
    const one = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1];
    const bytes1 = new Uint8Array(listByteLength(16, 1));
    one.forEach((v, i) => writeStatus(bytes1, i, 1, v));
    assert.deepEqual([...bytes1], [0xb9, 0xa3]);
    one.forEach((v, i) => assert.equal(readStatus(bytes1, i, 1), v, `index ${i}`));
    // §4.1, bits 2: statuses of 12 tokens make 0xC9 0x44 0xF9.
    const two = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3];
    const bytes2 = new Uint8Array(listByteLength(12, 2));
    two.forEach((v, i) => writeStatus(bytes2, i, 2, v));
    assert.deepEqual([...bytes2], [0xc9, 0x44, 0xf9]);
    two.forEach((v, i) => assert.equal(readStatus(bytes2, i, 2), v, `index ${i}`));
  });

  test('writing one entry leaves its neighbours alone, and bytes past the end read as VALID', () => {
    for (const bits of [1, 2] as StatusBits[]) {
      const bytes = new Uint8Array(4).fill(0xff);
      writeStatus(bytes, 5, bits, 0);
      for (let i = 0; i < (4 * 8) / bits; i++) assert.equal(readStatus(bytes, i, bits), i === 5 ? 0 : (1 << bits) - 1, `bits ${bits} index ${i}`);
      assert.equal(readStatus(new Uint8Array(1), 1000, bits), TokenStatus.VALID);
    }
  });

  test('the compressed array is the draft example byte for byte (ZLIB, level 9), and decompresses back', () => {
    const lst = compressList(Uint8Array.from([0xb9, 0xa3]));
    assert.equal(Buffer.from(lst, 'base64url').toString('hex'), '78dadbb918000217015d');
    assert.equal(lst, 'eNrbuRgAAhcBXQ');
    assert.equal(compressList(Uint8Array.from([0xc9, 0x44, 0xf9])), 'eNo76fITAAPfAgc');
    assert.deepEqual([...decompressList('eNo76fITAAPfAgc', 16)], [0xc9, 0x44, 0xf9]);
  });

  // Appendix "Test vectors": 2^20 entries, these indexes set, all others VALID.
  const VECTORS: Array<{ bits: StatusBits; lst: string; set: Record<number, number> }> = [
    {
      bits: 1,
      lst: 'eNrt3AENwCAMAEGogklACtKQPg9LugC9k_ACvreiogEAAKkeCQAAAAAAAAAAAAAAAAAAAIBylgQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAXG9IAAAAAAAAAPwsJAAAAAAAAAAAAAAAvhsSAAAAAAAAAAAA7KpLAAAAAAAAAAAAAAAAAAAAAJsLCQAAAAAAAAAAADjelAAAAAAAAAAAKjDMAQAAAACAZC8L2AEb',
      set: { 0: 1, 1993: 1, 25460: 1, 159495: 1, 495669: 1, 554353: 1, 645645: 1, 723232: 1, 854545: 1, 934534: 1, 1000345: 1 },
    },
    {
      bits: 2,
      lst: 'eNrt2zENACEQAEEuoaBABP5VIO01fCjIHTMStt9ovGVIAAAAAABAbiEBAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAEB5WwIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAID0ugQAAAAAAAAAAAAAAAAAQG12SgAAAAAAAAAAAAAAAAAAAAAAAAAAAOCSIQEAAAAAAAAAAAAAAAAAAAAAAAD8ExIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAwJEuAQAAAAAAAAAAAAAAAAAAAAAAAMB9SwIAAAAAAAAAAAAAAAAAAACoYUoAAAAAAAAAAAAAAEBqH81gAQw',
      set: { 0: 1, 1993: 2, 25460: 1, 159495: 3, 495669: 1, 554353: 1, 645645: 2, 723232: 1, 854545: 1, 934534: 2, 1000345: 3 },
    },
  ];

  for (const { bits, lst, set } of VECTORS) {
    test(`the draft's ${bits}-bit test vector decodes to its statuses, and the same statuses encode to the same bytes`, () => {
      const size = 2 ** 20;
      const bytes = decompressList(lst, listByteLength(size, bits));
      assert.equal(bytes.length, listByteLength(size, bits));
      let nonZero = 0;
      for (let i = 0; i < size; i++) {
        const status = readStatus(bytes, i, bits);
        assert.equal(status, set[i] ?? 0, `index ${i}`);
        if (status) nonZero++;
      }
      assert.equal(nonZero, Object.keys(set).length);
      const ours = new Uint8Array(listByteLength(size, bits));
      for (const [i, v] of Object.entries(set)) writeStatus(ours, Number(i), bits, v);
      // The same bytes; the compressed stream itself may differ between zlib builds (it does for the 1-bit vector).
      assert.deepEqual(decompressList(compressList(ours), bytes.length), bytes);
    });
  }

  test('an lst that inflates beyond the bound is refused, not inflated', () => {
    const bomb = compressList(new Uint8Array(1 << 20));
    assert.throws(() => decompressList(bomb, 1024), /maxOutputLength|Cannot create a Buffer larger|buffer/i);
  });

  test('BITFIELD offsets put each value where the draft reads it (Redis numbers bits from the most significant one)', () => {
    // Redis' BITFIELD SET u<bits> <offset> <value>, emulated: bit n of a string is byte n>>3,
    // mask 0x80 >> (n & 7), and a field's bits go high to low.
    const redisSet = (bytes: Uint8Array, offset: number, bits: number, value: number) => {
      for (let j = 0; j < bits; j++) {
        const n = offset + j;
        const bit = (value >> (bits - 1 - j)) & 1;
        bytes[n >> 3] = (bytes[n >> 3]! & ~(0x80 >> (n & 7))) | (bit ? 0x80 >> (n & 7) : 0);
      }
    };
    for (const bits of [1, 2] as StatusBits[]) {
      for (let idx = 0; idx < 64 / bits; idx++) {
        for (let value = 1; value < 1 << bits; value++) {
          const viaRedis = new Uint8Array(8);
          redisSet(viaRedis, redisBitOffset(idx, bits), bits, value);
          const direct = new Uint8Array(8);
          writeStatus(direct, idx, bits, value);
          assert.deepEqual([...viaRedis], [...direct], `bits ${bits} index ${idx} value ${value}`);
        }
      }
    }
  });

  test('a 1-bit list stores SUSPENDED as INVALID (never more lenient than asked); a 2-bit list as itself', () => {
    assert.equal(storedValue(TokenStatus.SUSPENDED, 1), TokenStatus.INVALID);
    assert.equal(storedValue(TokenStatus.SUSPENDED, 2), TokenStatus.SUSPENDED);
    assert.equal(storedValue(TokenStatus.INVALID, 1), TokenStatus.INVALID);
    assert.equal(storedValue(TokenStatus.VALID, 2), TokenStatus.VALID);
  });
});

describe('status list settings and names', () => {
  test('defaults: 2^20 entries of 2 bits, ttl 60 s, exp 600 s', () => {
    assert.deepEqual(statusListSettings(), STATUS_LIST_DEFAULTS);
    assert.equal(STATUS_LIST_DEFAULTS.size, 1_048_576);
  });

  test('bad settings are refused, each named', () => {
    for (const [given, named] of [
      [{ size: 100 }, /size must be a multiple of 8/],
      [{ size: 0 }, /size/],
      [{ size: 2 ** 25 }, /size/],
      [{ bits: 4 as StatusBits }, /bits must be 1 or 2/],
      [{ ttlSeconds: 0 }, /ttlSeconds/],
      [{ ttlSeconds: 60, expSeconds: 100 }, /expSeconds must be .* at least twice ttlSeconds/],
      [{ reuseGraceSeconds: -1 }, /reuseGraceSeconds/],
    ] as const) {
      assert.throws(
        () => statusListSettings(given),
        (err: Error & { code?: string }) => err.code === 'invalid_config' && named.test(err.message),
      );
    }
  });

  test('list ids are 22 base64url characters; anything else is not one', () => {
    const id = newListId();
    assert.ok(isListId(id));
    for (const junk of ['', 'a', `${id}x`, id.slice(1), '../../../etc/passwd', `{sl:${id.slice(4)}`, 'é'.repeat(22), `${id.slice(0, 21)}%`, `${id.slice(0, 21)}\n`]) {
      assert.equal(isListId(junk), false, JSON.stringify(junk));
    }
    assert.equal(statusListUri(ISSUER, id), `${ISSUER}/status-lists/${id}`);
  });

  test('a slot survives its string form; malformed strings are no slot', () => {
    const slot = { list: newListId(), idx: 1_048_575, exp: 1_900_000_000 };
    assert.deepEqual(decodeSlot(encodeSlot(slot)), slot);
    for (const junk of ['', 'x.1.2', `${slot.list}.-1.2`, `${slot.list}.1`, `${slot.list}.1.2.3`, `${slot.list}.1e3.2`]) assert.equal(decodeSlot(junk), undefined, junk);
  });
});

// ---------------------------------------------------------------------------------------------
// The renderer on the in-process store.

/** The token with the status at `idx` set to `value` in its payload, header and signature kept: a list altered after signing. */
function alterAfterSigning(token: string, idx: number, value: number): string {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { status_list: { bits: StatusBits; lst: string } };
  const bytes = decompressList(claims.status_list.lst, 1 << 24);
  writeStatus(bytes, idx, claims.status_list.bits, value);
  claims.status_list.lst = compressList(bytes);
  return `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
}

describe('status list renderer', () => {
  const size = 1024;

  test('a statuslist+jwt signed with the access-token key: jose verifies it, the claims are the draft’s, the statuses are the store’s', async () => {
    const store = new MemoryStatusListStore({ size, bits: 2 });
    const { signer, publicKey } = es256();
    const renderer = new StatusListRenderer({ store, signer, issuer: ISSUER, ttlSeconds: 60, expSeconds: 600 });
    const exp = Math.floor(Date.now() / 1000) + 600;
    const slots = await Promise.all(Array.from({ length: 20 }, () => store.allocate(exp)));
    const list = slots[0]!.list;
    assert.ok(slots.every((s) => s.list === list));
    assert.equal(await store.setStatus(slots[3]!, TokenStatus.INVALID), true);
    assert.equal(await store.setStatus(slots[7]!, TokenStatus.SUSPENDED), true);

    const before = Math.floor(Date.now() / 1000);
    const rendered = await renderer.get(list);
    assert.ok(rendered);
    const { payload, protectedHeader } = await jwtVerify(rendered.token, publicKey, { typ: 'statuslist+jwt', issuer: ISSUER, subject: renderer.uri(list), algorithms: ['ES256'] });
    assert.deepEqual(protectedHeader, { alg: 'ES256', typ: 'statuslist+jwt', kid: signer.kid });
    assert.equal(payload.sub, `${ISSUER}/status-lists/${list}`);
    assert.ok(payload.iat! >= before && payload.iat! <= before + 1);
    assert.equal(payload.exp, payload.iat! + 600);
    assert.equal(payload.ttl, 60);
    const statusList = payload.status_list as { bits: number; lst: string };
    assert.equal(statusList.bits, 2);
    assert.deepEqual(Object.keys(payload).sort(), ['exp', 'iat', 'iss', 'status_list', 'sub', 'ttl']);
    const bytes = decompressList(statusList.lst, 1 << 20);
    assert.equal(bytes.length, listByteLength(size, 2));
    for (const [n, slot] of slots.entries()) {
      assert.equal(readStatus(bytes, slot.idx, 2), n === 3 ? TokenStatus.INVALID : n === 7 ? TokenStatus.SUSPENDED : TokenStatus.VALID, `slot ${n}`);
    }

    // The independent implementation reads the same list, every entry.
    const theirs = getListFromStatusListJWT(rendered.token);
    assert.equal(theirs.getBitsPerStatus(), 2);
    assert.equal(theirs.statusList.length, size);
    for (let i = 0; i < size; i++) assert.equal(theirs.getStatus(i), readStatus(bytes, i, 2), `index ${i}`);
  });

  test('a list with one status changed after signing is refused by jose; the independent decoder shows the change is real', async () => {
    const store = new MemoryStatusListStore({ size, bits: 1 });
    const { signer, publicKey } = es256();
    const renderer = new StatusListRenderer({ store, signer, issuer: ISSUER, ttlSeconds: 60, expSeconds: 600 });
    const slot = await store.allocate(Math.floor(Date.now() / 1000) + 600);
    await store.setStatus(slot, TokenStatus.INVALID);
    const rendered = (await renderer.get(slot.list))!;
    await jwtVerify(rendered.token, publicKey, { typ: 'statuslist+jwt' });

    const revived = alterAfterSigning(rendered.token, slot.idx, TokenStatus.VALID);
    assert.notEqual(revived, rendered.token);
    // @sd-jwt/jwt-status-list decodes without checking signatures (its documented contract): it
    // reads the revoked token as VALID in the altered list, so only the signature stands in the way.
    assert.equal(getListFromStatusListJWT(rendered.token).getStatus(slot.idx), TokenStatus.INVALID);
    assert.equal(getListFromStatusListJWT(revived).getStatus(slot.idx), TokenStatus.VALID);
    await assert.rejects(jwtVerify(revived, publicKey, { typ: 'statuslist+jwt' }), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
    // And the other way: a VALID entry made INVALID.
    const other = (slot.idx + 1) % size;
    await assert.rejects(jwtVerify(alterAfterSigning(rendered.token, other, TokenStatus.INVALID), publicKey, { typ: 'statuslist+jwt' }), {
      code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
    });
    // A token signed by another key is refused too.
    await assert.rejects(jwtVerify(rendered.token, es256().publicKey, { typ: 'statuslist+jwt' }), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
  });

  test('the independent implementation’s own list of the same statuses decodes to what Veil renders', async () => {
    const store = new MemoryStatusListStore({ size: 64, bits: 2 });
    const { signer } = es256();
    const renderer = new StatusListRenderer({ store, signer, issuer: ISSUER, ttlSeconds: 60, expSeconds: 600 });
    const exp = Math.floor(Date.now() / 1000) + 600;
    const slots = await Promise.all(Array.from({ length: 10 }, () => store.allocate(exp)));
    await store.setStatuses(slots.slice(0, 3), TokenStatus.INVALID);
    await store.setStatuses(slots.slice(3, 5), TokenStatus.SUSPENDED);
    const ours = decodeJwt(((await renderer.get(slots[0]!.list)) ?? assert.fail('rendered')).token).status_list as { lst: string };
    const theirs = new StatusList(new Array<number>(64).fill(0), 2);
    for (const [n, slot] of slots.entries()) theirs.setStatus(slot.idx, n < 3 ? 1 : n < 5 ? 2 : 0);
    // Both zlib streams (pako's and node's) decode to the same bytes.
    assert.deepEqual(decompressList(theirs.compressStatusList(), 64), decompressList(ours.lst, 64));
  });

  test('one render per ttl per list: concurrent requests share it, later ones within ttl get it, after ttl it is rendered again', async () => {
    const store = new MemoryStatusListStore({ size, bits: 2 });
    let reads = 0;
    const counting = { read: (id: string): Promise<StatusListSnapshot | undefined> => (reads++, store.read(id)) };
    let now = Date.now();
    const { signer } = es256();
    const renderer = new StatusListRenderer({ store: counting, signer, issuer: ISSUER, ttlSeconds: 60, expSeconds: 600, now: () => now });
    const slot = await store.allocate(Math.floor(now / 1000) + 600);

    const concurrent = await Promise.all(Array.from({ length: 50 }, () => renderer.get(slot.list)));
    assert.equal(reads, 1);
    assert.equal(renderer.renders, 1);
    assert.ok(concurrent.every((r) => r === concurrent[0]));

    await store.setStatus(slot, TokenStatus.INVALID);
    now += 59_000;
    const later = await renderer.get(slot.list);
    assert.equal(later, concurrent[0], 'within ttl: the same token, no render');
    assert.equal(reads, 1);

    now += 1_000;
    const fresh = (await renderer.get(slot.list))!;
    assert.equal(reads, 2);
    assert.equal(renderer.renders, 2);
    assert.notEqual(fresh.token, concurrent[0]!.token);
    assert.notEqual(fresh.etag, concurrent[0]!.etag);
    const lst = (decodeJwt(fresh.token).status_list as { lst: string }).lst;
    assert.equal(readStatus(decompressList(lst, 1 << 20), slot.idx, 2), TokenStatus.INVALID);
    assert.equal(decodeProtectedHeader(fresh.token).typ, 'statuslist+jwt');
  });

  test('an unknown list renders nothing, and is asked for again next time (misses are not cached)', async () => {
    const store = new MemoryStatusListStore({ size });
    let reads = 0;
    const { signer } = es256();
    const renderer = new StatusListRenderer({ store: { read: (id) => (reads++, store.read(id)) }, signer, issuer: ISSUER, ttlSeconds: 60, expSeconds: 600 });
    assert.equal(await renderer.get(newListId()), undefined);
    assert.equal(await renderer.get(newListId()), undefined);
    assert.equal(reads, 2);
    assert.equal(renderer.renders, 0);
  });
});
