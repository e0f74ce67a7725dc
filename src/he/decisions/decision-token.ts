/**
 * The answers of the decision and aggregate endpoints: short JWTs signed with Veil's active
 * access-token key (verifiable against /jwks like the tokens themselves), each with its own
 * `typ` so neither can pass for an access token or for the other.
 */
import { createHash, createPrivateKey, randomUUID, type JsonWebKey, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { ACCESS_TOKEN_SIGNING_ALG } from '../../crypto/algorithms.js';
import type { SigningJwk } from '../../crypto/keys.js';

export const DECISION_TYP = 'he-decision+jwt';
export const TOTAL_TYP = 'he-total+jwt';
/** A total stays checkable for a short while only: it is a result, not a credential. */
const TOTAL_TTL_SECONDS = 300;

export interface Decision {
  /** The access token's jti. */
  jti: string;
  node: string;
  policy: string;
  /** b64url(SHA-256(ciphertext bytes)): which c' this answers. */
  ctHash: string;
  ok: boolean;
  /** The node's commitment to its private coin, echoed. */
  commitment?: string | undefined;
  /** The token's exp: the decision is cached, and valid, for the token's life. */
  exp: number;
}

export interface Total {
  node: string;
  policy: string;
  claim: string;
  count: number;
  /** The (noisy) total, as a decimal string: it may exceed 2^53. */
  total: bigint;
  /** The noise mechanism and its scale, when noise was added (never the noise drawn). */
  noise?: { mechanism: 'discrete-laplace'; scale: number } | undefined;
}

export const ciphertextHash = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('base64url');

export class DecisionSigner {
  readonly #kid: string;
  readonly #key: KeyObject;

  /** From the key set oidc-provider was built with: the active ES256 key (keys that only verify carry key_ops). */
  constructor(
    private readonly issuer: string,
    signingKeys: readonly SigningJwk[],
  ) {
    const jwk = signingKeys.find((k) => k.alg === ACCESS_TOKEN_SIGNING_ALG && !k.key_ops);
    if (!jwk) throw new Error(`no active ${ACCESS_TOKEN_SIGNING_ALG} signing key`);
    this.#kid = jwk.kid;
    this.#key = createPrivateKey({ key: jwk as unknown as JsonWebKey, format: 'jwk' });
  }

  decision(d: Decision): Promise<string> {
    return new SignJWT({ node: d.node, policy: d.policy, ct_hash: d.ctHash, ok: d.ok, ...(d.commitment ? { commitment: d.commitment } : {}) })
      .setProtectedHeader({ alg: ACCESS_TOKEN_SIGNING_ALG, kid: this.#kid, typ: DECISION_TYP })
      .setIssuer(this.issuer)
      .setIssuedAt()
      .setExpirationTime(d.exp)
      .setJti(d.jti)
      .sign(this.#key);
  }

  total(t: Total): Promise<string> {
    return new SignJWT({ node: t.node, policy: t.policy, claim: t.claim, count: t.count, total: t.total.toString(), ...(t.noise ? { noise: t.noise } : {}) })
      .setProtectedHeader({ alg: ACCESS_TOKEN_SIGNING_ALG, kid: this.#kid, typ: TOTAL_TYP })
      .setIssuer(this.issuer)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + TOTAL_TTL_SECONDS)
      .setJti(randomUUID())
      .sign(this.#key);
  }
}
