/**
 * The node side of confidential claims (docs/CONFIDENTIAL_CLAIMS.md): a partial-trust service (a
 * gateway, a payment service) asks Veil whether an encrypted claim meets its own private
 * threshold, and learns that one bit. The node holds no secret key: only Veil's public HE key
 * set (`he_jwks_uri`), Veil's signing JWKS and its own client credentials.
 *
 * One query: c' = Enc(r·(x − t) + s) (negated on a private coin, committed to) goes to
 * `POST /he/decide`; Veil answers a signed `he-decision+jwt` whose `ok` is "c' decrypts to >= 0".
 * The answer is used only if it verifies with jose (issuer, typ, expiry) and is about exactly this
 * query: node = this client, policy, jti = the token's, ct_hash = SHA-256 of the c' sent,
 * commitment = the one sent. Veil answers once per (token, node, policy), so answers are kept
 * here per (token, policy, claim, op, threshold) until the token expires, and concurrent identical
 * questions share one call.
 */
import { createLocalJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { basicAuthorization } from './introspection.js';
import { createIssuerJwks } from './issuer-jwks.js';
import { ciphertextFromBase64url, PaillierInputError, publicKeyFromJwk, type PaillierPublicKey } from './paillier.js';
import { PolicyNodeError } from './policy-errors.js';
import { POLICY_OPS, prepareQuery, readDecision, thresholdOf, type PolicyOp, type PreparedQuery } from './policy-query.js';

export { PolicyNodeError, type PolicyNodeErrorCode } from './policy-errors.js';
/** The node's arithmetic alone, for a node that carries its queries to Veil itself. */
export { POLICY_OPS, prepareQuery, readDecision, type PolicyOp, type PreparedQuery } from './policy-query.js';

/** Asymmetric only, as the verifier's defaults: never `none` or HMAC. */
const SIGNING_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];
const DEFAULT_TIMEOUT_MS = 5000;
const HE_KEYS_COOLDOWN_MS = 30_000;
/** Veil's tokens with two 3072-bit claims are about 4,700 characters. */
const MAX_TOKEN_LENGTH = 16_384;

export interface PolicyNodeOptions {
  /** Veil's issuer identifier, exactly as in its discovery document. */
  issuer: string;
  /** This node's client at Veil (the policies are registered for it). */
  credentials: { clientId: string; clientSecret: string };
  /**
   * Keys given instead of fetched (a node that must not reach anything but the decision endpoint):
   * Veil's HE public key set and signing JWKS. Absent: from the discovery document's
   * `he_jwks_uri` and `jwks_uri`.
   */
  keys?: { he?: { keys: unknown[] }; signing?: JSONWebKeySet };
  /** Default `${issuer}/he/decide` and `${issuer}/he/aggregate`. */
  endpoints?: { decide?: string; aggregate?: string };
  /** Per-request timeout (discovery, keys, decisions). Default 5000. */
  timeoutMs?: number;
  /** Most answers remembered (per token, policy, claim, op, threshold). Default 10000. */
  cacheMaxEntries?: number;
  /** Allowed clock skew for the decision's exp. Default 5. */
  clockToleranceSeconds?: number;
  /** Told every call to Veil (not cache hits): sizes and latency, for metrics and the bench. Must not throw. */
  onQuery?: (event: PolicyQueryEvent) => void;
  /** The private coin. Default: the CSPRNG. Only for replaying a recorded run in tests; a predictable coin shows Veil the decisions. */
  coin?: () => boolean;
}

export interface PolicyQueryEvent {
  kind: 'decide' | 'aggregate';
  /** JSON body bytes sent, and answer bytes received. */
  requestBytes: number;
  responseBytes: number;
  /** Time to build c' (0 for aggregate) and the round trip to Veil, in milliseconds. */
  buildMs: number;
  roundTripMs: number;
  outcome: 'ok' | 'refused' | 'unavailable' | 'invalid';
}

