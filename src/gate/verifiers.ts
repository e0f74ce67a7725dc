/**
 * One `@veil/resource-server` verifier per audience the gate fronts: its private decryption keys
 * (read from the configured files, never logged), the SDK's verified-token cache, and, with
 * `introspect.enabled`, the SDK's introspection with its short cache. The SDK's error codes are
 * reduced here to the few reasons the gate counts and logs.
 */
import fs from 'node:fs/promises';
import { createVerifier, VeilTokenError, type AccessTokenVerifier, type DecryptionKey, type VeilTokenErrorCode } from '@veil/resource-server';
import type { JWK } from 'jose';
import { GateConfigError, type GateAudienceConfig, type GateConfig } from './config.js';

/** Why a token was refused (a metric label: a fixed set, never token content). */
export type TokenReason =
  | 'malformed'
  | 'oversized'
  | 'expired'
  | 'not_yet_valid'
  | 'revoked'
  | 'wrong_audience'
  | 'wrong_issuer'
  | 'bad_signature'
  | 'undecryptable'
  | 'unsupported_token'
  | 'dpop_required'
  | 'bad_dpop_proof';

/** Veil itself could not be asked (its JWKS or introspection endpoint): not the token's fault. */
export type UnavailableReason = 'jwks_unavailable' | 'introspection_unavailable' | 'status_list_unavailable';

const REASONS: Record<VeilTokenErrorCode, TokenReason | UnavailableReason> = {
  token_malformed: 'malformed',
  token_too_large: 'oversized',
  token_not_encrypted: 'malformed',
  compression_not_allowed: 'malformed',
  claims_invalid: 'malformed',
  algorithm_not_allowed: 'malformed',
  // Sealed to a key this audience does not hold: a token for another API.
  decryption_key_unknown: 'wrong_audience',
  audience_mismatch: 'wrong_audience',
  decryption_failed: 'undecryptable',
  signing_key_unknown: 'bad_signature',
  signature_invalid: 'bad_signature',
  issuer_mismatch: 'wrong_issuer',
  token_expired: 'expired',
  token_not_yet_valid: 'not_yet_valid',
  // An mTLS-bound token, or a JWE inside a JWE: not an access token the gate can pass.
  wrong_token_type: 'unsupported_token',
  token_inactive: 'revoked',
  // Token Status List: the token's entry is not VALID; a list that cannot be had or trusted is Veil's side (503).
  token_revoked: 'revoked',
  token_suspended: 'revoked',
  status_list_uri_untrusted: 'malformed',
  status_list_invalid: 'status_list_unavailable',
  status_list_expired: 'status_list_unavailable',
  status_list_key_unknown: 'status_list_unavailable',
  status_list_unavailable: 'status_list_unavailable',
  introspection_failed: 'introspection_unavailable',
  jwks_unavailable: 'jwks_unavailable',
  // DPoP (decide.ts checks the proof against the original request): a bound token sent as Bearer,
  // an unbound one sent as DPoP, and each way the proof fails (the SDK's code goes to the log line).
  dpop_required: 'dpop_required',
  dpop_not_bound: 'unsupported_token',
  invalid_dpop_proof: 'bad_dpop_proof',
  dpop_htm_mismatch: 'bad_dpop_proof',
  dpop_htu_mismatch: 'bad_dpop_proof',
  dpop_proof_stale: 'bad_dpop_proof',
  dpop_ath_mismatch: 'bad_dpop_proof',
  dpop_key_mismatch: 'bad_dpop_proof',
  dpop_replay: 'bad_dpop_proof',
};

export function reasonOf(err: VeilTokenError): TokenReason | UnavailableReason {
  return REASONS[err.code];
}

export const isUnavailable = (reason: TokenReason | UnavailableReason): reason is UnavailableReason =>
  reason === 'jwks_unavailable' || reason === 'introspection_unavailable' || reason === 'status_list_unavailable';

export { VeilTokenError };

