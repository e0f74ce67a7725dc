/**
 * Paillier arithmetic (g = n + 1), all of it, for Veil's confidential claims (issue 10).
 *
 * No maintained npm library fits (paillier-bigint is unmaintained and its modexp is pure
 * JavaScript, not constant-time), so the arithmetic lives here, small, and every operation is
 * cross-checked in tests against paillier-bigint. Primes come from OpenSSL (`generatePrime`), and
 * modular exponentiation from OpenSSL's constant-time Montgomery modexp reached through the
 * Diffie-Hellman API: a DH object over modulus m with private key e computes `base^e mod m` as
 * `computeSecret(base)`. That use is undocumented for non-prime moduli, so `selfTest()` checks it
 * against known answers and an independent bigint computation; Veil refuses to start if it fails.
 *
 * Plaintext range: values are decrypted centred, in (−n/2, n/2]. The blinded comparison is
 * correct for |x|, |t| < 2^62 (`PLAINTEXT_BOUND`): see `blindedDifference`.
 *
 * Public key JWK (the `he_jwks_uri` document): `{ "kty": "Paillier", "kid": ..., "use": "he",
 * "alg": "Paillier-2048" | "Paillier-3072", "n": base64url(big-endian n, no leading zero) }`;
 * g is always n + 1. Ciphertexts travel as base64url of the big-endian c, zero-padded to the
 * byte length of n² (fixed width: the size says nothing about the value).
 */
import { createDiffieHellman, createHash, generatePrime, generatePrimeSync, randomBytes, type DiffieHellman } from 'node:crypto';
import { promisify } from 'node:util';

export type PaillierKeyBits = 2048 | 3072;
export const KEY_BITS: readonly PaillierKeyBits[] = [2048, 3072];
/** Approximate symmetric security of each key size (NIST SP 800-57 for an RSA-size modulus). */
export const SECURITY_BITS: Readonly<Record<PaillierKeyBits, number>> = { 2048: 112, 3072: 128 };
/** Claims and thresholds compared with `blindedDifference` must satisfy |v| < 2^62. */
export const PLAINTEXT_BOUND_BITS = 62;
export const PLAINTEXT_BOUND = 1n << BigInt(PLAINTEXT_BOUND_BITS);

export interface PaillierPublicKey {
  kid: string;
  n: bigint;
  n2: bigint;
  bits: number;
}

export interface PaillierSecretKey {
  publicKey: PaillierPublicKey;
  p: bigint;
  q: bigint;
  /** CRT precomputation: p², q², h_p = L_p(g^(p−1) mod p²)^−1 mod p (likewise q), q^−1 mod p. */
  p2: bigint;
  q2: bigint;
  hp: bigint;
  hq: bigint;
  qInvP: bigint;
  /** (q²)^−1 mod p², for factors computed by CRT. */
  q2InvP2: bigint;
}

export interface PaillierPublicJwk {
  kty: 'Paillier';
  kid: string;
  use: 'he';
  alg: 'Paillier-2048' | 'Paillier-3072';
  n: string;
}

/** Bad input from outside (a ciphertext, a JWK, a plaintext out of range): the caller's mistake. */
export class PaillierInputError extends Error {
  override name = 'PaillierInputError';
}

/** A primitive misbehaved (the self-test failed): not safe to run. */
export class PaillierSelfTestError extends Error {
  override name = 'PaillierSelfTestError';
}

// ---------------------------------------------------------------------------------------------
// bigint helpers

export function bitLength(x: bigint): number {
  return x <= 0n ? 0 : x.toString(2).length;
}

function byteLength(x: bigint): number {
  return Math.ceil(bitLength(x) / 8);
}

function toBytes(x: bigint, width?: number): Buffer {
  let hex = x.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  const raw = Buffer.from(hex, 'hex');
  if (width === undefined || raw.length === width) return raw;
  if (raw.length > width) throw new RangeError('value wider than its field');
  return Buffer.concat([Buffer.alloc(width - raw.length), raw]);
}

function fromBytes(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt(`0x${Buffer.from(b).toString('hex')}`);
}

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

export function gcd(a: bigint, b: bigint): bigint {
  a = a < 0n ? -a : a;
  b = b < 0n ? -b : b;
  while (b) [a, b] = [b, a % b];
  return a;
}

/** a^−1 mod m; throws RangeError if a is not invertible. */
export function modInverse(a: bigint, m: bigint): bigint {
  let [oldR, r] = [mod(a, m), m];
  let [oldS, s] = [1n, 0n];
  while (r) {
    const quotient = oldR / r;
    [oldR, r] = [r, oldR - quotient * r];
    [oldS, s] = [s, oldS - quotient * s];
  }
  if (oldR !== 1n) throw new RangeError('not invertible');
  return mod(oldS, m);
}

