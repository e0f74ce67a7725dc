/**
 * Discrete Laplace noise (the two-sided geometric mechanism, Ghosh et al. 2009) for aggregate
 * totals: P(k) ∝ exp(−|k|/b), drawn as the difference of two geometric variables with
 * success probability 1 − e^(−1/b). For a claim whose one user's value can move the total by at
 * most Δ (its declared range), a total with scale b is ε-differentially private with ε = Δ/b.
 * Randomness from node:crypto; the noise drawn is never returned, logged or stored.
 */
import { randomBytes } from 'node:crypto';

/** Uniform in (0, 1], 53 bits. */
function uniform(): number {
  const bits = randomBytes(8).readBigUInt64BE() >> 11n; // 53 bits
  return (Number(bits) + 1) / 2 ** 53;
}

/** Failures before the first success, success probability 1 − alpha. */
function geometric(alpha: number): number {
  return Math.floor(Math.log(uniform()) / Math.log(alpha));
}

/** One draw of discrete Laplace noise of scale b (> 0). */
export function discreteLaplace(scale: number): bigint {
  if (!(scale > 0)) return 0n;
  const alpha = Math.exp(-1 / scale);
  return BigInt(geometric(alpha) - geometric(alpha));
}
