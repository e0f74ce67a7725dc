/**
 * What a policy node computes, without any I/O and without any secret key: from the ciphertext
 * `c` of a claim `x` and the node's own threshold `t`, the blinded, re-randomised `c'` whose
 * decryption is >= 0 exactly when the comparison holds (paillier.ts `blindedDifference`), with
 * the private coin that hides the decision bit from Veil and a commitment to it.
 *
 * Every comparison reduces to "x >= t" on the integers:
 *   gte(x, t) = gte(x, t)            gt(x, t) = gte(x, t + 1)
 *   lte(x, t) = gte(−x, −t)          lt(x, t) = lte(x, t − 1) = gte(−x, 1 − t)
 * and `−x` is `multiplyPlain(c, −1)`, so the node never needs `x`.
 */
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { blindedDifference, ciphertextToBase64url, multiplyPlain, PLAINTEXT_BOUND, type PaillierPublicKey } from './paillier.js';
import { PolicyNodeError } from './policy-errors.js';

export const POLICY_OPS = ['gte', 'lte', 'gt', 'lt'] as const;
export type PolicyOp = (typeof POLICY_OPS)[number];

/**
 * Largest |threshold| accepted: below paillier.ts's PLAINTEXT_BOUND (2^62) after the op's ±1, so
 * the blinded value r·(x − t) + s stays inside (−n/2, n/2], where its sign survives decryption.
 */
export const MAX_THRESHOLD = PLAINTEXT_BOUND - 2n;

/** The threshold as a bigint, or `invalid_input` (a fraction, NaN, a string, out of range). */
export function thresholdOf(value: unknown): bigint {
  let t: bigint;
  if (typeof value === 'bigint') t = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) t = BigInt(value);
  else if (typeof value === 'string' && /^-?\d{1,19}$/.test(value)) t = BigInt(value);
  else throw new PolicyNodeError('invalid_input', 'the threshold must be an integer');
  if (t > MAX_THRESHOLD || t < -MAX_THRESHOLD) throw new PolicyNodeError('invalid_input', 'the threshold is out of range');
  return t;
}

/** The (ciphertext, threshold) pair for which "decryption >= 0" means `op(x, t)`. */
export function reduceToGte(pk: PaillierPublicKey, c: bigint, op: PolicyOp, t: bigint): { c: bigint; t: bigint } {
  switch (op) {
    case 'gte':
      return { c, t };
    case 'gt':
      return { c, t: t + 1n };
    case 'lte':
      return { c: multiplyPlain(pk, c, -1n), t: -t };
    case 'lt':
      return { c: multiplyPlain(pk, c, -1n), t: 1n - t };
    default:
      throw new PolicyNodeError('invalid_input', 'op must be one of gte, lte, gt, lt');
  }
}

/** One query as sent, and what the node keeps to read Veil's answer. */
export interface PreparedQuery {
  /** b64url of c' (fixed width), the `ciphertext` of POST /he/decide. */
  ciphertext: string;
  /** b64url(SHA-256(c' bytes)): the decision JWT's `ct_hash` must be this. */
  ctHash: string;
  /** b64url(SHA-256(coin byte ‖ nonce)): sent, so the signed decision binds the node to its coin. */
  commitment: string;
  /** The private coin: true when c' was negated, so Veil's `ok` is the opposite of the answer. */
  coin: boolean;
  /** Opens the commitment (to an auditor); never sent to Veil. */
  nonce: Uint8Array;
}

export const commitmentOf = (coin: boolean, nonce: Uint8Array): string =>
  createHash('sha256')
    .update(Uint8Array.of(coin ? 1 : 0))
    .update(nonce)
    .digest('base64url');

export const ciphertextHash = (ciphertextB64url: string): string => createHash('sha256').update(Buffer.from(ciphertextB64url, 'base64url')).digest('base64url');

/**
 * Builds c' for `op(x, t)` from `c` = Enc(x). `coin` is drawn here unless given (tests replay a
 * recorded coin); drawing it from the CSPRNG is what keeps Veil's view of the bits balanced.
 * `factor` is a re-randomisation factor the node precomputed (an n-th residue such as
 * `randomFactor(pk)`, used once): the full-size ρ^n is about two thirds of the work otherwise.
 */
export function prepareQuery(pk: PaillierPublicKey, c: bigint, op: PolicyOp, threshold: bigint, coin: boolean = randomInt(2) === 1, factor?: bigint): PreparedQuery {
  const reduced = reduceToGte(pk, c, op, threshold);
  const blinded = blindedDifference(pk, reduced.c, reduced.t, { negate: coin, factor });
  const ciphertext = ciphertextToBase64url(pk, blinded);
  const nonce = new Uint8Array(randomBytes(32));
  return { ciphertext, ctHash: ciphertextHash(ciphertext), commitment: commitmentOf(coin, nonce), coin, nonce };
}

/** The answer to the node's question from Veil's bit "decryption >= 0". */
export const readDecision = (query: Pick<PreparedQuery, 'coin'>, ok: boolean): boolean => (query.coin ? !ok : ok);