export type IntrospectionOutcome = 'active' | 'inactive' | 'failed';

/** A private JWK, or a JWK Set of them, from a file; errors name the file, never its content. */
export async function readDecryptionKeys(file: string, where: string): Promise<DecryptionKey[]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new GateConfigError(`${where}: cannot read ${file} (${code ?? 'not JSON'})`, { cause: code ? err : undefined });
  }
  const keys = (typeof parsed === 'object' && parsed !== null && Array.isArray((parsed as { keys?: unknown }).keys) ? (parsed as { keys: unknown[] }).keys : [parsed]) as JWK[];
  for (const key of keys) {
    if (typeof key !== 'object' || key === null || typeof key.kty !== 'string') throw new GateConfigError(`${where}: ${file} is not a JWK or a JWK Set`);
    if (typeof key.kid !== 'string' || !key.kid) throw new GateConfigError(`${where}: a key in ${file} has no kid (Veil names the key in the token's kid)`);
    if (typeof key.d !== 'string') throw new GateConfigError(`${where}: a key in ${file} is a public key; the gate needs the private key to decrypt`);
  }
  return keys as DecryptionKey[];
}

export interface AudienceVerifiers {
  get(audience: string): AccessTokenVerifier;
  /** Summed over every audience: a miss is a full decryption and signature check. */
  cacheStats(): { hits: number; misses: number };
}

export async function buildVerifiers(config: GateConfig, onIntrospection: (audience: string, outcome: IntrospectionOutcome) => void): Promise<AudienceVerifiers> {
  const verifiers = new Map<string, AccessTokenVerifier>();
  for (const [i, audience] of config.audiences.entries()) {
    verifiers.set(audience.identifier, await buildVerifier(config, audience, i, onIntrospection));
  }
  return {
    get(audience) {
      const verifier = verifiers.get(audience);
      // Config validation makes every route's audience one of these.
      if (!verifier) throw new Error(`no verifier for ${audience}`);
      return verifier;
    },
    cacheStats() {
      let hits = 0;
      let misses = 0;
      for (const v of verifiers.values()) {
        const s = v.cacheStats();
        hits += s.hits;
        misses += s.misses;
      }
      return { hits, misses };
    },
  };
}

async function buildVerifier(
  config: GateConfig,
  audience: GateAudienceConfig,
  index: number,
  onIntrospection: (audience: string, outcome: IntrospectionOutcome) => void,
): Promise<AccessTokenVerifier> {
  const keys: DecryptionKey[] = [];
  for (const [k, file] of audience.decryptionKeys.entries()) keys.push(...(await readDecryptionKeys(file, `audiences[${index}].decryptionKeys[${k}]`)));
  // The API's own introspection credentials, else the gate's client (which Veil lets introspect
  // the tokens of the APIs in its exchange_from).
  const credentials = audience.introspection ?? (config.client && { clientId: config.client.id, clientSecret: config.client.secret });
  const introspection = config.introspect.enabled ? credentials : undefined;
  try {
    return createVerifier({
      issuer: config.issuer,
      audience: audience.identifier,
      decryptionKeys: keys,
      ...(config.jwksUri && { jwksUri: config.jwksUri }),
      cache: { maxEntries: config.cache.maxEntries, maxAgeSeconds: config.cache.maxAgeSeconds },
      ...(introspection && {
        introspect: {
          clientId: introspection.clientId,
          clientSecret: introspection.clientSecret,
          cacheSeconds: config.introspect.cacheSeconds,
          cacheMaxEntries: config.cache.maxEntries,
          ...(config.introspectionEndpoint && { endpoint: config.introspectionEndpoint }),
          onResult: (outcome: IntrospectionOutcome) => onIntrospection(audience.identifier, outcome),
        },
      }),
    });
  } catch (err) {
    // The SDK's TypeErrors name the key by kid and say what is wrong with it, never its value.
    throw new GateConfigError(`audiences[${index}]: ${(err as Error).message}`, { cause: err });
  }
}
