/**
 * DPoP (RFC 9449): the proof that must come with a DPoP-bound access token. jose decodes the
 * proof's header, imports the public key it carries (a private or symmetric one is refused) and
 * verifies the signature and `typ` with it; this module checks what the proof says about the
 * request (`htm`, `htu`), its age (`iat`), the token it goes with (`ath`), the key the token is
 * bound to (RFC 7638 thumbprint against `cnf.jkt`) and that it is used once (`jti`).
 *
 * No server nonce (§9): freshness is the `iat` window, single use is the replay cache below, per
 * process. Behind several API instances a proof could be replayed once to each of them within
 * the window; keep `maxAgeSeconds` short.
 */
import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, decodeProtectedHeader, errors, importJWK, jwtVerify, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { VeilTokenError, type VeilTokenErrorCode } from './errors.js';
import { positiveOption } from './options.js';

export type DPoPAlgorithm = 'ES256' | 'ES384' | 'ES512' | 'PS256' | 'PS384' | 'PS512' | 'RS256' | 'RS384' | 'RS512' | 'Ed25519' | 'EdDSA';

const SUPPORTED: readonly DPoPAlgorithm[] = ['ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512', 'Ed25519', 'EdDSA'];

/** What Veil's token endpoint accepts (src/oidc/dpop-policy.ts): a proof Veil took is not refused here. */
export const DEFAULT_DPOP_ALGORITHMS: readonly DPoPAlgorithm[] = ['ES256', 'ES384', 'PS256', 'RS256', 'Ed25519', 'EdDSA'];

export interface DPoPOptions {
  /** Proof signing algorithms accepted (asymmetric only). Default DEFAULT_DPOP_ALGORITHMS. */
  algorithms?: readonly DPoPAlgorithm[];
  /** How old a proof's `iat` may be. Default 60 seconds. */
  maxAgeSeconds?: number;
  /** How far in the future a proof's `iat` may be (clock skew). Default 5 seconds. */
  clockToleranceSeconds?: number;
  /** Most proof `jti`s remembered at once (each for the `iat` window only). Default 100000. */
  replayCacheSize?: number;
}

/** The request a DPoP proof must describe. */
export interface DPoPRequest {
  /** The `DPoP` header's value; undefined when the request has none. */
  proof: string | undefined;
  /** The request's HTTP method. */
  method: string;
  /** The full URL the client called (the API's public origin, path and query). */
  url: string | URL;
}

export interface DPoPProofChecker {
  readonly algorithms: readonly DPoPAlgorithm[];
  /** Resolves when `request.proof` is a fresh, unused proof for this request, this token and the key `jkt`; else rejects with a VeilTokenError. */
  check(request: DPoPRequest, accessToken: string, jkt: string): Promise<void>;
}

/** A compact JWS and nothing else: a repeated header (joined with ", ") or stray text is refused before parsing. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const MAX_PROOF_LENGTH = 8192;
const MAX_JTI_LENGTH = 512;

function fail(code: VeilTokenErrorCode, message: string): never {
  throw new VeilTokenError(code, message);
}

const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url');

/** RFC 9449 §4.3: `htu` is compared without query and fragment, after URL normalisation (scheme and host case, default port). */
export function normalizeHtu(value: string | URL): string | undefined {
  const url = typeof value === 'string' ? URL.parse(value) : new URL(value.href);
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) return undefined;
  url.search = '';
  url.hash = '';
  return url.href;
}

/**
 * Proof `jti`s seen within the `iat` window: a Map in insertion order (about `iat` order), each
 * entry dropped once no proof with that `iat` can pass the window check any more. When full of
 * live entries, the oldest goes first: the size bounds memory, so it must exceed the proofs
 * the API receives in one window for single use to hold.
 */
export class ProofReplayCache {
  private readonly until = new Map<string, number>();

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.until.size;
  }

  /** Records the key; false if it was already there (a replay). Synchronous: no await between the check and the write. */
  claim(key: string, untilMs: number, now: number): boolean {
    const seen = this.until.get(key);
    if (seen !== undefined && seen > now) return false;
    this.until.delete(key);
    for (const [oldKey, oldUntil] of this.until) {
      if (oldUntil > now && this.until.size < this.maxEntries) break;
      this.until.delete(oldKey);
    }
    this.until.set(key, untilMs);
    return true;
  }
}

interface ProofKey {
  key: CryptoKey;
  /** RFC 7638 thumbprint of the public key. */
  jkt: string;
}

/**
 * Proof keys already imported, by algorithm and JWK as sent: a client sends the same key with
 * every request, and importing it and hashing its thumbprint cost about as much as checking the
 * signature. Bounded; the least recently used goes first.
 */
class ProofKeyCache {
  private readonly keys = new Map<string, ProofKey>();

  constructor(private readonly maxEntries: number) {}

