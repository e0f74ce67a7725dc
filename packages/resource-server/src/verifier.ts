/**
 * Verifies Veil's sealed access tokens: a compact JWE encrypted to the API's own key whose
 * plaintext is an RFC 9068 JWT signed by Veil. All parsing and cryptography is jose's; this
 * module decides the order of checks and what each failure is called.
 */
import { createPrivateKey, KeyObject, type JsonWebKey } from 'node:crypto';
import {
  compactDecrypt,
  errors,
  jwtVerify,
  type CompactJWEHeaderParameters,
  type CryptoKey,
  type JWK,
  type JWTHeaderParameters,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { toVeilTokenError, VeilTokenError } from './errors.js';
import { createIntrospector, type IntrospectionOptions, type Introspector } from './introspection.js';
import { createIssuerJwks } from './issuer-jwks.js';
import { createDPoPChecker, type DPoPOptions, type DPoPRequest } from './dpop.js';
import { positiveOption } from './options.js';
import { createStatusListChecker, type StatusClaim, type StatusListOptions } from './status-list.js';
import { RevokedJtis, tokenKey, VerifiedTokenCache } from './token-cache.js';

const ECDH_ALGORITHMS = ['ECDH-ES', 'ECDH-ES+A128KW', 'ECDH-ES+A192KW', 'ECDH-ES+A256KW'] as const;
const RSA_ALGORITHMS = ['RSA-OAEP', 'RSA-OAEP-256', 'RSA-OAEP-384', 'RSA-OAEP-512'] as const;

/**
 * Everything an `algorithms` option may contain: asymmetric only, so never `none`, `dir`, HMAC,
 * AES key wrap or PBES2, which would let a holder of a public or shared value forge tokens.
 */
const SUPPORTED = {
  keyManagement: [...ECDH_ALGORITHMS, ...RSA_ALGORITHMS],
  contentEncryption: ['A128GCM', 'A192GCM', 'A256GCM', 'A128CBC-HS256', 'A192CBC-HS384', 'A256CBC-HS512'],
  signing: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'],
} as const;

export type KeyManagementAlgorithm = (typeof SUPPORTED.keyManagement)[number];
export type ContentEncryptionAlgorithm = (typeof SUPPORTED.contentEncryption)[number];
export type SigningAlgorithm = (typeof SUPPORTED.signing)[number];

export const DEFAULT_ALGORITHMS = {
  keyManagement: ['ECDH-ES', 'ECDH-ES+A128KW', 'ECDH-ES+A192KW', 'ECDH-ES+A256KW', 'RSA-OAEP', 'RSA-OAEP-256'],
  contentEncryption: ['A128GCM', 'A192GCM', 'A256GCM'],
  signing: ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'],
} as const satisfies { keyManagement: KeyManagementAlgorithm[]; contentEncryption: ContentEncryptionAlgorithm[]; signing: SigningAlgorithm[] };

/** A private key the API decrypts with: a private JWK, or an already imported key. Both need the `kid` Veil puts in the JWE header. */
export type DecryptionKey = (JWK & { kid: string }) | { kid: string; key: KeyObject | CryptoKey; alg?: KeyManagementAlgorithm };

interface VerifierOptionsBase {
  /** Veil's issuer identifier, exactly as in its discovery document. */
  issuer: string;
  /** This API's identifier (the resource URI); access tokens must name it in `aud`. */
  audience: string;
  /** Where Veil's signing keys are published. Default `${issuer}/jwks`. */
  jwksUri?: string;
  /** Minimum time between two JWKS fetches triggered by an unknown signing kid. Default 30000. */
  jwksCooldownMs?: number;
  /**
   * The longest a fetched JWKS is used before it is fetched again. Default 600000. Veil's
   * `Cache-Control: max-age` is honoured below it (at least 1 s), so a signing key Veil retires
   * stops being trusted within that max-age.
   */
  jwksCacheMaxAgeMs?: number;
  /** JWKS fetch timeout. Default 5000. */
  jwksTimeoutMs?: number;
  /** Narrow the accepted algorithms; values outside the safe built-in set are refused. */
  algorithms?: {
    keyManagement?: readonly KeyManagementAlgorithm[];
    contentEncryption?: readonly ContentEncryptionAlgorithm[];
    signing?: readonly SigningAlgorithm[];
  };
  /** Allowed clock skew for exp, nbf and iat. Default 5. */
  clockToleranceSeconds?: number;
  /** Tokens longer than this are rejected before any parsing. Default 8192. */
  maxTokenLength?: number;
  /** Also ask Veil (RFC 7662) whether the token is still active, after local checks pass. */
  introspect?: IntrospectionOptions;
  /**
   * Reuse a successful verification when the same token comes again (introspection, when on,
   * still runs by its own cache rules). On by default; `false` turns it off.
   */
  cache?: false | VerifiedTokenCacheOptions;
  /**
   * Token Status List checks (status-list.ts) for tokens with a `status` claim: refused unless
   * their entry is VALID. On by default; `false` turns them off (revocations then reach this API
   * only through introspection or the token's exp).
   */
  statusList?: false | StatusListOptions;
  /** DPoP (RFC 9449) proof checks for bound tokens: algorithms, `iat` window, replay cache size. */
  dpop?: DPoPOptions;
}

export interface VerifiedTokenCacheOptions {
  /** Most tokens remembered; the least recently used is dropped first. Default 10000. */
  maxEntries?: number;
  /**
   * Longest a verification is reused, however far away the token's exp. Default 60. Bounds how
   * long a token signed with a key Veil has since retired keeps verifying from the cache.
   */
  maxAgeSeconds?: number;
}

export interface RevokeOptions {
  /**
   * Until when (epoch seconds, normally the token's exp) the jti is refused. Default: the latest
   * exp among cached tokens with this jti, else 24 hours from now.
   */
  until?: number;
}

export type VerifierOptions = VerifierOptionsBase &
  ({ decryptionKeys: readonly DecryptionKey[]; decryptionJwks?: never } | { decryptionJwks: { keys: readonly JWK[] }; decryptionKeys?: never });

export interface AccessTokenClaims extends JWTPayload {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  jti: string;
  client_id: string;
  scope?: string;
  auth_time?: number;
  acr?: string;
  amr?: string[];
  /** draft-ietf-oauth-status-list: where the token's revocation status is published. */
  status?: StatusClaim;
  /** RFC 9449 §6: a DPoP-bound token names the thumbprint of its key. */
  cnf?: { jkt: string };
}

export interface VerifiedAccessToken {
  claims: AccessTokenClaims;
  /** The `scope` claim split on spaces. */
  scopes: string[];
  header: { jwe: CompactJWEHeaderParameters; jws: JWTHeaderParameters };
}

export interface AccessTokenVerifier {
  readonly issuer: string;
  readonly audience: string;
  /**
   * Resolves with the verified token or rejects with a VeilTokenError, never anything else.
   * Without `dpop` the token is used as a Bearer token, and a DPoP-bound one is refused
   * (`dpop_required`); with it, the token must be bound and the proof must check out (dpop.ts).
   */
  verify(token: string, dpop?: DPoPRequest): Promise<VerifiedAccessToken>;
  /** The DPoP proof algorithms accepted (for the `algs` of a DPoP challenge). */
  readonly dpopAlgorithms: readonly string[];
  /** Drops a cached verification of this token: its next use is verified in full again. */
  forget(token: string): boolean;
  /** Refuses every token with this jti from now on (`token_inactive`), cached or not. */
  revoke(jti: string, options?: RevokeOptions): void;
  /** Cache counters: a miss is a full verification (decryption, signature, claims); a hit, one that was spared. */
  cacheStats(): { entries: number; hits: number; misses: number };
}

type KeyFamily = 'ecdh' | 'rsa';

interface DecryptionKeyEntry {
  key: KeyObject | CryptoKey;
  family: KeyFamily;
  /** When the key names its algorithm, tokens must use exactly that one. */
  alg?: string;
}

const FAMILY_ALGORITHMS: Record<KeyFamily, readonly string[]> = { ecdh: ECDH_ALGORITHMS, rsa: RSA_ALGORITHMS };
const BASE64URL_SEGMENT = /^[A-Za-z0-9_-]*$/;
const REQUIRED_CLAIMS = ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'];
/** How long `revoke(jti)` refuses a jti whose exp it does not know: longer than any Veil access token lives by default. */
const DEFAULT_REVOCATION_MS = 24 * 3600 * 1000;

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

function fail(code: ConstructorParameters<typeof VeilTokenError>[0], message: string): never {
  throw new VeilTokenError(code, message);
}

function familyOf(key: KeyObject | CryptoKey, kid: string): KeyFamily {
  if (key instanceof KeyObject) {
    if (key.type !== 'private') throw new TypeError(`decryption key ${kid} is not a private key`);
    const type = key.asymmetricKeyType;
    if (type === 'ec' || type === 'x25519' || type === 'x448') return 'ecdh';
    if (type === 'rsa') return 'rsa';
    throw new TypeError(`decryption key ${kid} (${String(type)}) cannot decrypt JWEs`);
  }
  if (key.type !== 'private') throw new TypeError(`decryption key ${kid} is not a private key`);
  const name = key.algorithm.name;
  if (name === 'ECDH' || name === 'X25519' || name === 'X448') return 'ecdh';
  if (name === 'RSA-OAEP') return 'rsa';
  throw new TypeError(`decryption key ${kid} (${name}) cannot decrypt JWEs`);
}

function importJwk(jwk: JWK): DecryptionKeyEntry {
  const kid = jwk.kid;
  if (typeof kid !== 'string' || !kid) throw new TypeError('every decryption JWK needs a kid');
  if (!jwk.d) throw new TypeError(`decryption JWK ${kid} has no private part`);
  if (jwk.use !== undefined && jwk.use !== 'enc') throw new TypeError(`decryption JWK ${kid} has use "${jwk.use}", expected "enc"`);
  let key: KeyObject;
  try {
    // Importing up front turns a broken key into a start-up error instead of failing every request.
    key = createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' });
  } catch (cause) {
    throw new TypeError(`decryption JWK ${kid} cannot be imported`, { cause });
  }
  return { key, family: familyOf(key, kid), ...(jwk.alg !== undefined && { alg: jwk.alg }) };
}

function buildDecryptionKeys(options: VerifierOptions): Map<string, DecryptionKeyEntry> {
  if ((options.decryptionKeys === undefined) === (options.decryptionJwks === undefined)) {
    throw new TypeError('pass exactly one of decryptionKeys or decryptionJwks');
  }
  const inputs: readonly DecryptionKey[] = options.decryptionKeys ?? (options.decryptionJwks?.keys as DecryptionKey[] | undefined) ?? [];
  if (!isNonEmptyArray(inputs)) throw new TypeError('at least one decryption key is required');

  const keys = new Map<string, DecryptionKeyEntry>();
  for (const input of inputs) {
    let entry: DecryptionKeyEntry;
    if ('key' in input && !('kty' in input)) {
      if (typeof input.kid !== 'string' || !input.kid) throw new TypeError('every decryption key needs a kid');
      entry = { key: input.key, family: familyOf(input.key, input.kid), ...(input.alg !== undefined && { alg: input.alg }) };
    } else {
      entry = importJwk(input as JWK);
    }
    if (entry.alg !== undefined && !FAMILY_ALGORITHMS[entry.family].includes(entry.alg)) {
      throw new TypeError(`decryption key ${input.kid} names alg ${entry.alg}, which its key type cannot do`);
    }
    if (keys.has(input.kid)) throw new TypeError(`duplicate decryption key kid ${input.kid}`);
    keys.set(input.kid, entry);
  }
  return keys;
}

/**
 * Options may come from JavaScript, so lists are checked at run time. No type predicate on purpose:
 * `Array.isArray` would narrow a readonly typed array to `any[]`.
 */
function isNonEmptyArray(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0;
}

function allowList<T extends string>(given: readonly T[] | undefined, defaults: readonly T[], supported: readonly string[], name: string): T[] {
  const list = given ?? defaults;
  if (!isNonEmptyArray(list)) throw new TypeError(`algorithms.${name} must not be empty`);
  for (const alg of list) if (!supported.includes(alg)) throw new TypeError(`algorithms.${name} cannot include ${alg}`);
  return [...list];
}

function decodeJsonObject(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** RFC 7519 §5.2: `cty` is a media type, compared case-insensitively, `application/` optional. */
function isJwtContentType(cty: unknown): boolean {
  if (typeof cty !== 'string') return false;
  const value = cty.toLowerCase();
  return value === 'jwt' || value === 'application/jwt';
}

/** Structural checks on the outer token, done before any cryptography. */
function inspectJweHeader(token: string): void {
  const parts = token.split('.');
  if (!parts.every((part) => BASE64URL_SEGMENT.test(part))) fail('token_malformed', 'not a compact JOSE serialization');
  if (parts.length === 3) {
    if (typeof decodeJsonObject(parts[0]!)?.alg === 'string') fail('token_not_encrypted', 'a plain JWS was given; access tokens must be encrypted');
    fail('token_malformed', 'not a compact JOSE serialization');
  }
  if (parts.length !== 5) fail('token_malformed', 'not a compact JWE');
  const header = decodeJsonObject(parts[0]!);
  if (!header) fail('token_malformed', 'JWE protected header is not a JSON object');
  // Checked here so a compressed plaintext is never decrypted, let alone inflated.
  if (header.zip !== undefined) fail('compression_not_allowed', 'JWE compression (zip) is not accepted');
  if (header.crit !== undefined) fail('token_malformed', 'JWE crit header is not accepted');
  if (typeof header.alg !== 'string' || typeof header.enc !== 'string') fail('token_malformed', 'JWE header lacks alg or enc');
  if (!isJwtContentType(header.cty)) fail('wrong_token_type', 'JWE cty must be JWT');
}

function optionalType(claims: JWTPayload, claim: string, check: (value: unknown) => boolean): void {
  if (claims[claim] !== undefined && !check(claims[claim])) fail('claims_invalid', `${claim} claim has the wrong type`);
}

/** Claim checks jose does not do: types of the RFC 9068 claims, an iat from the future, cnf. */
function checkClaims(claims: JWTPayload, clockTolerance: number): AccessTokenClaims {
  for (const claim of ['iss', 'sub', 'jti', 'client_id']) {
    if (typeof claims[claim] !== 'string' || !claims[claim]) fail('claims_invalid', `${claim} claim must be a non-empty string`);
  }
  if (typeof claims.iat !== 'number' || typeof claims.exp !== 'number') fail('claims_invalid', 'iat and exp must be numbers');
  if (claims.iat > Date.now() / 1000 + clockTolerance) fail('token_not_yet_valid', 'iat is in the future');
  // DPoP-bound tokens are checked with their proof (verify's `dpop`); other confirmation methods
  // (mTLS) are not checked by this SDK, and accepting them as bearer tokens would defeat the binding.
  if (claims.cnf !== undefined) {
    const cnf = claims.cnf as Record<string, unknown> | null;
    if (typeof cnf !== 'object' || cnf === null || Object.keys(cnf).length !== 1 || typeof cnf.jkt !== 'string' || !cnf.jkt) {
      fail('wrong_token_type', 'sender-constrained tokens other than DPoP (cnf.jkt) are not accepted');
    }
  }
  optionalType(claims, 'scope', (v) => typeof v === 'string');
  optionalType(claims, 'auth_time', (v) => typeof v === 'number');
  optionalType(claims, 'acr', (v) => typeof v === 'string');
  optionalType(claims, 'amr', (v) => Array.isArray(v) && v.every((m) => typeof m === 'string'));
  return claims as AccessTokenClaims;
}

export function createVerifier(options: VerifierOptions): AccessTokenVerifier {
  const { issuer, audience } = options;
  if (typeof issuer !== 'string' || !URL.canParse(issuer)) throw new TypeError('issuer must be an absolute URL');
  if (typeof audience !== 'string' || !audience) throw new TypeError('audience is required');

  const decryptionKeys = buildDecryptionKeys(options);
  const keyManagementAlgorithms = allowList(options.algorithms?.keyManagement, DEFAULT_ALGORITHMS.keyManagement, SUPPORTED.keyManagement, 'keyManagement');
  const contentEncryptionAlgorithms = allowList(options.algorithms?.contentEncryption, DEFAULT_ALGORITHMS.contentEncryption, SUPPORTED.contentEncryption, 'contentEncryption');
  const signingAlgorithms = allowList(options.algorithms?.signing, DEFAULT_ALGORITHMS.signing, SUPPORTED.signing, 'signing');
  const clockTolerance = positiveOption(options.clockToleranceSeconds, 5, 'clockToleranceSeconds', true);
  const maxTokenLength = positiveOption(options.maxTokenLength, 8192, 'maxTokenLength');
  const dpopChecker = createDPoPChecker(options.dpop);

  const remoteJwks = createIssuerJwks(new URL(options.jwksUri ?? `${issuer.replace(/\/+$/, '')}/jwks`), {
    cooldownMs: positiveOption(options.jwksCooldownMs, 30_000, 'jwksCooldownMs', true),
    maxCacheMs: positiveOption(options.jwksCacheMaxAgeMs, 600_000, 'jwksCacheMaxAgeMs', true),
    timeoutMs: Math.floor(positiveOption(options.jwksTimeoutMs, 5000, 'jwksTimeoutMs')),
  });
  // jose re-fetches the JWKS on an unknown kid (rate-limited by the cooldown); only a genuinely
  // unknown kid is the token's fault, a failed fetch is Veil being unreachable.
  const signingKey: JWTVerifyGetKey = async (header, token) => {
    try {
      return await remoteJwks(header, token);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) throw err;
      throw new VeilTokenError('jwks_unavailable', 'cannot fetch the issuer signing keys', { cause: err });
    }
  };

  const statusLists =
    options.statusList === false ? undefined : createStatusListChecker({ issuer, signingKey, algorithms: signingAlgorithms, clockTolerance, settings: options.statusList });

  const decryptionKey = (header: CompactJWEHeaderParameters): KeyObject | CryptoKey => {
    if (typeof header.kid !== 'string') fail('decryption_key_unknown', 'JWE header has no kid');
    const entry = decryptionKeys.get(header.kid);
    if (!entry) fail('decryption_key_unknown', 'JWE kid matches none of the decryption keys');
    if (!FAMILY_ALGORITHMS[entry.family].includes(header.alg) || (entry.alg !== undefined && entry.alg !== header.alg)) {
      fail('algorithm_not_allowed', `JWE alg ${header.alg} does not fit decryption key ${header.kid}`);
    }
    return entry.key;
  };

  // RFC 9701 answers are opened with this API's keys and checked against Veil's, like tokens.
  const introspector: Introspector | undefined =
    options.introspect &&
    createIntrospector(issuer, options.introspect, async (answer) => {
      const { jws } = await decrypt(answer);
      const { payload } = await jwtVerify(jws, signingKey, {
        issuer,
        audience: options.introspect!.clientId,
        typ: 'token-introspection+jwt',
        algorithms: signingAlgorithms,
        clockTolerance,
        requiredClaims: ['iat'],
        maxTokenAge: 60,
      });
      const body = payload.token_introspection;
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new TypeError('no token_introspection object');
      return body as Record<string, unknown>;
    });

  async function decrypt(token: string): Promise<{ jws: string; header: CompactJWEHeaderParameters }> {
    let result;
    try {
      // maxDecompressedLength 0: jose must refuse zip even if the header check above ever missed it.
      result = await compactDecrypt(token, decryptionKey, { keyManagementAlgorithms, contentEncryptionAlgorithms, maxDecompressedLength: 0 });
    } catch (err) {
      throw toVeilTokenError(err, 'decrypt');
    }
    try {
      return { jws: new TextDecoder('utf-8', { fatal: true }).decode(result.plaintext), header: result.protectedHeader };
    } catch {
      fail('token_malformed', 'JWE plaintext is not UTF-8');
    }
  }

  async function verifySigned(jws: string): Promise<{ payload: JWTPayload; header: JWTHeaderParameters }> {
    const parts = jws.split('.').length;
    if (parts === 5) fail('wrong_token_type', 'JWE plaintext is another JWE; expected a signed JWT');
    if (parts !== 3) fail('token_malformed', 'JWE plaintext is not a compact JWS');
    try {
      const { payload, protectedHeader } = await jwtVerify(jws, signingKey, {
        issuer,
        audience,
        typ: 'at+jwt',
        algorithms: signingAlgorithms,
        clockTolerance,
        requiredClaims: REQUIRED_CLAIMS,
      });
      return { payload, header: protectedHeader };
    } catch (err) {
      throw toVeilTokenError(err, 'verify');
    }
  }

  const cacheOptions = options.cache === false ? undefined : (options.cache ?? {});
  const maxEntries = Math.floor(positiveOption(cacheOptions?.maxEntries, 10_000, 'cache.maxEntries'));
  const cache = cacheOptions && new VerifiedTokenCache<VerifiedAccessToken>(maxEntries, positiveOption(cacheOptions.maxAgeSeconds, 60, 'cache.maxAgeSeconds') * 1000);
  const revoked = new RevokedJtis(maxEntries);
  const pending = new Map<string, Promise<VerifiedAccessToken>>();
  let hits = 0;
  let misses = 0;

  /** Decryption, signature and claims: everything that only depends on the token itself. */
  async function verifyInFull(token: string): Promise<VerifiedAccessToken> {
    inspectJweHeader(token);
    const { jws, header: jweHeader } = await decrypt(token);
    const { payload, header: jwsHeader } = await verifySigned(jws);
    const claims = checkClaims(payload, clockTolerance);
    // Frozen: the same object may be handed to many requests from the cache.
    return deepFreeze({
      claims,
      scopes: claims.scope ? claims.scope.split(' ').filter(Boolean) : [],
      header: { jwe: jweHeader, jws: jwsHeader },
    });
  }

  const refuseIfRevoked = (jti: string, key: string | undefined) => {
    if (!revoked.has(jti, Date.now())) return;
    if (key) cache?.delete(key);
    fail('token_inactive', 'the token has been revoked');
  };

  return {
    issuer,
    audience,
    dpopAlgorithms: dpopChecker.algorithms,
    async verify(token, dpop) {
      if (typeof token !== 'string' || !token) fail('token_malformed', 'token must be a non-empty string');
      if (token.length > maxTokenLength) fail('token_too_large', `token is longer than ${maxTokenLength} characters`);
      const key = cache && tokenKey(token);
      // The cache holds a token only until its exp, so a hit is never an expired token.
      const cached = key ? cache.get(key, Date.now()) : undefined;
      const hit = cached !== undefined;
      // Concurrent requests with the same token share one verification.
      let inFlight = key && !hit ? pending.get(key) : undefined;
      if (hit || inFlight) hits += 1;
      else {
        misses += 1;
        inFlight = verifyInFull(token);
        if (key) {
          pending.set(key, inFlight);
          const done = () => pending.delete(key);
          inFlight.then(done, done);
        }
      }
      const verified = cached ?? (await inFlight!);
      const { jti, exp } = verified.claims;
      refuseIfRevoked(jti, key);
      if (introspector) {
        try {
          await introspector.assertActive(token, exp, jti);
        } catch (err) {
          // Veil said no: a signal to act on, not just to pass along (an outage is not one).
          if (err instanceof VeilTokenError && err.code === 'token_inactive') {
            if (key) cache.delete(key);
            revoked.add(jti, exp * 1000, Date.now());
          }
          throw err;
        }
        refuseIfRevoked(jti, key); // revoked while Veil was being asked
      }
      // Offline revocation: on every use, against the list as cached for its ttl.
      if (statusLists && verified.claims.status !== undefined) await statusLists.check(verified.claims.status);
      // Only successes are stored: failures are not worth remembering (see README, "Cache").
      if (key && !hit) cache.set(key, verified, jti, exp * 1000, Date.now());
      // The binding last: the cached verification is the token's, whoever presents it.
      const jkt = verified.claims.cnf?.jkt;
      if (!dpop) {
        if (jkt) fail('dpop_required', 'a DPoP-bound token must be sent with Authorization: DPoP and a DPoP proof');
      } else {
        if (!jkt) fail('dpop_not_bound', 'Authorization: DPoP was used with a token that is not DPoP-bound');
        await dpopChecker.check(dpop, token, jkt);
      }
      return verified;
    },
    forget(token) {
      return typeof token === 'string' && cache !== undefined && cache.delete(tokenKey(token));
    },
    revoke(jti, revokeOptions = {}) {
      if (typeof jti !== 'string' || !jti) throw new TypeError('jti must be a non-empty string');
      const now = Date.now();
      const cachedUntil = cache?.deleteJti(jti);
      const until = revokeOptions.until !== undefined ? revokeOptions.until * 1000 : (cachedUntil ?? now + DEFAULT_REVOCATION_MS);
      revoked.add(jti, until, now);
    },
    cacheStats: () => ({ entries: cache?.size ?? 0, hits, misses }),
  };
}