/** Uniform integer in [0, bound) by rejection sampling over the bound's bit length. */
export function randomBelow(bound: bigint): bigint {
  if (bound <= 0n) throw new RangeError('bound must be positive');
  const bits = bitLength(bound - 1n);
  if (bits === 0) return 0n;
  const bytes = Math.ceil(bits / 8);
  const excess = BigInt(bytes * 8 - bits);
  for (;;) {
    const candidate = fromBytes(randomBytes(bytes)) >> excess;
    if (candidate < bound) return candidate;
  }
}

/** Uniform element of Z*_n. */
function randomUnit(n: bigint): bigint {
  for (;;) {
    const r = randomBelow(n);
    if (r > 1n && gcd(r, n) === 1n) return r;
  }
}

// ---------------------------------------------------------------------------------------------
// modular exponentiation

/** Square-and-multiply in JavaScript: the independent reference for the self-test, and the path
 *  for moduli OpenSSL's DH code refuses (under 1024 bits, even). Not constant-time. */
export function modPowBigint(base: bigint, exp: bigint, modulus: bigint): bigint {
  if (modulus <= 0n) throw new RangeError('modulus must be positive');
  if (modulus === 1n) return 0n;
  if (exp < 0n) return modPowBigint(modInverse(base, modulus), -exp, modulus);
  let result = 1n;
  let b = mod(base, modulus);
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % modulus;
    b = (b * b) % modulus;
    e >>= 1n;
  }
  return result;
}

const OPENSSL_MIN_MODULUS_BITS = 1024;
const DH_CACHE_LIMIT = 16;
// Building a DH object runs OpenSSL's DH_check (tens of ms for n²): keep one per modulus.
const dhByModulus = new Map<bigint, DiffieHellman>();

function dhFor(modulus: bigint): DiffieHellman {
  let dh = dhByModulus.get(modulus);
  if (!dh) {
    dh = createDiffieHellman(toBytes(modulus), Buffer.from([2]));
    if (dhByModulus.size >= DH_CACHE_LIMIT) {
      const oldest = dhByModulus.keys().next().value;
      if (oldest !== undefined) dhByModulus.delete(oldest);
    }
    dhByModulus.set(modulus, dh);
  }
  return dh;
}

/** base^exp mod modulus through OpenSSL (BN_mod_exp_mont_consttime, as DH_compute_key uses). */
function modPowOpenssl(base: bigint, exp: bigint, modulus: bigint): bigint {
  const b = mod(base, modulus);
  // DH refuses "public keys" 0, 1 and m−1 and a zero private key: those answers are trivial.
  if (exp === 0n) return 1n;
  if (b === 0n) return 0n;
  if (b === 1n) return 1n;
  if (b === modulus - 1n) return exp & 1n ? b : 1n;
  if (exp === 1n) return b;
  const dh = dhFor(modulus);
  const raw = (x: bigint): bigint | undefined => {
    dh.setPrivateKey(toBytes(exp));
    try {
      return fromBytes(dh.computeSecret(toBytes(x)));
    } catch {
      // OpenSSL 3 refuses a DH secret of 0, 1 or m−1 (e.g. Enc(0)^(p−1) mod p² = 1 in decryption).
      return undefined;
    }
  };
  const direct = raw(b);
  if (direct !== undefined) return direct;
  // Multiplicative blinding: b^e = (b·u)^e · (u^e)^−1 for a random unit u; for a non-unit base
  // (never a valid ciphertext or factor) the answer can be 0: use the reference code.
  if (gcd(b, modulus) !== 1n) return modPowBigint(b, exp, modulus);
  for (let attempt = 0; attempt < 4; attempt++) {
    const u = 2n + randomBelow(modulus - 3n);
    if (gcd(u, modulus) !== 1n) continue;
    const ue = raw(u);
    const bue = raw((b * u) % modulus);
    if (ue !== undefined && bue !== undefined) return (bue * modInverse(ue, modulus)) % modulus;
  }
  return modPowBigint(b, exp, modulus);
}

export type ModPow = (base: bigint, exp: bigint, modulus: bigint) => bigint;

/** base^exp mod modulus; a negative exp uses the inverse of base (RangeError if there is none). */
export function modPow(base: bigint, exp: bigint, modulus: bigint): bigint {
  if (modulus <= 0n) throw new RangeError('modulus must be positive');
  if (modulus === 1n) return 0n;
  if (exp < 0n) return modPow(modInverse(base, modulus), -exp, modulus);
  if (bitLength(modulus) < OPENSSL_MIN_MODULUS_BITS || (modulus & 1n) === 0n) return modPowBigint(base, exp, modulus);
  return modPowOpenssl(base, exp, modulus);
}

// Known-answer vectors that need no bigint code to check: M521 and M607 are Mersenne primes, so
// for the composite N = M521·M607, a^λ ≡ 1 (mod N) with λ = lcm(M521−1, M607−1) when
// gcd(a, N) = 1, and (1 + N)^k ≡ 1 + kN (mod N²). Composite moduli only: building a DH object
// runs OpenSSL's DH_check, whose primality test makes a prime modulus cost a quarter second.
const M521 = (1n << 521n) - 1n;
const M607 = (1n << 607n) - 1n;

