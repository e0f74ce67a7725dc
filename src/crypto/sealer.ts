/**
 * The issuing hot path of sealed access tokens: a JWT (compact JWS, RFC 7515) signed with
 * Veil's key, inside a compact JWE (RFC 7516) encrypted to the resource server's public key.
 * Built on node:crypto directly because issuing must be fast; test/unit/sealer.test.ts has jose
 * decrypt and verify every algorithm combination produced here. Nothing here parses or verifies
 * untrusted input: that is jose's job.
 *
 * A Node 20 hazard shapes the ECDH code: `keyObject.export({ format: 'jwk' })` on a key made by
 * generateKeyPairSync can deadlock the process for good. The export holds the key's mutex while
 * it allocates; a GC in that window destroys the (garbage) keygen job, whose destructor takes
 * the same mutex. So ephemeral keys get their public JWK encoded inside the keygen job, and a
 * recipient's key is exported through a re-imported copy (which has a mutex of its own).
 */
import {
  constants,
  createCipheriv,
  createECDH,
  createHash,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  publicEncrypt,
  randomBytes,
  sign,
  type CipherGCMTypes,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';
import { VeilError } from '../errors/veil-error.js';

export type { ContentEncryptionAlg, KeyManagementAlg, SigningAlg } from './algorithms.js';
import type { ContentEncryptionAlg, KeyManagementAlg, SigningAlg } from './algorithms.js';

/** Veil's signing key: a private KeyObject that fits `alg` (see assertSigningKey). */
export interface SigningKey {
  kid: string;
  alg: SigningAlg;
  key: KeyObject;
}

/** A resource server's encryption key: a public KeyObject that fits `alg` (see assertSealingKey). */
export interface SealingKey {
  kid: string;
  alg: KeyManagementAlg;
  enc: ContentEncryptionAlg;
  key: KeyObject;
}

/** A key does not fit its algorithm (type, curve, size, or public/private). */
export class SealerKeyError extends VeilError {
  constructor(message: string) {
    super('key_error', message);
  }
}

const b64 = (data: Buffer | string): string => Buffer.from(data).toString('base64url');
const MIN_RSA_BITS = 2048; // RFC 7518 §3.3 and §4.2

// ---------------------------------------------------------------------------------------------
// Caches. Everything derived from a key and its fixed parameters is computed once, and goes away
// with the KeyObject. Never cached: ephemeral keys, CEKs, IVs (fresh for every token).

function perKey<T>(cache: WeakMap<KeyObject, Map<string, T>>, key: KeyObject, id: string, derive: () => T): T {
  let byId = cache.get(key);
  if (!byId) cache.set(key, (byId = new Map<string, T>()));
  let value = byId.get(id);
  if (value === undefined) byId.set(id, (value = derive()));
  return value;
}

// ---------------------------------------------------------------------------------------------
// JWS

interface SigningMethod {
  keyType: 'rsa' | 'ec' | 'ed25519';
  /** Node's name of the curve an EC key must be on. */
  curve?: string;
  sign(input: Buffer, key: KeyObject): Buffer;
}

const SIGNING: Record<SigningAlg, SigningMethod> = {
  RS256: { keyType: 'rsa', sign: (input, key) => sign('sha256', input, key) },
  // RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash.
  PS256: { keyType: 'rsa', sign: (input, key) => sign('sha256', input, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }) },
  // RFC 7518 §3.4: the signature is R || S (IEEE P1363), not DER.
  ES256: { keyType: 'ec', curve: 'prime256v1', sign: (input, key) => sign('sha256', input, { key, dsaEncoding: 'ieee-p1363' }) },
  ES384: { keyType: 'ec', curve: 'secp384r1', sign: (input, key) => sign('sha384', input, { key, dsaEncoding: 'ieee-p1363' }) },
  // RFC 8037: Ed25519 hashes internally, so no digest name.
  EdDSA: { keyType: 'ed25519', sign: (input, key) => sign(null, input, key) },
};

