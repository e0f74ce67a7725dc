/** argon2id password hashing with configurable cost (never below OWASP's minimum, see config). */
import argon2 from 'argon2';

export interface Argon2Params {
  memoryCost: number; // KiB
  timeCost: number;
  parallelism: number;
}

export class PasswordHasher {
  readonly #options: Argon2Params & { type: typeof argon2.argon2id };
  #dummyHash: Promise<string> | undefined;

  constructor(params: Argon2Params) {
    this.#options = { ...params, type: argon2.argon2id };
  }

  hash(password: string): Promise<string> {
    return argon2.hash(password, this.#options);
  }

  async verify(hash: string, password: string): Promise<boolean> {
    try {
      return await argon2.verify(hash, password);
    } catch {
      return false; // a malformed stored hash never authenticates
    }
  }

  /** True when the stored hash was made with other parameters than the configured ones. */
  needsRehash(hash: string): boolean {
    return argon2.needsRehash(hash, this.#options);
  }

  /**
   * Burns the same work as a real verification, for unknown or disabled accounts, so the
   * response time does not reveal whether an email is registered.
   */
  async verifyAgainstDummy(password: string): Promise<false> {
    this.#dummyHash ??= this.hash('veil-timing-equaliser');
    await this.verify(await this.#dummyHash, password);
    return false;
  }
}