/**
 * Checks `pow` (OpenSSL's modexp by default) on known answers and against square-and-multiply on
 * pseudo-random vectors over composite moduli the size Veil uses, including bases ≥ modulus,
 * exponents 0, 1, longer than the modulus, and values with leading zero bytes. Throws
 * PaillierSelfTestError on the first mismatch.
 */
export function selfTest(pow: ModPow = modPow): void {
  const fail = (what: string): never => {
    throw new PaillierSelfTestError(`Paillier self-test failed: ${what}`);
  };
  const check = (what: string, got: bigint, want: bigint): void => {
    if (got !== want) fail(what);
  };
  // Carmichael-type identity on a composite modulus and its square (the Paillier shape).
  const N = M521 * M607;
  const lambda = ((M521 - 1n) * (M607 - 1n)) / gcd(M521 - 1n, M607 - 1n);
  check('a^lambda mod N', pow(3n, lambda, N), 1n);
  check('a^(lambda+1) mod N', pow(0xdeadbeefn, lambda + 1n, N), 0xdeadbeefn);
  check('a^(k·lambda) mod N, base above N', pow(N + 5n, 7n * lambda, N), 1n);
  check('(1+N)^N mod N^2', pow(1n + N, N, N * N), 1n);
  check('(1+N)^k mod N^2', pow(1n + N, 12345n, N * N), 1n + 12345n * N);
  check('(1+N)^-1 mod N^2', pow(1n + N, -1n, N * N), N * N - N + 1n);
  // Trivial exponents and bases.
  check('a^0', pow(7n, 0n, N * N), 1n);
  check('a^1', pow(7n, 1n, N * N), 7n);
  check('0^k', pow(0n, 5n, N * N), 0n);
  check('1^k', pow(1n, 5n, N * N), 1n);
  check('(-1)^3', pow(N * N - 1n, 3n, N * N), N * N - 1n);
  check('(-1)^2', pow(N * N - 1n, 2n, N * N), 1n);
  // Against square-and-multiply on deterministic pseudo-random vectors (a linear congruential
  // stream; no randomness needed), with leading zero bytes in bases and exponents.
  // Exponents stay short except on the smallest modulus: the bigint reference is slow, and this
  // runs at every start.
  const moduli = [N, N * N];
  let state = 0x9e3779b97f4a7c15n;
  const next = (bits: number): bigint => {
    let v = 0n;
    for (let i = 0; i < bits; i += 64) {
      state = (state * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
      v = (v << 64n) | state;
    }
    return v & ((1n << BigInt(bits)) - 1n);
  };
  for (const m of moduli) {
    const w = bitLength(m);
    const cases: Array<[bigint, bigint]> = [
      [next(w), next(160)],
      [next(w - 20), next(200) >> 40n], // leading zero bytes in base and exponent
      [next(w) + m, next(96)], // base ≥ modulus
      [next(w - 8), (1n << 128n) + 1n],
      [next(w), next(8)],
    ];
    if (m === N) cases.push([next(w), next(w + 64)]); // exponent wider than the modulus
    for (const [b, e] of cases) check(`modexp vector ${w} bits`, pow(b, e, m), modPowBigint(b, e, m));
  }
}

// ---------------------------------------------------------------------------------------------
// keys

const L = (u: bigint, d: bigint): bigint => (u - 1n) / d;

function secretKeyFrom(publicKey: PaillierPublicKey, p: bigint, q: bigint): PaillierSecretKey {
  const p2 = p * p;
  const q2 = q * q;
  const g = publicKey.n + 1n;
  const hp = modInverse(L(modPow(g, p - 1n, p2), p), p);
  const hq = modInverse(L(modPow(g, q - 1n, q2), q), q);
  return { publicKey, p, q, p2, q2, hp, hq, qInvP: modInverse(q, p), q2InvP2: modInverse(q2, p2) };
}

function publicKeyFrom(n: bigint, kid: string): PaillierPublicKey {
  return { kid, n, n2: n * n, bits: bitLength(n) };
}

function acceptablePrimes(p: bigint, q: bigint, bits: number): boolean {
  const n = p * q;
  return p !== q && bitLength(n) === bits && gcd(n, (p - 1n) * (q - 1n)) === 1n;
}

function assertBits(bits: number): asserts bits is PaillierKeyBits {
  if (!KEY_BITS.includes(bits as PaillierKeyBits)) throw new RangeError('Paillier keys are 2048 or 3072 bits');
}

/** A key pair from two OpenSSL primes of bits/2 each (p ≠ q, n of exactly `bits` bits). Blocks:
 *  3072-bit keys can take seconds; prefer generateKeyPairAsync on a server. */
export function generateKeyPair(bits: PaillierKeyBits, kid: string): { publicKey: PaillierPublicKey; secretKey: PaillierSecretKey } {
  assertBits(bits);
  for (;;) {
    const p = generatePrimeSync(bits / 2, { bigint: true });
    const q = generatePrimeSync(bits / 2, { bigint: true });
    if (acceptablePrimes(p, q, bits)) return keyPairFromPrimes(p, q, kid);
  }
}

const generatePrimeAsync = promisify(generatePrime) as unknown as (size: number, options: { bigint: true }) => Promise<bigint>;

/** As generateKeyPair, with the prime search on libuv's thread pool (the event loop keeps going). */
export async function generateKeyPairAsync(bits: PaillierKeyBits, kid: string): Promise<{ publicKey: PaillierPublicKey; secretKey: PaillierSecretKey }> {
  assertBits(bits);
  for (;;) {
    const [p, q] = await Promise.all([generatePrimeAsync(bits / 2, { bigint: true }), generatePrimeAsync(bits / 2, { bigint: true })]);
    if (acceptablePrimes(p, q, bits)) return keyPairFromPrimes(p, q, kid);
  }
}

/** Rebuilds a key pair from stored primes (checked: they must form a valid key). */
export function keyPairFromPrimes(p: bigint, q: bigint, kid: string): { publicKey: PaillierPublicKey; secretKey: PaillierSecretKey } {
  const bits = bitLength(p * q);
  assertBits(bits);
  if (!acceptablePrimes(p, q, bits)) throw new PaillierInputError('p and q do not form a Paillier key');
  const publicKey = publicKeyFrom(p * q, kid);
  return { publicKey, secretKey: secretKeyFrom(publicKey, p, q) };
}

// ---------------------------------------------------------------------------------------------
// encryption

/** A fresh randomness factor ρ^n mod n² (ρ uniform in Z*_n): one full-width modexp. */
export function randomFactor(pk: PaillierPublicKey): bigint {
  return modPow(randomUnit(pk.n), pk.n, pk.n2);
}

/** The same factor computed by CRT with the secret key (about twice as fast): Veil's pool. */
export function randomFactorCrt(sk: PaillierSecretKey): bigint {
  const { n, n2 } = sk.publicKey;
  const rho = randomUnit(n);
  const fp = modPow(rho, n, sk.p2);
  const fq = modPow(rho, n, sk.q2);
  // Garner over p², q².
  return mod(fq + sk.q2 * mod((fp - fq) * sk.q2InvP2, sk.p2), n2);
}

/** Short-exponent randomness: exponent length 2·security bits (generic attacks cost 2^(len/2)). */
export function shortExponentBits(pk: PaillierPublicKey): number {
  return 2 * (pk.bits >= 3072 ? SECURITY_BITS[3072] : SECURITY_BITS[2048]);
}

/** A base h = ρ0^n mod n² for short-exponent factors (public; one per key and process). */
export function shortExponentBase(pk: PaillierPublicKey): bigint {
  return randomFactor(pk);
}

/**
 * A short-exponent factor h^a mod n², a uniform of shortExponentBits(pk) bits. An n-th residue
 * like ρ^n, so encryption stays correct; its indistinguishability from a uniform n-th residue is
 * an extra assumption (short-exponent indistinguishability in the subgroup of n-th residues, as in
 * Damgård–Jurik's and Catalano et al.'s fast Paillier variants), on top of DCR.
 */
export function randomFactorShort(pk: PaillierPublicKey, base: bigint): bigint {
  const a = randomBelow(1n << BigInt(shortExponentBits(pk)));
  return modPow(base, a === 0n ? 1n : a, pk.n2);
}

/** g^m mod n² for g = n + 1: 1 + (m mod n)·n, no exponentiation. */
function gPow(pk: PaillierPublicKey, m: bigint): bigint {
  return mod(1n + mod(m, pk.n) * pk.n, pk.n2);
}

function assertPlaintext(pk: PaillierPublicKey, m: bigint): void {
  // Centred decryption recovers m iff −n/2 < m ≤ n/2.
  if (2n * m > pk.n || 2n * m <= -pk.n) throw new PaillierInputError('plaintext out of range for this key');
}

function assertCiphertext(pk: PaillierPublicKey, c: bigint): void {
  if (!isCiphertext(pk, c)) throw new PaillierInputError('not a ciphertext for this key');
}

/** Enc(m) = (1 + m·n) · factor mod n²; `factor` from a pool (used once!), else a fresh ρ^n. */
export function encrypt(pk: PaillierPublicKey, m: bigint, factor?: bigint): bigint {
  assertPlaintext(pk, m);
  return (gPow(pk, m) * (factor ?? randomFactor(pk))) % pk.n2;
}

/** The plaintext, centred in (−n/2, n/2], by CRT. Throws PaillierInputError for a non-ciphertext. */
export function decrypt(sk: PaillierSecretKey, c: bigint): bigint {
  const pk = sk.publicKey;
  // gcd(c, n) = 1 iff p ∤ c and q ∤ c: two reductions instead of a bigint gcd (about 1 ms).
  if (typeof c !== 'bigint' || c <= 0n || c >= pk.n2 || c % sk.p === 0n || c % sk.q === 0n) throw new PaillierInputError('not a ciphertext for this key');
  const mp = (L(modPow(c, sk.p - 1n, sk.p2), sk.p) * sk.hp) % sk.p;
  const mq = (L(modPow(c, sk.q - 1n, sk.q2), sk.q) * sk.hq) % sk.q;
  const m = mq + sk.q * mod((mp - mq) * sk.qInvP, sk.p);
  return 2n * m > pk.n ? m - pk.n : m;
}

/** 0 < c < n² and gcd(c, n) = 1: an element of Z*_{n²}. */
export function isCiphertext(pk: PaillierPublicKey, c: bigint): boolean {
  return typeof c === 'bigint' && c > 0n && c < pk.n2 && gcd(c, pk.n) === 1n;
}

/** Enc(x + y) from Enc(x), Enc(y). */
export function add(pk: PaillierPublicKey, a: bigint, b: bigint): bigint {
  assertCiphertext(pk, a);
  assertCiphertext(pk, b);
  return (a * b) % pk.n2;
}

/** Enc(k·x) from Enc(x); k may be negative (c^k through the inverse of c). Not re-randomised. */
export function multiplyPlain(pk: PaillierPublicKey, c: bigint, k: bigint): bigint {
  assertCiphertext(pk, c);
  return modPow(c, k, pk.n2);
}

/** Re-randomise: the same plaintext under a fresh factor. */
export function rerandomize(pk: PaillierPublicKey, c: bigint, factor?: bigint): bigint {
  assertCiphertext(pk, c);
  return (c * (factor ?? randomFactor(pk))) % pk.n2;
}

/** Bits of the blinding factor r: r·|x − t| + s < 2^(K+64) must stay well below n/2 ≥ 2^(bits−2). */
export function blindingBits(pk: PaillierPublicKey): number {
  return pk.bits - (PLAINTEXT_BOUND_BITS + 2) - 16;
}

/**
 * Log-uniform r = ⌊2^U⌋, U uniform over [0, K): a uniform binade, then a 53-bit-precise position
 * inside it with density ∝ 1/r, low bits uniform (the density is flat at that scale).
 */
export function logUniformBlinding(bits: number): bigint {
  const rand53 = (): number => {
    const b = randomBytes(7);
    return Number(fromBytes(b) >> 3n) / 2 ** 53;
  };
  const binade = Number(randomBelow(BigInt(bits)));
  const mantissa = BigInt(Math.min(Math.floor(2 ** (52 + rand53())), 2 ** 53 - 1)); // in [2^52, 2^53)
  if (binade >= 52) {
    const low = BigInt(binade - 52);
    return (mantissa << low) | randomBelow(1n << low);
  }
  return mantissa >> BigInt(52 - binade);
}

/**
 * The node's blinded comparison, from c = Enc(x) and the node's private threshold t:
 *  - plain: Enc(r·(x − t) + s), ≥ 0 iff x ≥ t;
 *  - negate (the node's private coin): Enc(r·(t − x) − 1 − s), ≥ 0 iff x < t;
 * with log-uniform r of blindingBits(pk) bits, 0 ≤ s < r, re-randomised by a fresh factor (or the
 * one given, from a pool: used once). Requires |x|, |t| < 2^62; then |r·(x − t)| + s + 1 < n/2.
 * What Veil learns about |x − t| from the decrypted magnitude is about log2(range)/K in
 * statistical distance (K = blindingBits). One bit of x per answer is the node's, by design.
 */
export function blindedDifference(pk: PaillierPublicKey, c: bigint, t: bigint, opts: { negate?: boolean; factor?: bigint } = {}): bigint {
  return blindedDifferenceWithWitness(pk, c, t, opts).ciphertext;
}

/** What proveBlinding needs: c' = c^a · (1+n)^u · ρ^n mod n² (ρ undefined when a pooled factor was used). */
export interface BlindingWitness {
  a: bigint;
  u: bigint;
  rho: bigint | undefined;
}

/**
 * blindedDifference, also returning the witness (a, u, ρ) for proveBlinding: plain a = r,
 * u = s − r·t; negate a = −r, u = r·t − 1 − s. `randomness` is a fresh (ρ, ρ^n) pair (from a pool:
 * used once); a bare `factor` gives no ρ, so no proof can be made for that query.
 */
export function blindedDifferenceWithWitness(
  pk: PaillierPublicKey,
  c: bigint,
  t: bigint,
  opts: { negate?: boolean; factor?: bigint; randomness?: { rho: bigint; factor: bigint } } = {},
): { ciphertext: bigint; witness: BlindingWitness } {
  assertCiphertext(pk, c);
  if (t >= PLAINTEXT_BOUND || t <= -PLAINTEXT_BOUND) throw new PaillierInputError('threshold out of range');
  const r = logUniformBlinding(blindingBits(pk));
  const s = randomBelow(r);
  let rho = opts.randomness?.rho;
  let factor = opts.randomness?.factor ?? opts.factor;
  if (factor === undefined) {
    rho = randomUnit(pk.n);
    factor = modPow(rho, pk.n, pk.n2);
  }
  const a = opts.negate ? -r : r;
  const u = opts.negate ? r * t - 1n - s : s - r * t;
  const blinded = opts.negate ? (modPow(modInverse(c, pk.n2), r, pk.n2) * gPow(pk, u)) % pk.n2 : (modPow(c, r, pk.n2) * gPow(pk, u)) % pk.n2;
  return { ciphertext: (blinded * factor) % pk.n2, witness: { a, u, rho } };
}

// ---------------------------------------------------------------------------------------------
// proof that c' was blinded from c (issue 10, the cross-user hole at POST /he/decide)

/**
 * A non-interactive (Fiat–Shamir) Σ-proof of knowledge of integers a, u and ρ ∈ Z*_n with
 * c' = c^a · (1+n)^u · ρ^n mod n², for the token's own c. Every c' is of that form for *some*
 * (a, u, ρ); what matters is knowing them: from two answers to one commitment an extractor gets
 * Dec(c') = a·x + u mod n with a, u known to the node (Δe < 2^128 is invertible mod n), so the
 * decision bit is about this token's x only. A c' built from another user's ciphertext c_V would
 * need an n-th root of c_V^r / c^a (the two tokens' randomness, Veil's) — the RSA problem.
 *
 * Prover: α ∈ [−2^(Ka+κ+λ), 2^(Ka+κ+λ)], β ∈ [−2^(Ku+κ+λ), 2^(Ku+κ+λ)] uniform (symmetric, so the
 * sign of z1 says nothing of the coin), σ ∈ Z*_n; A = c^α (1+n)^β σ^n; e = H(tag, n, c, c', A,
 * context) (κ = 128 bits); z1 = α + e·a, z2 = β + e·u, z3 = σ·ρ^e mod n. z1, z2 hide a, u
 * statistically to 2^−λ (λ = 80). Verifier: |z1|, |z2| within bounds, z3 ∈ Z*_n, and
 * e = H(…, c^z1 (1+n)^z2 z3^n c'^−e mod n², context).
 *
 * Wire (`proof` of POST /he/decide): `{ e, z1, z2, z3 }`, each base64url of a fixed-width
 * big-endian unsigned integer: e 16 bytes; z3 byteLength(n); z1, z2 offset by their bound B
 * (z + B ∈ [0, 2B)), in byteLength(2B − 1) bytes, so no length or sign character is needed.
 */
export const PROOF_CHALLENGE_BITS = 128;
export const PROOF_HIDING_BITS = 80;
const PROOF_TAG = 'veil/he-blinding-proof/v1';

export interface BlindingProof {
  e: bigint;
  z1: bigint;
  z2: bigint;
  z3: bigint;
}

export interface BlindingProofWire {
  e: string;
  z1: string;
  z2: string;
  z3: string;
}

/** Bits bounding |a| and |u| for blindedDifference's witnesses under this key. */
export function blindingWitnessBits(pk: PaillierPublicKey): { a: number; u: number } {
  const k = blindingBits(pk);
  // |a| = r < 2^K; |u| ≤ r·|t| + r + 1 < 2^(K+62) + 2^K + 1 < 2^(K+63).
  return { a: k, u: k + PLAINTEXT_BOUND_BITS + 1 };
}

/** Bounds of the responses: |z| < 2^(K+κ+λ+1) (the mask plus e·witness). */
function responseBounds(pk: PaillierPublicKey): { z1: bigint; z2: bigint; mask1: bigint; mask2: bigint } {
  const w = blindingWitnessBits(pk);
  const pad = PROOF_CHALLENGE_BITS + PROOF_HIDING_BITS;
  return {
    mask1: 1n << BigInt(w.a + pad),
    mask2: 1n << BigInt(w.u + pad),
    z1: 1n << BigInt(w.a + pad + 1),
    z2: 1n << BigInt(w.u + pad + 1),
  };
}

function proofChallenge(pk: PaillierPublicKey, c: bigint, cPrime: bigint, commitment: bigint, context: readonly string[]): bigint {
  const width = byteLength(pk.n2);
  const hash = createHash('sha256');
  const field = (bytes: Uint8Array): void => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    hash.update(length).update(bytes);
  };
  field(Buffer.from(PROOF_TAG));
  field(toBytes(pk.n));
  for (const v of [c, cPrime, commitment]) field(toBytes(v, width));
  field(Buffer.from(String(context.length)));
  for (const item of context) field(Buffer.from(item, 'utf8'));
  return fromBytes(hash.digest().subarray(0, PROOF_CHALLENGE_BITS / 8));
}