/** Throws SealerKeyError unless `key` is a private key that can sign `alg`. */
export function assertSigningKey(key: KeyObject, alg: SigningAlg): void {
  if (!Object.hasOwn(SIGNING, alg)) throw new SealerKeyError(`unsupported signing algorithm ${String(alg)}`);
  const { keyType, curve } = SIGNING[alg];
  if (key.type !== 'private') throw new SealerKeyError(`${alg} signs with a private key, not a ${key.type} key`);
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type !== keyType) throw new SealerKeyError(`${alg} needs ${curve ? `an EC ${curve}` : `an ${keyType}`} key, not ${type}`);
  if (curve && details.namedCurve !== curve) throw new SealerKeyError(`${alg} needs an EC ${curve} key, not ${details.namedCurve}`);
  if (type === 'rsa' && (details.modulusLength ?? 0) < MIN_RSA_BITS) throw new SealerKeyError(`${alg} needs an RSA key of at least ${MIN_RSA_BITS} bits`);
}

/** Encoded JWS headers per signing key; an entry also means the key was checked. */
const jwsHeaders = new WeakMap<KeyObject, Map<string, string>>();

/** A compact JWS (a JWT) with protected header `{ alg, typ, kid }`. Throws SealerKeyError if the key does not fit alg. */
export function signJwt(claims: Record<string, unknown>, signer: SigningKey, typ = 'at+jwt'): string {
  const { alg, kid, key } = signer;
  const header = perKey(jwsHeaders, key, JSON.stringify([alg, typ, kid]), () => {
    assertSigningKey(key, alg);
    return b64(JSON.stringify({ alg, typ, kid }));
  });
  const input = `${header}.${b64(JSON.stringify(claims))}`;
  return `${input}.${b64(SIGNING[alg].sign(Buffer.from(input, 'latin1'), key))}`;
}

// ---------------------------------------------------------------------------------------------
// JWE building blocks

const CONTENT_ENCRYPTION: Record<ContentEncryptionAlg, { cipher: CipherGCMTypes; cekBytes: number }> = {
  A128GCM: { cipher: 'aes-128-gcm', cekBytes: 16 },
  A192GCM: { cipher: 'aes-192-gcm', cekBytes: 24 },
  A256GCM: { cipher: 'aes-256-gcm', cekBytes: 32 },
};

type KeyManagement = { kind: 'rsa'; oaepHash: 'sha1' | 'sha256' } | { kind: 'ecdh-direct' } | { kind: 'ecdh-wrap'; wrapCipher: string; kekBytes: number };

const KEY_MANAGEMENT: Record<KeyManagementAlg, KeyManagement> = {
  'ECDH-ES': { kind: 'ecdh-direct' },
  'ECDH-ES+A128KW': { kind: 'ecdh-wrap', wrapCipher: 'id-aes128-wrap', kekBytes: 16 },
  'ECDH-ES+A192KW': { kind: 'ecdh-wrap', wrapCipher: 'id-aes192-wrap', kekBytes: 24 },
  'ECDH-ES+A256KW': { kind: 'ecdh-wrap', wrapCipher: 'id-aes256-wrap', kekBytes: 32 },
  'RSA-OAEP': { kind: 'rsa', oaepHash: 'sha1' },
  'RSA-OAEP-256': { kind: 'rsa', oaepHash: 'sha256' },
};

/** Recipient key types ECDH-ES works with: EC curves by Node's name, and X25519. */
const ECDH_EC_CURVES = ['prime256v1', 'secp384r1', 'secp521r1'];

/** 'ECDH-ES+A256KW' for EC and OKP keys, 'RSA-OAEP-256' for RSA. Never throws: assertSealingKey judges the key. */
export function defaultKeyManagementAlg(key: KeyObject): KeyManagementAlg {
  return key.asymmetricKeyType === 'rsa' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW';
}

