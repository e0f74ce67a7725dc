/**
 * Where each resource server's public encryption key comes from: an inline JWK stored with
 * the registration, or the resource server's own `jwks_uri`, fetched with jose through the
 * SSRF-safe fetcher (http/remote-jwks.ts) and cached (re-fetched when the cache is stale, at
 * most once per cooldown, so a slow or hostile JWKS endpoint cannot be hammered or slow every
 * issuance down).
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { importJWK, type JSONWebKeySet, type JWK } from 'jose';
import { fetchJwkSet, JWKS_URI_ERROR, JwksUriError, safeRemoteJWKSet } from '../http/remote-jwks.js';
import type { OutboundPolicy } from '../http/safe-fetch.js';
import { assertSealingKey, defaultKeyManagementAlg, type ContentEncryptionAlg, type KeyManagementAlg, type SealingKey } from '../crypto/sealer.js';
import type { ResourceServerRecord } from '../store/resource-servers.js';
import { VeilError } from '../errors/veil-error.js';
import { CONTENT_ENCRYPTION_ALGORITHMS, KEY_MANAGEMENT_ALGORITHMS } from '../crypto/algorithms.js';

export const KEY_MANAGEMENT_ALGS: readonly KeyManagementAlg[] = KEY_MANAGEMENT_ALGORITHMS;
export const CONTENT_ENCRYPTION_ALGS: readonly ContentEncryptionAlg[] = CONTENT_ENCRYPTION_ALGORITHMS;

/** The resource server's key cannot be used (bad JWK, unreachable jwks_uri, no suitable key). */
export class EncryptionKeyError extends VeilError {
  constructor(message: string) {
    super('key_unavailable', message);
  }
}

/**
 * Validates an admin-supplied public JWK with jose (it is untrusted input) and turns it into a
 * KeyObject for the issuing path. Private parts are refused: Veil must never hold them.
 */
export async function importPublicEncryptionJwk(jwk: JWK): Promise<KeyObject> {
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw new EncryptionKeyError('the key is not a JWK object');
  if ('d' in jwk || 'p' in jwk || 'k' in jwk) throw new EncryptionKeyError('give the public key only: the JWK has private or symmetric parts');
  if (jwk.use !== undefined && jwk.use !== 'enc') throw new EncryptionKeyError(`the key is for "use": "${jwk.use}", not "enc"`);
  try {
    // jose validates the JWK's shape and parameters; node:crypto gives the KeyObject the sealer uses.
    await importJWK({ ...jwk, alg: undefined, ext: true }, jwk.kty === 'RSA' ? 'RSA-OAEP-256' : 'ECDH-ES');
    return createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  } catch (err) {
    throw new EncryptionKeyError(`the JWK is not a usable public key: ${(err as Error).message}`);
  }
}

export function resolveAlgorithms(key: KeyObject, alg: string | undefined, enc: string | undefined): { alg: KeyManagementAlg; enc: ContentEncryptionAlg } {
  const chosenAlg = (alg ?? defaultKeyManagementAlg(key)) as KeyManagementAlg;
  const chosenEnc = (enc ?? 'A256GCM') as ContentEncryptionAlg;
  if (!KEY_MANAGEMENT_ALGS.includes(chosenAlg)) throw new EncryptionKeyError(`unsupported key management algorithm ${chosenAlg}`);
  if (!CONTENT_ENCRYPTION_ALGS.includes(chosenEnc)) throw new EncryptionKeyError(`unsupported content encryption ${chosenEnc}`);
  try {
    assertSealingKey(key, chosenAlg, chosenEnc);
  } catch (err) {
    throw new EncryptionKeyError((err as Error).message);
  }
  return { alg: chosenAlg, enc: chosenEnc };
}

/** Picks the encryption key from a JWK Set: `use` enc (or unset), with a kid, and `alg` matching (or unset) when one is asked for. */
export function selectEncryptionJwk(keys: JWK[], alg?: string): JWK | undefined {
  return keys.find((k) => typeof k.kid === 'string' && (k.use === undefined || k.use === 'enc') && (alg === undefined || k.alg === undefined || k.alg === alg) && !('d' in k));
}

export interface EncryptionKeysOptions {
  /** How long a fetched JWK Set is used before it is fetched again. */
  jwksCacheSeconds: number;
  /** Minimum time between two fetches of one jwks_uri. */
  jwksCooldownSeconds: number;
  jwksTimeoutMs?: number;
  /** Where a jwks_uri may point (http/safe-fetch.ts). */
  policy: OutboundPolicy;
}

/**
 * RSA-OAEP (SHA-1) may not be chosen for a new registration; existing ones keep sealing with it.
 * Throws EncryptionKeyError when `alg` is it.
 */