/** Uniform over [−m, m]. */
function randomSymmetric(m: bigint): bigint {
  return randomBelow(2n * m + 1n) - m;
}

/**
 * The node's proof that `cPrime` = c^a (1+n)^u ρ^n for the witness of blindedDifferenceWithWitness,
 * bound to `context` (Veil's /he/decide: the token's jti, the policy id, the node's client id).
 */
export function proveBlinding(pk: PaillierPublicKey, c: bigint, cPrime: bigint, witness: BlindingWitness, context: readonly string[]): BlindingProof {
  assertCiphertext(pk, c);
  assertCiphertext(pk, cPrime);
  if (witness.rho === undefined) throw new PaillierInputError('no ρ for this ciphertext: a pooled factor without its root cannot be proved');
  const w = blindingWitnessBits(pk);
  if (bitLength(witness.a < 0n ? -witness.a : witness.a) > w.a || bitLength(witness.u < 0n ? -witness.u : witness.u) > w.u) throw new PaillierInputError('witness out of range');
  const bounds = responseBounds(pk);
  const alpha = randomSymmetric(bounds.mask1);
  const beta = randomSymmetric(bounds.mask2);
  const sigma = randomUnit(pk.n);
  const commitment = (modPow(c, alpha, pk.n2) * gPow(pk, beta) * modPow(sigma, pk.n, pk.n2)) % pk.n2;
  const e = proofChallenge(pk, c, cPrime, commitment, context);
  return { e, z1: alpha + e * witness.a, z2: beta + e * witness.u, z3: (sigma * modPow(witness.rho, e, pk.n)) % pk.n };
}