/** The encrypted claim: from an access token the node opened (a gate), or from a companion `hec+jwt`. */
export type DecisionSubject =
  | {
      /** The token sent to Veil as is (sealed access token or companion). */
      token: string;
      /** The access token's `jti` (Veil's decision names it). */
      jti: string;
      /** The token's expiry (seconds): bounds how long the answer is remembered. */
      exp?: number;
      /** The `hec` claim object (`{ kid, <claim>: <b64url> }`). */
      hec: unknown;
    }
  | {
      /** A companion `hec+jwt` token: verified here against Veil's JWKS, its `hec` and bound `jti` read. */
      hecToken: string;
    };

export type DecideInput = DecisionSubject & {
  /** The policy id registered at Veil for this node and claim. */
  policy: string;
  claim: string;
  op: PolicyOp;
  /** The node's private threshold (an integer; never sent). */
  threshold: bigint | number | string;
};

/** A decision with what proves it: Veil's signed JWT and the opening of the coin commitment. */
export interface PolicyDecision {
  result: boolean;
  /** Veil's signed decision (its `ok` is the blinded bit, not the result, when the coin was set). */
  decisionJwt: string;
  coin: boolean;
  /** b64url nonce opening `commitment` (with the coin). */
  nonce: string;
  cached: boolean;
}

export interface AggregateInput {
  /** The aggregation policy id registered at Veil for this node. */
  policy: string;
  claim: string;
  /** Companion `hec+jwt` tokens (Veil recomputes the sum itself from their ciphertexts). */
  tokens: string[];
}

export interface AggregateResult {
  total: bigint;
  count: number;
  /** Veil's signed total. */
  totalJwt: string;
  /** Whether Veil added noise (and its description, as Veil states it). */
  noise: unknown;
}

export interface PolicyNode {
  /** Does the encrypted claim satisfy `op threshold`? Throws PolicyNodeError otherwise than yes/no. */
  decide(input: DecideInput): Promise<boolean>;
  /** As `decide`, with Veil's signed decision and the coin's opening (for an audit trail). */
  decideWithProof(input: DecideInput): Promise<PolicyDecision>;
  /** The total of `claim` over the companion tokens, as signed by Veil (at least k subjects). */
  aggregate(input: AggregateInput): Promise<AggregateResult>;
  /** The HE public key named by `kid` (fetched or given). */
  heKey(kid: string): Promise<PaillierPublicKey>;
}

interface Discovery {
  jwksUri: string;
  heJwksUri: string | undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

async function getJson(url: string, timeoutMs: number, code: 'discovery_failed' | 'keys_unavailable', what: string): Promise<Record<string, unknown>> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: 'application/json' }, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
  } catch (cause) {
    throw new PolicyNodeError(code, `${what} unreachable`, { cause });
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => {});
    throw new PolicyNodeError(code, `${what} answered HTTP ${res.status}`);
  }
  try {
    const body: unknown = await res.json();
    if (isObject(body)) return body;
  } catch {
    // fall through
  }
  throw new PolicyNodeError(code, `${what} is not a JSON object`);
}

/** Answers remembered per question until the token expires; bounded, oldest evicted first. */
class AnswerCache {
  readonly #entries = new Map<string, { decision: PolicyDecision; until: number }>();
  constructor(private readonly maxEntries: number) {}

  get(key: string): PolicyDecision | undefined {
    const hit = this.#entries.get(key);
    if (!hit) return undefined;
    if (hit.until > Date.now()) return hit.decision;
    this.#entries.delete(key);
    return undefined;
  }