export function refuseSha1Oaep(alg: string | undefined): void {
  if (alg === 'RSA-OAEP') {
    throw new EncryptionKeyError('RSA-OAEP (SHA-1) is refused for new resource servers: use RSA-OAEP-256, or an EC key with ECDH-ES+A256KW');
  }
}

type RemoteSet = ReturnType<typeof safeRemoteJWKSet>;

export class EncryptionKeys {
  readonly #inline = new Map<string, SealingKey>();
  readonly #remote = new Map<string, RemoteSet>();
  readonly #fromRemote = new Map<string, { jwk: JWK; key: SealingKey }>();
  /** When a fetch of a jwks_uri last failed: jose's cooldown only counts successful fetches. */
  readonly #failedAt = new Map<string, number>();

  constructor(private readonly options: EncryptionKeysOptions) {}

  /** The key to seal this resource server's tokens to. */
  async forResourceServer(rs: ResourceServerRecord): Promise<SealingKey> {
    if (rs.encryptionJwk) return this.#inlineKey(rs);
    if (rs.jwksUri) return this.#remoteKey(rs, rs.jwksUri);
    throw new EncryptionKeyError(`resource server ${rs.identifier} has no encryption key`);
  }

  /** Fetches a jwks_uri once through the SSRF rules (registration); throws EncryptionKeyError. */
  async fetchKeySet(uri: string): Promise<JSONWebKeySet> {
    try {
      return await fetchJwkSet(uri, this.options.policy);
    } catch (err) {
      throw new EncryptionKeyError(err instanceof JwksUriError ? err.message : JWKS_URI_ERROR);
    }
  }

  /** Drops what is cached for a resource server (it was changed or deleted). */
  forget(rs: Pick<ResourceServerRecord, 'identifier' | 'jwksUri'>): void {
    this.#inline.delete(rs.identifier);
    if (rs.jwksUri) this.#remote.delete(rs.jwksUri);
  }

  async #inlineKey(rs: ResourceServerRecord): Promise<SealingKey> {
    const cacheKey = `${rs.identifier}\n${JSON.stringify(rs.encryptionJwk)}\n${rs.encryptionAlg}\n${rs.encryptionEnc}`;
    const cached = this.#inline.get(cacheKey);
    if (cached) return cached;
    const jwk = rs.encryptionJwk as JWK;
    const key = await importPublicEncryptionJwk(jwk);
    const { alg, enc } = resolveAlgorithms(key, rs.encryptionAlg, rs.encryptionEnc);
    const sealing: SealingKey = { kid: String(jwk.kid), alg, enc, key };
    this.#inline.set(cacheKey, sealing);
    return sealing;
  }

  #remoteSet(uri: string): RemoteSet {
    let set = this.#remote.get(uri);
    if (!set) {
      set = safeRemoteJWKSet(new URL(uri), this.options.policy, {
        cacheMaxAge: this.options.jwksCacheSeconds * 1000,
        cooldownDuration: this.options.jwksCooldownSeconds * 1000,
        timeoutDuration: this.options.jwksTimeoutMs ?? 3000,
      });
      this.#remote.set(uri, set);
    }
    return set;
  }

  async #remoteKey(rs: ResourceServerRecord, uri: string): Promise<SealingKey> {
    const set = this.#remoteSet(uri);
    // Stale (or never fetched): fetch again, unless a fetch happened within the cooldown.
    const failedAt = this.#failedAt.get(uri);
    const backingOff = failedAt !== undefined && Date.now() - failedAt < this.options.jwksCooldownSeconds * 1000;
    if (!set.fresh && !set.coolingDown && !backingOff) {
      try {
        await set.reload();
        this.#failedAt.delete(uri);
      } catch (err) {
        this.#failedAt.set(uri, Date.now());
        // Never the error's own text: jose's parse errors quote what was fetched.
        if (!set.jwks()) throw new EncryptionKeyError(err instanceof JwksUriError ? err.message : JWKS_URI_ERROR);
        // Keep sealing to the last good key set while the endpoint is failing.
      }
    }
    const jwks = set.jwks();
    if (!jwks) throw new EncryptionKeyError(`no JWK Set from ${uri} yet`);
    const jwk = selectEncryptionJwk(jwks.keys, rs.encryptionAlg);
    if (!jwk) throw new EncryptionKeyError(`${uri} has no encryption key with a kid for ${rs.encryptionAlg}`);
    const cacheKey = `${rs.identifier}\n${uri}`;
    const cached = this.#fromRemote.get(cacheKey);
    if (cached && cached.jwk === jwk) return cached.key;
    const key = await importPublicEncryptionJwk(jwk);
    const { alg, enc } = resolveAlgorithms(key, rs.encryptionAlg, rs.encryptionEnc);
    const sealing: SealingKey = { kid: String(jwk.kid), alg, enc, key };
    this.#fromRemote.set(cacheKey, { jwk, key: sealing });
    return sealing;
  }
}