/**
 * A' = c^z1 · c'^−e · (1+n)^z2 · z3^n mod P² for one prime P of n (Q the other), with short
 * exponents: Z*_{P²} = ω(Z*_P) × ⟨1+P⟩, y = ω(y mod P) · (1+P)^j(y), where ω(w) = w^P mod P² is the
 * Teichmüller lift and j(y) = −L_P(y^(P−1) mod P²) mod P is a homomorphism. So A' mod P is a
 * product of exponentiations mod P (exponents mod P−1), and j(A') = z1·j(c) − e·j(c') + z2·Q
 * (j(1+n) = Q; j(z3^n) = 0 as P | n): three (|P|)-bit exponentiations mod P² instead of three
 * full ones over n².
 */
function commitmentModPrimeSquare(P: bigint, P2: bigint, Q: bigint, c: bigint, cPrime: bigint, z1: bigint, z2: bigint, z3: bigint, e: bigint): bigint {
  const order = P - 1n;
  const n = P * Q;
  const w = (modPow(c % P, mod(z1, order), P) * modPow(cPrime % P, mod(-e, order), P) * modPow(z3 % P, n % order, P)) % P;
  const j = (y: bigint): bigint => mod(-L(modPow(y % P2, order, P2), P), P);
  const jA = mod(z1 * j(c) - e * j(cPrime) + z2 * Q, P);
  return (modPow(w, P, P2) * (1n + jA * P)) % P2;
}