/** Throws SealerKeyError unless `key` is a public key `alg` can encrypt to, and alg and enc are supported. */
export function assertSealingKey(key: KeyObject, alg: KeyManagementAlg, enc: ContentEncryptionAlg): void {
  if (!Object.hasOwn(KEY_MANAGEMENT, alg)) throw new SealerKeyError(`unsupported key management algorithm ${String(alg)}`);
  if (!Object.hasOwn(CONTENT_ENCRYPTION, enc)) throw new SealerKeyError(`unsupported content encryption ${String(enc)}`);
  if (key.type !== 'public') throw new SealerKeyError(`${alg} encrypts to a public key, not a ${key.type} key`);
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (KEY_MANAGEMENT[alg].kind === 'rsa') {
    if (type !== 'rsa') throw new SealerKeyError(`${alg} needs an RSA key, not ${type}`);
    if ((details.modulusLength ?? 0) < MIN_RSA_BITS) throw new SealerKeyError(`${alg} needs an RSA key of at least ${MIN_RSA_BITS} bits`);
  } else if (!(type === 'x25519' || (type === 'ec' && ECDH_EC_CURVES.includes(details.namedCurve ?? '')))) {
    throw new SealerKeyError(`${alg} needs an EC P-256, P-384, P-521 or an X25519 key, not ${type}${details.namedCurve ? ` ${details.namedCurve}` : ''}`);
  }
}

/**
 * RFC 7518 §4.6.2 Concat KDF with SHA-256. OtherInfo = AlgorithmID (length-prefixed) ||
 * PartyUInfo and PartyVInfo (both empty: zero lengths) || SuppPubInfo (key length in bits),
 * built once per (AlgorithmID, length). Keys here are at most 256 bits: one round suffices.
 */
function concatKdf(algorithmId: string, keyBytes: number): (z: Buffer) => Buffer {
  const id = Buffer.from(algorithmId, 'ascii');
  const otherInfo = Buffer.alloc(4 + id.length + 4 + 4 + 4);
  otherInfo.writeUInt32BE(id.length, 0);
  id.copy(otherInfo, 4);
  otherInfo.writeUInt32BE(keyBytes * 8, otherInfo.length - 4);
  const roundOne = Buffer.from([0, 0, 0, 1]);
  return (z) => createHash('sha256').update(roundOne).update(z).update(otherInfo).digest().subarray(0, keyBytes);
}

/** RFC 3394 AES Key Wrap with its default IV. */
const KEY_WRAP_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');
function aesKeyWrap(wrapCipher: string, kek: Buffer, cek: Buffer): Buffer {
  const wrap = createCipheriv(wrapCipher, kek, KEY_WRAP_IV);
  return Buffer.concat([wrap.update(cek), wrap.final()]);
}

/** AES-GCM over the plaintext; the AAD is the ASCII of the encoded protected header (RFC 7516 §5.1). Returns `iv.ciphertext.tag`. */
function aesGcm(cipher: CipherGCMTypes, cek: Buffer, encodedHeader: string, plaintext: string): string {
  const iv = randomBytes(12);
  const gcm = createCipheriv(cipher, cek, iv, { authTagLength: 16 });
  gcm.setAAD(Buffer.from(encodedHeader, 'latin1'));
  const ciphertext = Buffer.concat([gcm.update(plaintext, 'utf8'), gcm.final()]);
  return `${b64(iv)}.${b64(ciphertext)}.${b64(gcm.getAuthTag())}`;
}

/** generateKeyPairSync with only the public part encoded, as a JWK (@types/node lacks this overload). */
const generateWithPublicJwk = generateKeyPairSync as unknown as (
  type: 'ec' | 'x25519',
  options: { namedCurve?: string; publicKeyEncoding: { format: 'jwk' } },
) => { publicKey: JsonWebKey; privateKey: KeyObject };

/** The `epk` member: only kty, crv, x (and y for EC), in that order. */
const epkJson = ({ kty, crv, x, y }: JsonWebKey): string => JSON.stringify({ kty, crv, x, y });

/**
 * A fresh ephemeral key pair per call (RFC 7518 §4.6 requires it), agreed with the recipient:
 * its public JWK and the shared secret Z. Measured on Node 20: createECDH is about twice as fast
 * as generateKeyPairSync + diffieHellman on P-256, and some 25% slower on P-384 and P-521; X25519
 * has no createECDH, so each curve takes its fastest path.
 */
