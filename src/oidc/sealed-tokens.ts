/**
 * Sealed access tokens (the heart of Veil). oidc-provider issues every access token in its
 * opaque format, whose id becomes the token's `jti`; when the token is for a resource server,
 * the storage adapter seals it (RFC 9068 claims, signed by Veil, then encrypted to that
 * resource server's key) in the same step that stores its record and the index by the sealed
 * value's hash. The token endpoint then hands the client the sealed value instead of the id.
 *
 *   upsert(AccessToken | ClientCredentials, jti, payload)          src/oidc/adapter.ts
 *     -> claims -> sign (Veil's key) -> encrypt (the RS's key)       src/crypto/sealer.ts
 *     -> Redis: record by jti + index by sha256(sealed value)        one atomic write
 *   POST /token response: access_token = jti  ->  the sealed value  sealedTokenResponse()
 */
import { createHash } from 'node:crypto';
import type { Middleware } from 'koa';
import Provider, { errors, type AdapterPayload } from 'oidc-provider';
import { sealAccessToken, type SigningKey } from '../crypto/sealer.js';
import { EncryptionKeyError, type EncryptionKeys } from '../resource-registry/encryption-keys.js';
import type { ResourceServerRegistry } from '../resource-registry/registry.js';
import type { ResourceServerRecord } from '../store/resource-servers.js';
import { ServiceUnavailable } from './errors.js';

/** Claims about the authentication event, kept with the token record (no personal data). */
const AUTHENTICATION_CLAIMS = ['auth_time', 'acr', 'amr'] as const;

/** How Veil finds a sealed token it cannot decrypt: by the hash of the value. */
export function sealedTokenHash(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}

export interface SealingDeps {
  issuer: string;
  signer: SigningKey;
  registry: ResourceServerRegistry;
  keys: EncryptionKeys;
}

export interface SealedToken {
  value: string;
  hash: string;
  /** The payload to store: the user claims the token carries are not kept at rest. */
  stored: AdapterPayload;
}

/** RFC 9068 claims of the access token, and nothing else. */
export function accessTokenClaims(issuer: string, jti: string, payload: AdapterPayload, rs: ResourceServerRecord): Record<string, unknown> {
  const extra = (payload.extra ?? {}) as Record<string, unknown>;
  const claims: Record<string, unknown> = {
    iss: issuer,
    // RFC 9068 §2.2: with no resource owner (client credentials), the subject is the client.
    sub: payload.accountId ?? payload.clientId,
    aud: payload.aud,
    client_id: payload.clientId,
    iat: payload.iat,
    exp: payload.exp,
    jti,
  };
  if (payload.scope) claims.scope = payload.scope;
  for (const name of AUTHENTICATION_CLAIMS) if (extra[name] !== undefined) claims[name] = extra[name];
  for (const name of rs.claims) if (extra[name] !== undefined) claims[name] = extra[name];
  if (payload.jkt) claims.cnf = { jkt: payload.jkt };
  else if (payload['x5t#S256']) claims.cnf = { 'x5t#S256': payload['x5t#S256'] };
  return claims;
}

export class Sealer {
  constructor(private readonly deps: SealingDeps) {}

  /** Seals the access token stored under `jti`, or returns undefined for a token without an audience. */
  async seal(jti: string, payload: AdapterPayload): Promise<SealedToken | undefined> {
    if (typeof payload.aud !== 'string') return undefined;
    const rs = await this.deps.registry.find(payload.aud);
    if (!rs) throw new errors.InvalidTarget('the resource server no longer exists');
    let key;
    try {
      key = await this.deps.keys.forResourceServer(rs);
    } catch (err) {
      if (err instanceof EncryptionKeyError) throw new ResourceKeyUnavailable();
      throw err;
    }
    const value = sealAccessToken(accessTokenClaims(this.deps.issuer, jti, payload, rs), this.deps.signer, key);
    return { value, hash: sealedTokenHash(value), stored: withoutUserClaims(payload) };
  }
}

function withoutUserClaims(payload: AdapterPayload): AdapterPayload {
  if (!payload.extra) return payload;
  const extra = payload.extra as Record<string, unknown>;
  const kept = Object.fromEntries(AUTHENTICATION_CLAIMS.filter((n) => extra[n] !== undefined).map((n) => [n, extra[n]]));
  return { ...payload, extra: kept };
}

/** 503: the resource server's key cannot be had right now (its jwks_uri is down, say). */
export class ResourceKeyUnavailable extends ServiceUnavailable {
  constructor() {
    super();
    this.error_description = 'the resource server\'s encryption key is unavailable, try again shortly';
  }
}

// Sealed values wait here, per request, between the adapter and the token response.
const pending = new WeakMap<object, Map<string, string>>();

/** Called by the adapter inside oidc-provider's request: remembers the sealed value for the response. */
export function rememberSealed(jti: string, value: string): void {
  const ctx = Provider.ctx;
  if (!ctx) throw new Error('a sealed access token was issued outside of a request');
  let forRequest = pending.get(ctx);
  if (!forRequest) pending.set(ctx, (forRequest = new Map()));
  forRequest.set(jti, value);
}

/** Around the token endpoint: swaps the id oidc-provider put in `access_token` for the sealed value. */
export function sealedTokenResponse(tokenPath: string): Middleware {
  return async (ctx, next) => {
    if (ctx.method !== 'POST' || ctx.path !== tokenPath) return next();
    await next();
    const body = ctx.body as { access_token?: unknown } | undefined;
    const issued = pending.get(ctx);
    if (!issued || !body || typeof body !== 'object' || typeof body.access_token !== 'string') return;
    const sealed = issued.get(body.access_token);
    if (sealed) body.access_token = sealed;
  };
}