  set(key: string, decision: PolicyDecision, until: number): void {
    if (until <= Date.now()) return;
    if (this.#entries.size >= this.maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { decision, until });
  }
}

export function createPolicyNode(options: PolicyNodeOptions): PolicyNode {
  const issuer = options.issuer;
  if (typeof issuer !== 'string' || !URL.canParse(issuer)) throw new TypeError('createPolicyNode: issuer must be a URL');
  const { clientId, clientSecret } = options.credentials ?? {};
  if (typeof clientId !== 'string' || !clientId || typeof clientSecret !== 'string' || !clientSecret) {
    throw new TypeError('createPolicyNode: credentials.clientId and credentials.clientSecret are required');
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const clockTolerance = options.clockToleranceSeconds ?? 5;
  const authorization = basicAuthorization(clientId, clientSecret);
  const base = issuer.replace(/\/+$/, '');
  const decideEndpoint = options.endpoints?.decide ?? `${base}/he/decide`;
  const aggregateEndpoint = options.endpoints?.aggregate ?? `${base}/he/aggregate`;
  const drawCoin = options.coin;
  const answers = new AnswerCache(options.cacheMaxEntries ?? 10_000);
  const pending = new Map<string, Promise<PolicyDecision>>();

  let discovery: Promise<Discovery> | undefined;
  const discover = (): Promise<Discovery> => {
    discovery ??= (async () => {
      const metadata = await getJson(`${base}/.well-known/openid-configuration`, timeoutMs, 'discovery_failed', 'the discovery document');
      // RFC 8414 §3.3: metadata for another issuer must not be used.
      if (metadata.issuer !== issuer) throw new PolicyNodeError('discovery_failed', 'the discovery document is for another issuer');
      const jwksUri = typeof metadata.jwks_uri === 'string' && URL.canParse(metadata.jwks_uri) ? metadata.jwks_uri : `${base}/jwks`;
      const heJwksUri = typeof metadata.he_jwks_uri === 'string' && URL.canParse(metadata.he_jwks_uri) ? metadata.he_jwks_uri : undefined;
      return { jwksUri, heJwksUri };
    })().catch((err: unknown) => {
      discovery = undefined; // tried again on the next query
      throw err;
    });
    return discovery;
  };

  // Veil's signing keys: given, or jose's remote set at the discovered jwks_uri (the verifier's policy).
  let signingKeys: JWTVerifyGetKey | undefined = options.keys?.signing ? createLocalJWKSet(options.keys.signing) : undefined;
  const signing = async (): Promise<JWTVerifyGetKey> => {
    if (signingKeys) return signingKeys;
    const { jwksUri } = await discover();
    signingKeys ??= createIssuerJwks(new URL(jwksUri), { cooldownMs: 30_000, maxCacheMs: 600_000, timeoutMs });
    return signingKeys;
  };

  // Veil's HE public keys by kid: given, or fetched from he_jwks_uri again (at most once per
  // cooldown) when a kid is unknown, so a rotation is picked up.
  const heKeys = new Map<string, PaillierPublicKey>();
  const loadKeySet = (set: unknown): void => {
    if (!isObject(set) || !Array.isArray(set.keys)) throw new PolicyNodeError('keys_unavailable', 'the HE key set is not a JWK Set');
    for (const jwk of set.keys) {
      try {
        const pk = publicKeyFromJwk(jwk);
        heKeys.set(pk.kid, pk);
      } catch {
        // A key this SDK cannot use (another kty, a damaged entry) is skipped, as jose skips them.
      }
    }
  };
  if (options.keys?.he) loadKeySet(options.keys.he);
  let heFetchedAt = -Infinity;
  let heFetch: Promise<void> | undefined;
  const heKey = async (kid: string): Promise<PaillierPublicKey> => {
    const known = heKeys.get(kid);
    if (known) return known;
    if (!options.keys?.he && Date.now() - heFetchedAt >= HE_KEYS_COOLDOWN_MS) {
      heFetch ??= (async () => {
        const { heJwksUri } = await discover();
        if (!heJwksUri) throw new PolicyNodeError('discovery_failed', 'the discovery document names no he_jwks_uri');
        loadKeySet(await getJson(heJwksUri, timeoutMs, 'keys_unavailable', 'the HE key set'));
        heFetchedAt = Date.now();
      })().finally(() => (heFetch = undefined));
      await heFetch;
    }
    const key = heKeys.get(kid);
    if (!key) throw new PolicyNodeError('he_key_unknown', 'the ciphertexts name an HE key Veil does not publish');
    return key;
  };

  async function verifySigned(jwt: string, typ: string, what: string): Promise<JWTPayload> {
    const keys = await signing();
    // A JWKS that cannot be fetched is Veil unavailable, not a bad answer (the verifier's rule).
    const getKey: JWTVerifyGetKey = async (header, token) => {
      try {
        return await keys(header, token);
      } catch (err) {
        if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) throw err;
        throw new PolicyNodeError('keys_unavailable', "cannot fetch Veil's signing keys", { cause: err instanceof Error ? { name: err.name } : undefined });
      }
    };
    try {
      const { payload } = await jwtVerify(jwt, getKey, { issuer, typ, algorithms: SIGNING_ALGORITHMS, clockTolerance, requiredClaims: ['exp'] });
      return payload;
    } catch (err) {
      if (err instanceof PolicyNodeError) throw err;
      const name = err instanceof Error ? err.name : 'error';
      // Not jose's error itself as the cause: its payload holds the claims.
      throw new PolicyNodeError(what === 'companion' ? 'companion_invalid' : 'decision_invalid', `${what} does not verify (${name})`, { cause: { name } });
    }
  }

  /** The encrypted claim, the token to send and its jti, from either kind of subject. */
  async function subjectOf(input: DecideInput): Promise<{ token: string; jti: string; exp: number | undefined; hec: Record<string, unknown> }> {
    if ('hecToken' in input) {
      if (typeof input.hecToken !== 'string' || !input.hecToken || input.hecToken.length > MAX_TOKEN_LENGTH) {
        throw new PolicyNodeError('companion_invalid', 'the companion token is missing or too large');
      }
      const payload = await verifySigned(input.hecToken, 'hec+jwt', 'companion');
      if (typeof payload.jti !== 'string' || !payload.jti || !isObject(payload.hec)) throw new PolicyNodeError('companion_invalid', 'the companion token has no jti or hec claim');
      return { token: input.hecToken, jti: payload.jti, exp: payload.exp, hec: payload.hec };
    }
    if (typeof input.token !== 'string' || !input.token || input.token.length > MAX_TOKEN_LENGTH) throw new PolicyNodeError('invalid_input', 'the token is missing or too large');
    if (typeof input.jti !== 'string' || !input.jti) throw new PolicyNodeError('invalid_input', "the token's jti is required");
    if (!isObject(input.hec)) throw new PolicyNodeError('invalid_input', 'the token carries no hec claim');
    return { token: input.token, jti: input.jti, exp: input.exp, hec: input.hec };
  }

  /** POSTs JSON to Veil as this client; the answer object, or the typed refusal. */
  async function post(url: string, body: unknown): Promise<{ answer: Record<string, unknown>; requestBytes: number; responseBytes: number; roundTripMs: number }> {
    const text = JSON.stringify(body);
    const started = performance.now();
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { authorization, accept: 'application/json', 'content-type': 'application/json' },
        body: text,
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (cause) {
      const why = cause instanceof Error && cause.name === 'TimeoutError' ? 'timed out' : 'unreachable';
      throw new PolicyNodeError('veil_unavailable', `${new URL(url).pathname} ${why}`, { cause: cause instanceof Error ? { name: cause.name } : undefined });
    }
    const raw = await res.text().catch(() => '');
    const roundTripMs = performance.now() - started;
    let answer: Record<string, unknown> | undefined;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (isObject(parsed)) answer = parsed;
    } catch {
      answer = undefined;
    }
    const requestBytes = Buffer.byteLength(text);
    const responseBytes = Buffer.byteLength(raw);
    if (res.status >= 500 || !answer) throw new PolicyNodeError('veil_unavailable', `${new URL(url).pathname} answered HTTP ${res.status}`);
    if (res.status !== 200) {
      // Only Veil's error code: its descriptions stay out of the node's logs and answers.
      const error = typeof answer.error === 'string' && /^[\x20-\x7e]{1,64}$/.test(answer.error) ? answer.error : `http_${res.status}`;
      throw new PolicyNodeError('refused', `Veil refused (${res.status} ${error})`, { oauthError: error, status: res.status });
    }
    return { answer, requestBytes, responseBytes, roundTripMs };
  }