/**
 * Veil's check of a node's proof for c' against the presented token's c: false for any proof
 * that does not verify (never throws on bad values). With the secret key, by CRT and short exponents (commitmentModPrimeSquare).
 */
export function verifyBlinding(key: PaillierPublicKey | PaillierSecretKey, c: bigint, cPrime: bigint, proof: BlindingProof, context: readonly string[]): boolean {
  const pk = 'publicKey' in key ? key.publicKey : key;
  const sk = 'publicKey' in key ? key : undefined;
  if (!isCiphertext(pk, c) || !isCiphertext(pk, cPrime)) return false;
  const { e, z1, z2, z3 } = proof;
  if ([e, z1, z2, z3].some((v) => typeof v !== 'bigint')) return false;
  const bounds = responseBounds(pk);
  if (e < 0n || e >= 1n << BigInt(PROOF_CHALLENGE_BITS)) return false;
  if (z1 <= -bounds.z1 || z1 >= bounds.z1 || z2 <= -bounds.z2 || z2 >= bounds.z2) return false;
  if (z3 <= 0n || z3 >= pk.n || gcd(z3, pk.n) !== 1n) return false;
  let commitment: bigint;
  if (sk) {
    const ap = commitmentModPrimeSquare(sk.p, sk.p2, sk.q, c, cPrime, z1, z2, z3, e);
    const aq = commitmentModPrimeSquare(sk.q, sk.q2, sk.p, c, cPrime, z1, z2, z3, e);
    commitment = mod(aq + sk.q2 * mod((ap - aq) * sk.q2InvP2, sk.p2), pk.n2);
  } else {
    commitment = (modPow(c, z1, pk.n2) * modPow(cPrime, -e, pk.n2) * gPow(pk, z2) * modPow(z3, pk.n, pk.n2)) % pk.n2;
  }
  return proofChallenge(pk, c, cPrime, commitment, context) === e;
}