  async get(jwk: JWK, alg: string): Promise<ProofKey> {
    // The whole header value: a hit is exactly the import that succeeded before.
    const id = JSON.stringify([alg, jwk]);
    const cached = this.keys.get(id);
    if (cached) {
      this.keys.delete(id);
      this.keys.set(id, cached);
      return cached;
    }
    const key = await importJWK({ ...jwk, ext: true }, alg);
    if (key instanceof Uint8Array || key.type !== 'public') throw new VeilTokenError('invalid_dpop_proof', 'the DPoP proof jwk must be a public key');
    const entry = { key, jkt: await calculateJwkThumbprint(jwk) };
    for (const oldest of this.keys.keys()) {
      if (this.keys.size < this.maxEntries) break;
      this.keys.delete(oldest);
    }
    this.keys.set(id, entry);
    return entry;
  }
}

function allowList(given: readonly DPoPAlgorithm[] | undefined): DPoPAlgorithm[] {
  const list: readonly DPoPAlgorithm[] = given ?? DEFAULT_DPOP_ALGORITHMS;
  // Options may come from JavaScript: checked at run time (no Array.isArray, which narrows to any[]).
  if (typeof list !== 'object' || list === null || list.length === 0) throw new TypeError('dpop.algorithms must not be empty');
  for (const alg of list) if (!SUPPORTED.includes(alg)) throw new TypeError(`dpop.algorithms cannot include ${String(alg)}`);
  return [...list];
}

export function createDPoPChecker(options: DPoPOptions = {}): DPoPProofChecker {
  const algorithms = allowList(options.algorithms);
  const maxAge = positiveOption(options.maxAgeSeconds, 60, 'dpop.maxAgeSeconds');
  const tolerance = positiveOption(options.clockToleranceSeconds, 5, 'dpop.clockToleranceSeconds', true);
  const replay = new ProofReplayCache(Math.floor(positiveOption(options.replayCacheSize, 100_000, 'dpop.replayCacheSize')));
  const proofKeys = new ProofKeyCache(1000);

  async function verifyProof(proof: string): Promise<{ payload: JWTPayload; jkt: string }> {
    try {
      // What jose's EmbeddedJWK does (the header's jwk, imported as a public key for the header's alg), with the import kept.
      const header = decodeProtectedHeader(proof);
      const { jwk, alg } = header;
      if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) fail('invalid_dpop_proof', 'the DPoP proof has no jwk header');
      if (typeof alg !== 'string' || !algorithms.includes(alg as DPoPAlgorithm)) fail('invalid_dpop_proof', 'DPoP proof algorithm is not accepted');
      if ('d' in jwk || jwk.kty === 'oct') fail('invalid_dpop_proof', 'the DPoP proof jwk must be a public key');
      const { key, jkt } = await proofKeys.get(jwk, alg);
      const { payload } = await jwtVerify(proof, key, { typ: 'dpop+jwt', algorithms });
      return { payload, jkt };
    } catch (err) {
      if (err instanceof VeilTokenError) throw err;
      if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) fail('invalid_dpop_proof', 'DPoP proof algorithm is not accepted');
      if (err instanceof errors.JWSSignatureVerificationFailed) fail('invalid_dpop_proof', 'DPoP proof signature is invalid');
      if (err instanceof errors.JWTClaimValidationFailed && err.claim === 'typ') fail('invalid_dpop_proof', 'DPoP proof typ must be dpop+jwt');
      fail('invalid_dpop_proof', 'DPoP proof is not a JWT signed with the public key in its jwk header');
    }
  }

  return {
    algorithms,
    async check(request, accessToken, jkt) {
      const { proof } = request;
      if (typeof proof !== 'string' || !proof) fail('invalid_dpop_proof', 'a DPoP proof header is required with a DPoP access token');
      if (proof.length > MAX_PROOF_LENGTH || !COMPACT_JWS.test(proof)) fail('invalid_dpop_proof', 'the DPoP header must carry exactly one compact JWS');
      const { payload, jkt: proofJkt } = await verifyProof(proof);

      const { jti, htm, htu, iat, ath } = payload as Record<string, unknown>;
      if (typeof jti !== 'string' || !jti || jti.length > MAX_JTI_LENGTH) fail('invalid_dpop_proof', 'DPoP proof jti must be a non-empty string');
      if (typeof htm !== 'string' || typeof htu !== 'string' || typeof iat !== 'number' || typeof ath !== 'string') {
        fail('invalid_dpop_proof', 'DPoP proof must have htm, htu and ath strings and a numeric iat');
      }
      if (htm !== request.method) fail('dpop_htm_mismatch', 'DPoP proof htm is not the request method');
      const expected = normalizeHtu(request.url);
      if (expected === undefined) throw new TypeError('the request URL must be an absolute http(s) URL');
      if (normalizeHtu(htu) !== expected) fail('dpop_htu_mismatch', 'DPoP proof htu is not the request URL');
      const now = Date.now() / 1000;
      if (iat > now + tolerance || iat < now - maxAge - tolerance) fail('dpop_proof_stale', `DPoP proof iat is outside the ${maxAge} s window`);
      if (ath !== sha256(accessToken)) fail('dpop_ath_mismatch', 'DPoP proof ath is not the hash of this access token');
      if (proofJkt !== jkt) fail('dpop_key_mismatch', 'DPoP proof key is not the key the access token is bound to');
      // Last, so only a proof that passed everything else uses up its jti.
      if (!replay.claim(sha256(`${jkt}.${jti}`), (iat + maxAge + tolerance) * 1000, Date.now())) fail('dpop_replay', 'DPoP proof jti was already used');
    },
  };
}