  const report = (event: PolicyQueryEvent) => {
    try {
      options.onQuery?.(event);
    } catch {
      // metrics must not break decisions
    }
  };

  async function ask(
    subject: { token: string; jti: string; kid: string },
    input: DecideInput,
    query: PreparedQuery,
    buildMs: number,
  ): Promise<{ ok: boolean; decisionJwt: string }> {
    let sent;
    try {
      // kid: Veil cannot read a sealed token, so the node names the HE key its ciphertext is under.
      sent = await post(decideEndpoint, { token: subject.token, policy: input.policy, kid: subject.kid, ciphertext: query.ciphertext, commitment: query.commitment });
    } catch (err) {
      const outcome = err instanceof PolicyNodeError && err.code === 'refused' ? 'refused' : 'unavailable';
      report({ kind: 'decide', requestBytes: 0, responseBytes: 0, buildMs, roundTripMs: 0, outcome });
      throw err;
    }
    const event = { kind: 'decide' as const, requestBytes: sent.requestBytes, responseBytes: sent.responseBytes, buildMs, roundTripMs: sent.roundTripMs };
    try {
      const jwt = sent.answer.decision;
      if (typeof jwt !== 'string' || !jwt) throw new PolicyNodeError('decision_invalid', 'Veil answered no decision');
      const claims = await verifySigned(jwt, 'he-decision+jwt', 'the decision');
      if (claims.node === clientId && claims.policy === input.policy && claims.jti === subject.jti && claims.ct_hash !== query.ctHash) {
        throw new PolicyNodeError('already_decided', 'Veil answered this token and policy before, for another query');
      }
      const mismatch =
        claims.node !== clientId
          ? 'node'
          : claims.policy !== input.policy
            ? 'policy'
            : claims.jti !== subject.jti
              ? 'jti'
              : claims.ct_hash !== query.ctHash
                ? 'ct_hash'
                : claims.commitment !== undefined && claims.commitment !== query.commitment
                  ? 'commitment'
                  : typeof claims.ok !== 'boolean'
                    ? 'ok'
                    : undefined;
      if (mismatch) throw new PolicyNodeError('decision_invalid', `the decision's ${mismatch} is not this query's`);
      report({ ...event, outcome: 'ok' });
      return { ok: claims.ok as boolean, decisionJwt: jwt };
    } catch (err) {
      report({ ...event, outcome: 'invalid' });
      throw err;
    }
  }