function ephemeralAgreement(recipientKey: KeyObject): () => { epk: string; z: Buffer } {
  // A copy has no keygen job behind it, so exporting it as JWK cannot deadlock (see top).
  const recipient = createPublicKey({ key: recipientKey.export({ format: 'der', type: 'spki' }), format: 'der', type: 'spki' });
  const jwk = recipient.export({ format: 'jwk' });
  if (jwk.crv === 'P-256') {
    const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
    return () => {
      const ecdh = createECDH('prime256v1');
      const pub = ecdh.generateKeys(); // uncompressed: 0x04 || x (32 bytes) || y (32 bytes)
      return { epk: epkJson({ kty: 'EC', crv: 'P-256', x: b64(pub.subarray(1, 33)), y: b64(pub.subarray(33)) }), z: ecdh.computeSecret(point) };
    };
  }
  const type = recipient.asymmetricKeyType === 'x25519' ? 'x25519' : 'ec';
  const options = { namedCurve: recipient.asymmetricKeyDetails?.namedCurve, publicKeyEncoding: { format: 'jwk' as const } };
  return () => {
    const { publicKey, privateKey } = generateWithPublicJwk(type, options);
    return { epk: epkJson(publicKey), z: diffieHellman({ privateKey, publicKey: recipient }) };
  };
}

// ---------------------------------------------------------------------------------------------
// JWE

/** One recipient (key, alg, enc, kid, cty), prepared once: the GCM cipher and how each token gets its header and CEK. */
interface PreparedRecipient {
  cipher: CipherGCMTypes;
  /** Per token: the encoded protected header, a fresh CEK and the encoded encrypted key. */
  manageKey(): { header: string; cek: Buffer; encryptedKey: string };
}

function prepareRecipient({ key, alg, enc, kid }: SealingKey, cty: string): PreparedRecipient {
  assertSealingKey(key, alg, enc);
  const { cipher, cekBytes } = CONTENT_ENCRYPTION[enc];
  const management = KEY_MANAGEMENT[alg];
  const fixedHeader = JSON.stringify({ alg, enc, kid, cty });

  if (management.kind === 'rsa') {
    const header = b64(fixedHeader); // no epk: the whole header is fixed
    const oaep = { key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: management.oaepHash };
    return {
      cipher,
      manageKey: () => {
        const cek = randomBytes(cekBytes);
        return { header, cek, encryptedKey: b64(publicEncrypt(oaep, cek)) };
      },
    };
  }

  const agree = ephemeralAgreement(key);
  const headerWithEpk = (epk: string) => b64(`${fixedHeader.slice(0, -1)},"epk":${epk}}`);
  if (management.kind === 'ecdh-direct') {
    // Direct agreement: the derived key is the CEK, and the KDF's AlgorithmID is the enc value.
    const deriveCek = concatKdf(enc, cekBytes);
    return {
      cipher,
      manageKey: () => {
        const { epk, z } = agree();
        return { header: headerWithEpk(epk), cek: deriveCek(z), encryptedKey: '' };
      },
    };
  }
  const deriveKek = concatKdf(alg, management.kekBytes);
  return {
    cipher,
    manageKey: () => {
      const { epk, z } = agree();
      const cek = randomBytes(cekBytes);
      return { header: headerWithEpk(epk), cek, encryptedKey: b64(aesKeyWrap(management.wrapCipher, deriveKek(z), cek)) };
    },
  };
}

const preparedRecipients = new WeakMap<KeyObject, Map<string, PreparedRecipient>>();

/**
 * A compact JWE (header.encryptedKey.iv.ciphertext.tag) with protected header
 * `{ alg, enc, kid, cty, epk? }`; never compressed. Throws SealerKeyError if the key does not fit alg.
 */
export function encryptCompact(plaintext: string, recipient: SealingKey, cty = 'JWT'): string {
  const { key, alg, enc, kid } = recipient;
  const prepared = perKey(preparedRecipients, key, JSON.stringify([alg, enc, kid, cty]), () => prepareRecipient(recipient, cty));
  const { header, cek, encryptedKey } = prepared.manageKey();
  return `${header}.${encryptedKey}.${aesGcm(prepared.cipher, cek, header, plaintext)}`;
}

/** An RFC 9068 access token (typ at+jwt) signed by `signer`, then encrypted to `recipient` (cty JWT). */
export function sealAccessToken(claims: Record<string, unknown>, signer: SigningKey, recipient: SealingKey): string {
  return encryptCompact(signJwt(claims, signer), recipient, 'JWT');
}
