/**
 * Encrypts a token's confidential claims (`hec`) under the active HE key: one fresh pooled
 * randomness factor per ciphertext (randomness-pool.ts), so equal values never give equal
 * ciphertexts and no token shares randomness with another. Values must satisfy |v| < 2^62, the
 * range the blinded comparison is correct for (`PLAINTEXT_BOUND`); E1's attribute ranges are
 * narrower. The plain values go nowhere but into `encrypt`.
 */
import { PLAINTEXT_BOUND, PaillierInputError, ciphertextToBase64url, encrypt } from '@veil/resource-server/paillier';
import type { HeKeyRing } from './he-keys.js';
import type { RandomnessPool } from './randomness-pool.js';

/** The `hec` claim: the key id and one base64url ciphertext per claim name. */
export type HecClaim = { kid: string } & { [claim: string]: string };

export class HeEncryptor {
  constructor(
    private readonly keys: HeKeyRing,
    private readonly pool: RandomnessPool,
  ) {}

  async encrypt(values: Record<string, bigint>): Promise<HecClaim> {
    for (const [name, value] of Object.entries(values)) {
      if (name === 'kid') throw new PaillierInputError('"kid" cannot name a confidential claim');
      if (typeof value !== 'bigint' || value >= PLAINTEXT_BOUND || value <= -PLAINTEXT_BOUND) throw new PaillierInputError(`confidential claim ${name} is out of range`);
    }
    for (let attempt = 0; ; attempt++) {
      const pk = this.keys.active();
      try {
        const hec: HecClaim = { kid: pk.kid };
        const entries = Object.entries(values);
        const factors = await Promise.all(entries.map(() => this.pool.take(pk)));
        entries.forEach(([name, value], i) => {
          (hec as Record<string, string>)[name] = ciphertextToBase64url(pk, encrypt(pk, value, factors[i]));
        });
        return hec;
      } catch (err) {
        // The active key changed while waiting for factors (a rotation reached this process): once more with the new key.
        if (attempt > 0 || this.keys.active().kid === pk.kid) throw err;
      }
    }
  }
}
