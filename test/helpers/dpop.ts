/** DPoP (RFC 9449) proofs made with jose, for tests that need good ones and every kind of bad one. */
import { createHash, randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

export interface DPoPKey {
  alg: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  /** RFC 7638 thumbprint of the public key: what a bound token's `cnf.jkt` says. */
  jkt: string;
}

export async function dpopKey(alg = 'ES256'): Promise<DPoPKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  return { alg, privateKey, publicJwk, jkt: await calculateJwkThumbprint(publicJwk) };
}

export const ath = (accessToken: string) => createHash('sha256').update(accessToken).digest('base64url');

export interface ProofOptions {
  htm: string;
  htu: string;
  /** Adds `ath` for this access token (resource requests). */
  accessToken?: string;
  iat?: number;
  jti?: string;
  typ?: string;
  /** The JWK put in the header (default: the key's public JWK). */
  jwk?: JWK;
  /** Claims to leave out, or to set to something else. */
  omit?: string[];
  claims?: Record<string, unknown>;
}

export async function dpopProof(key: DPoPKey, options: ProofOptions): Promise<string> {
  const payload: Record<string, unknown> = {
    htm: options.htm,
    htu: options.htu,
    iat: options.iat ?? Math.floor(Date.now() / 1000),
    jti: options.jti ?? randomUUID(),
    ...(options.accessToken !== undefined ? { ath: ath(options.accessToken) } : {}),
    ...options.claims,
  };
  for (const name of options.omit ?? []) delete payload[name];
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg, typ: options.typ ?? 'dpop+jwt', jwk: options.jwk ?? key.publicJwk }).sign(key.privateKey);
}