  async function decideWithProof(input: DecideInput): Promise<PolicyDecision> {
    if (!isObject(input)) throw new PolicyNodeError('invalid_input', 'expected a decision request');
    if (!(POLICY_OPS as readonly string[]).includes(input.op)) throw new PolicyNodeError('invalid_input', 'op must be one of gte, lte, gt, lt');
    if (typeof input.policy !== 'string' || !input.policy) throw new PolicyNodeError('invalid_input', 'the policy id is required');
    if (typeof input.claim !== 'string' || !input.claim || input.claim === 'kid') throw new PolicyNodeError('invalid_input', 'the claim name is required');
    const threshold = thresholdOf(input.threshold);
    const subject = await subjectOf(input);

    const key = [subject.jti, input.policy, input.claim, input.op, threshold].join('\u0000');
    const hit = answers.get(key);
    if (hit) return { ...hit, cached: true };
    let inFlight = pending.get(key);
    if (!inFlight) {
      inFlight = (async () => {
        const { kid } = subject.hec;
        const encoded = subject.hec[input.claim];
        if (typeof kid !== 'string' || !kid) throw new PolicyNodeError('invalid_input', 'the hec claim names no kid');
        if (typeof encoded !== 'string') throw new PolicyNodeError('invalid_input', `the token carries no encrypted ${input.claim}`);
        const pk = await heKey(kid);
        const started = performance.now();
        let query: PreparedQuery;
        try {
          query = prepareQuery(pk, ciphertextFromBase64url(pk, encoded), input.op, threshold, drawCoin?.());
        } catch (err) {
          if (err instanceof PaillierInputError) throw new PolicyNodeError('invalid_input', `the encrypted ${input.claim} is not a ciphertext under ${kid}`);
          throw err;
        }
        const buildMs = performance.now() - started;
        const { ok, decisionJwt } = await ask({ ...subject, kid }, input, query, buildMs);
        const decision: PolicyDecision = { result: readDecision(query, ok), decisionJwt, coin: query.coin, nonce: Buffer.from(query.nonce).toString('base64url'), cached: false };
        // Veil answers once per (token, node, policy): remember it for the token's life.
        answers.set(key, decision, (subject.exp ?? Date.now() / 1000 + 300) * 1000);
        return decision;
      })();
      pending.set(key, inFlight);
      const done = () => pending.delete(key);
      inFlight.then(done, done);
    }
    return inFlight;
  }

