/**
 * The data of a Token Status List (draft-ietf-oauth-status-list §4): one status of `bits` bits
 * per index, packed into bytes from the least significant bit up (index 0 is bit 0 of byte 0),
 * compressed with DEFLATE in the ZLIB format (RFC 1950) and base64url-encoded as `lst`. Both
 * stores keep their bytes in exactly this layout, so rendering a list is compress and sign.
 */
import { promisify } from 'node:util';
import { deflate, deflateSync, inflateSync } from 'node:zlib';

/** The draft's Status Types (§7.1). */
export const TokenStatus = { VALID: 0, INVALID: 1, SUSPENDED: 2 } as const;
export type TokenStatus = (typeof TokenStatus)[keyof typeof TokenStatus];

/** Bits per status Veil writes: 1 (VALID, INVALID) or 2 (SUSPENDED too). The draft also allows 4 and 8. */
export type StatusBits = 1 | 2;
export const STATUS_BITS: readonly StatusBits[] = [1, 2];

/** The draft's recommended (and node:zlib's highest) level. */
const LEVEL = 9;
const deflateAsync = promisify(deflate);

/** Bytes of a list of `size` entries (size is a multiple of 8, so always whole). */
export function listByteLength(size: number, bits: StatusBits): number {
  return (size * bits) / 8;
}

/** Where index `idx` sits: its byte, and the shift of its lowest bit within that byte. */
export function position(idx: number, bits: StatusBits): { byte: number; shift: number } {
  const perByte = 8 / bits;
  return { byte: Math.floor(idx / perByte), shift: (idx % perByte) * bits };
}

/**
 * The offset Redis' BITFIELD takes for index `idx`. Redis numbers the bits of a string from the
 * most significant bit of byte 0 and reads a field's bits high to low, so the entry's highest
 * bit is at `byte * 8 + (7 - (shift + bits - 1))`: written there, the value lands exactly where
 * the draft reads it and the Redis string is the list's byte array as it is.
 */
export function redisBitOffset(idx: number, bits: StatusBits): number {
  const { byte, shift } = position(idx, bits);
  return byte * 8 + 8 - shift - bits;
}

/** The status at `idx`; bytes past the end of `bytes` read as VALID (stores grow lazily). */
export function readStatus(bytes: Uint8Array, idx: number, bits: StatusBits): number {
  const { byte, shift } = position(idx, bits);
  return ((bytes[byte] ?? 0) >> shift) & ((1 << bits) - 1);
}

export function writeStatus(bytes: Uint8Array, idx: number, bits: StatusBits, value: number): void {
  const { byte, shift } = position(idx, bits);
  const mask = ((1 << bits) - 1) << shift;
  bytes[byte] = ((bytes[byte] ?? 0) & ~mask) | ((value << shift) & mask);
}

/**
 * The value stored for `status` in a list of `bits`: a 1-bit list cannot say SUSPENDED, and a
 * status list must never be more lenient than asked, so there it is INVALID (final).
 */
export function storedValue(status: TokenStatus, bits: StatusBits): number {
  return bits === 1 && status === TokenStatus.SUSPENDED ? TokenStatus.INVALID : status;
}

/** `lst`: the bytes ZLIB-compressed at level 9, base64url. */
export function compressList(bytes: Uint8Array): string {
  return deflateSync(bytes, { level: LEVEL }).toString('base64url');
}

/** The same off the event loop (libuv's thread pool): a million-entry list with revocations spread through it takes tens of milliseconds. */
export async function compressListAsync(bytes: Uint8Array): Promise<string> {
  return (await deflateAsync(bytes, { level: LEVEL })).toString('base64url');
}

/**
 * The byte array of an `lst` value. `maxBytes` bounds the inflated size, so a hostile list
 * (a few KB that inflate to gigabytes) fails instead of exhausting memory.
 */
export function decompressList(lst: string, maxBytes: number): Buffer {
  return inflateSync(Buffer.from(lst, 'base64url'), { maxOutputLength: maxBytes });
}