function proofWidths(pk: PaillierPublicKey): { e: number; z1: number; z2: number; z3: number } {
  const bounds = responseBounds(pk);
  return { e: PROOF_CHALLENGE_BITS / 8, z1: byteLength(2n * bounds.z1 - 1n), z2: byteLength(2n * bounds.z2 - 1n), z3: byteLength(pk.n) };
}

export function proofToWire(pk: PaillierPublicKey, proof: BlindingProof): BlindingProofWire {
  const bounds = responseBounds(pk);
  const widths = proofWidths(pk);
  return {
    e: toBytes(proof.e, widths.e).toString('base64url'),
    z1: toBytes(proof.z1 + bounds.z1, widths.z1).toString('base64url'),
    z2: toBytes(proof.z2 + bounds.z2, widths.z2).toString('base64url'),
    z3: toBytes(proof.z3, widths.z3).toString('base64url'),
  };
}

/** Parses the wire form (exact widths, canonical base64url); PaillierInputError on bad input. Ranges are verifyBlinding's. */
export function proofFromWire(pk: PaillierPublicKey, wire: unknown): BlindingProof {
  if (typeof wire !== 'object' || wire === null || Array.isArray(wire)) throw new PaillierInputError('malformed proof');
  const bounds = responseBounds(pk);
  const widths = proofWidths(pk);
  const field = (name: keyof BlindingProofWire): bigint => {
    const s = (wire as Record<string, unknown>)[name];
    if (typeof s !== 'string' || s.length !== Math.ceil((widths[name] * 4) / 3) || !BASE64URL.test(s)) throw new PaillierInputError(`malformed proof: ${name}`);
    const bytes = Buffer.from(s, 'base64url');
    if (bytes.length !== widths[name] || bytes.toString('base64url') !== s) throw new PaillierInputError(`malformed proof: ${name}`);
    return fromBytes(bytes);
  };
  return { e: field('e'), z1: field('z1') - bounds.z1, z2: field('z2') - bounds.z2, z3: field('z3') };
}