  async function aggregate(input: AggregateInput): Promise<AggregateResult> {
    if (!isObject(input) || typeof input.policy !== 'string' || !input.policy || typeof input.claim !== 'string' || !input.claim) {
      throw new PolicyNodeError('invalid_input', 'the policy id and claim are required');
    }
    if (!Array.isArray(input.tokens) || input.tokens.some((t) => typeof t !== 'string' || !t || t.length > MAX_TOKEN_LENGTH)) {
      throw new PolicyNodeError('invalid_input', 'tokens must be companion tokens');
    }
    let sent;
    try {
      sent = await post(aggregateEndpoint, { policy: input.policy, claim: input.claim, tokens: input.tokens });
    } catch (err) {
      const outcome = err instanceof PolicyNodeError && err.code === 'refused' ? 'refused' : 'unavailable';
      report({ kind: 'aggregate', requestBytes: 0, responseBytes: 0, buildMs: 0, roundTripMs: 0, outcome });
      throw err;
    }
    const event = { kind: 'aggregate' as const, requestBytes: sent.requestBytes, responseBytes: sent.responseBytes, buildMs: 0, roundTripMs: sent.roundTripMs };
    try {
      const jwt = sent.answer.total;
      if (typeof jwt !== 'string' || !jwt) throw new PolicyNodeError('decision_invalid', 'Veil answered no total');
      const claims = await verifySigned(jwt, 'he-total+jwt', 'the total');
      if (claims.node !== clientId || claims.policy !== input.policy || claims.claim !== input.claim) {
        throw new PolicyNodeError('decision_invalid', 'the total is not for this node, policy and claim');
      }
      if (typeof claims.total !== 'string' || !/^-?\d+$/.test(claims.total) || typeof claims.count !== 'number') {
        throw new PolicyNodeError('decision_invalid', 'the total is not an integer with a count');
      }
      report({ ...event, outcome: 'ok' });
      return { total: BigInt(claims.total), count: claims.count, totalJwt: jwt, noise: claims.noise };
    } catch (err) {
      report({ ...event, outcome: 'invalid' });
      throw err;
    }
  }

  return {
    decide: async (input) => (await decideWithProof(input)).result,
    decideWithProof,
    aggregate,
    heKey,
  };
}
