/**
 * The token a node presents at the decision and aggregate endpoints, resolved to what Veil
 * issued and which encrypted claims (and under which HE key) it carries:
 *   companion `hec+jwt` (3 parts): verified with jose against Veil's own keys; its `hec` claim
 *       read; bound to the access token by its `jti`;
 *   inner JWS `at+jwt` (3 parts, what the audience holds after decrypting): verified likewise,
 *       its `hec` read;
 *   sealed access token (5 parts): found by hash. Veil cannot read it, so the claims are those
 *       its audience is registered for (`he_claims`), the kid the one the node names (else the
 *       active HE key): a wrong kid only decrypts the node's own query into noise.
 * Either way the access token's record must be live by introspection's rules (isActive).
 */
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { ResourceServerRecord } from '../../store/resource-servers.js';
import { isActive, type Liveness } from '../../oidc/introspection.js';
import type { FoundToken, TokenLookup } from '../../oidc/token-lookup.js';
import { MAX_TOKEN_LENGTH } from '../../oidc/token-lookup.js';

export const COMPANION_TYP = 'hec+jwt';
const COMPACT = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]*){2}$|^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]*){4}$/;

export interface HeToken {
  found: FoundToken;
  /** The account the token is for. */
  accountId: string;
  /** The access token's expiry, seconds. */
  exp: number;
  /** The HE key id, when the token says (companion, inner JWS). */
  kid: string | undefined;
  /** Encrypted claims by name (b64url), when Veil can read them. */
  ciphertexts: Record<string, string> | undefined;
  /** The claims the token carries (read, or its audience's `he_claims`). */
  claims: readonly string[];
  form: 'companion' | 'inner' | 'sealed';
}

export interface HeTokenDeps {
  issuer: string;
  tokens: TokenLookup;
  liveness: Liveness;
  /** Veil's public signing keys and algorithms (the same set the token lookup verifies with). */
  publicKeys: JSONWebKeySet;
  signingAlgs: string[];
  /** The registry's record of an audience (cached). */
  resource: (identifier: string) => Promise<ResourceServerRecord | null>;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `{ kid, <claim>: <b64url> }` as read from a verified token, or undefined. */
function hecOf(value: unknown): { kid: string; ciphertexts: Record<string, string> } | undefined {
  if (!isRecord(value) || typeof value.kid !== 'string' || !value.kid) return undefined;
  const ciphertexts: Record<string, string> = {};
  for (const [name, c] of Object.entries(value)) if (name !== 'kid' && typeof c === 'string') ciphertexts[name] = c;
  return { kid: value.kid, ciphertexts };
}

export function heClaimsOf(rs: ResourceServerRecord): readonly string[] {
  // E1's column (`he_claims`); read structurally so a registry without it offers none.
  const claims = (rs as ResourceServerRecord & { heClaims?: unknown }).heClaims;
  return Array.isArray(claims) ? claims.filter((c): c is string => typeof c === 'string') : [];
}

export class HeTokenResolver {
  readonly #keys: JWTVerifyGetKey;

  constructor(private readonly deps: HeTokenDeps) {
    this.#keys = createLocalJWKSet(deps.publicKeys);
  }

  /** The live token behind `value`, or undefined (unknown, forged, revoked, expired, not a user's). */
  async resolve(value: string): Promise<HeToken | undefined> {
    if (!value || value.length > MAX_TOKEN_LENGTH || !COMPACT.test(value)) return undefined;
    const parts = value.split('.').length;
    let resolved: Omit<HeToken, 'accountId' | 'exp'> | undefined;
    if (parts === 5) resolved = await this.#sealed(value);
    else resolved = await this.#signed(value);
    if (!resolved) return undefined;
    const { found } = resolved;
    if (found.kind === 'RefreshToken' || typeof found.payload.accountId !== 'string' || typeof found.payload.exp !== 'number') return undefined;
    if (!(await isActive(found, this.deps.liveness, (jti) => this.deps.tokens.findByJti(jti)))) return undefined;
    return { ...resolved, accountId: found.payload.accountId, exp: found.payload.exp };
  }

  async #sealed(value: string): Promise<Omit<HeToken, 'accountId' | 'exp'> | undefined> {
    const found = await this.deps.tokens.find(value);
    if (!found || typeof found.payload.aud !== 'string') return undefined;
    const rs = await this.deps.resource(found.payload.aud);
    return { found, kid: undefined, ciphertexts: undefined, claims: rs ? heClaimsOf(rs) : [], form: 'sealed' };
  }

  async #signed(value: string): Promise<Omit<HeToken, 'accountId' | 'exp'> | undefined> {
    let typ: unknown;
    try {
      typ = decodeProtectedHeader(value).typ;
    } catch {
      return undefined;
    }
    if (typ !== COMPANION_TYP && typ !== 'at+jwt') return undefined;
    let payload;
    try {
      ({ payload } = await jwtVerify(value, this.#keys, { issuer: this.deps.issuer, typ, algorithms: this.deps.signingAlgs, requiredClaims: ['jti', 'exp'] }));
    } catch {
      return undefined;
    }
    const hec = hecOf(payload.hec);
    if (!hec || typeof payload.jti !== 'string') return undefined;
    const found = await this.deps.tokens.findByJti(payload.jti);
    if (!found) return undefined;
    return { found, kid: hec.kid, ciphertexts: hec.ciphertexts, claims: Object.keys(hec.ciphertexts), form: typ === COMPANION_TYP ? 'companion' : 'inner' };
  }
}