// ---------------------------------------------------------------------------------------------
// wire formats

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** base64url of c, zero-padded to the byte length of n². Encodes what this code computed, so only
 *  the range is checked here (the gcd check, about 1 ms, is for parsing: ciphertextFromBase64url). */
export function ciphertextToBase64url(pk: PaillierPublicKey, c: bigint): string {
  if (typeof c !== 'bigint' || c <= 0n || c >= pk.n2) throw new PaillierInputError('not a ciphertext for this key');
  return toBytes(c, byteLength(pk.n2)).toString('base64url');
}

/** Parses a fixed-width base64url ciphertext; PaillierInputError unless it is an element of Z*_{n²}. */
export function ciphertextFromBase64url(pk: PaillierPublicKey, s: string): bigint {
  const width = byteLength(pk.n2);
  if (typeof s !== 'string' || s.length !== Math.ceil((width * 4) / 3) || !BASE64URL.test(s)) {
    throw new PaillierInputError('malformed ciphertext');
  }
  const bytes = Buffer.from(s, 'base64url');
  if (bytes.length !== width || bytes.toString('base64url') !== s) throw new PaillierInputError('malformed ciphertext');
  const c = fromBytes(bytes);
  assertCiphertext(pk, c);
  return c;
}

export function publicJwk(pk: PaillierPublicKey): PaillierPublicJwk {
  assertBits(pk.bits);
  return { kty: 'Paillier', kid: pk.kid, use: 'he', alg: `Paillier-${pk.bits}`, n: toBytes(pk.n).toString('base64url') };
}

const SMALL_PRIMES_PRODUCT = (() => {
  let product = 1n;
  for (let k = 2n; k < 2000n; k++) {
    let prime = true;
    for (let d = 2n; d * d <= k; d++) if (k % d === 0n) prime = false;
    if (prime) product *= k;
  }
  return product;
})();

/** Validates a public JWK (kty, use, alg matching n's exact size, canonical n, no small factor). */
export function publicKeyFromJwk(jwk: unknown): PaillierPublicKey {
  const bad = (why: string): never => {
    throw new PaillierInputError(`invalid Paillier JWK: ${why}`);
  };
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) return bad('not an object');
  const { kty, kid, use, alg, n } = jwk as Record<string, unknown>;
  if (kty !== 'Paillier') return bad('kty');
  if (typeof kid !== 'string' || kid.length === 0 || kid.length > 256) return bad('kid');
  if (use !== undefined && use !== 'he') return bad('use');
  if (alg !== 'Paillier-2048' && alg !== 'Paillier-3072') return bad('alg');
  const bits = alg === 'Paillier-2048' ? 2048 : 3072;
  if (typeof n !== 'string' || !BASE64URL.test(n) || n.length !== Math.ceil(((bits / 8) * 4) / 3)) return bad('n');
  const bytes = Buffer.from(n, 'base64url');
  if (bytes.toString('base64url') !== n) return bad('n');
  const modulus = fromBytes(bytes);
  if (bitLength(modulus) !== bits || gcd(modulus, SMALL_PRIMES_PRODUCT) !== 1n) return bad('n');
  return publicKeyFrom(modulus, kid);
}
