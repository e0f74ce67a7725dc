/**
 * Caller authentication for Veil's own token endpoints (introspection, revocation), which
 * replace oidc-provider's because those refuse structured tokens. oidc-provider's client
 * authentication is not exported, so this is a copy of its rules (lib/shared/client_auth.js,
 * jwt_client_auth.js), kept equal by one table of cases run against /token and these
 * endpoints (test/integration/client-auth-parity.test.ts):
 *   - one mechanism per request (Authorization header, client_secret, client_assertion), each
 *     parameter at most once, else invalid_request; a client_id that differs from the
 *     mechanism's, invalid_request;
 *   - client_secret_basic and client_secret_post are interchangeable for a client registered
 *     with either; the mechanism must otherwise match the registered method (invalid_client);
 *   - private_key_jwt: identified by `sub`, `iss` the client, `exp` and `jti` required, the
 *     shared audience rule (client-assertion-rules.ts), signature by jose, and the `jti` claimed
 *     through oidc-provider's own ReplayDetection, one atomic namespace with /token.
 * A resource server authenticates with its introspection credentials (Basic or post).
 */
import type { Context, Middleware } from 'koa';
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Client, Provider } from 'oidc-provider';
import { INTROSPECTION_CLIENT_PREFIX, type ResourceServerRegistry } from '../resource-registry/registry.js';
import type { ResourceServerRecord } from '../store/resource-servers.js';
import { MalformedBasicCredentials, parseBasicCredentials } from '../http/basic-auth.js';
import { formBody } from '../http/body.js';
import { VeilError } from '../errors/veil-error.js';
import { sendOAuthError } from './errors.js';
import { StoreUnavailableError } from '../store/errors.js';
import { assertionAudienceProblem, CLIENT_AUTH_SIGNING_ALGS, CLOCK_TOLERANCE_SECONDS } from './client-assertion-rules.js';
import { SECRET_AUTH_METHODS, TOKEN_ENDPOINT_AUTH_METHODS } from '../clients/auth-methods.js';

export const INTROSPECTION_PATH = '/token/introspection';
export const REVOCATION_PATH = '/token/revocation';
export { TOKEN_ENDPOINT_AUTH_METHODS };

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const SECRET_METHODS: string[] = [...SECRET_AUTH_METHODS];
const AUTH_PARAMS = ['client_id', 'client_secret', 'client_assertion', 'client_assertion_type'] as const;

export type Caller = { kind: 'client'; client: Client } | { kind: 'resource-server'; rs: ResourceServerRecord };

/** An OAuth error answered as JSON by the endpoint (RFC 6749 §5.2; rendered by oidc/errors.ts). */
export class EndpointError extends VeilError {
  constructor(status: number, error: 'invalid_client' | 'invalid_request', description: string) {
    super(error === 'invalid_client' ? 'unauthorized' : 'invalid_input', description, { status });
  }
}

/**
 * Why authentication failed stays here, as at /token (oidc-provider exposes only this text): an
 * unknown client id, a wrong secret and the wrong method must read the same to the caller.
 */
const invalidClient = (_why?: string) => new EndpointError(401, 'invalid_client', 'client authentication failed');
const invalidRequest = (why: string) => new EndpointError(400, 'invalid_request', why);

export interface CallerAuthDeps {
  issuer: string;
  provider: Provider;
  registry: ResourceServerRegistry;
  /** The key set behind a client's jwks_uri (an SSRF-safe fetcher in production wiring). */
  remoteKeySet?: ((uri: URL) => JWTVerifyGetKey) | undefined;
}

type AuthParams = Partial<Record<(typeof AUTH_PARAMS)[number], string>>;

/** The authentication parameters as oidc-provider reads them: empty means absent, twice is refused. */
function authParams(body: Record<string, unknown>): AuthParams {
  const params: AuthParams = {};
  const twice = AUTH_PARAMS.filter((name) => Array.isArray(body[name]));
  if (twice.length) throw invalidRequest(`${twice.join(', ')} must not be provided twice`);
  for (const name of AUTH_PARAMS) {
    const value = body[name];
    if (typeof value === 'string' && value) params[name] = value;
  }
  return params;
}

export class CallerAuthenticator {
  readonly #remoteKeys = new Map<string, JWTVerifyGetKey>();
  readonly #remoteKeySet: (uri: URL) => JWTVerifyGetKey;

  constructor(private readonly deps: CallerAuthDeps) {
    this.#remoteKeySet = deps.remoteKeySet ?? ((uri) => createRemoteJWKSet(uri, { timeoutDuration: 3000 }));
  }

  async authenticate(ctx: Context, body: Record<string, unknown>): Promise<Caller> {
    const params = authParams(body);
    const authorization = ctx.headers.authorization;
    if ([authorization, params.client_secret, params.client_assertion].filter(Boolean).length > 1) {
      throw invalidRequest('client authentication must only be provided using one mechanism');
    }
    let clientId = params.client_id;
    const setClientId = (value: string) => {
      if (clientId !== undefined && value !== clientId) throw invalidRequest('client_id mismatch');
      clientId = value;
    };

    let methods: string[];
    let secret: string | undefined;
    let assertion: { value: string; payload: JWTPayload } | undefined;
    if (params.client_secret) {
      secret = params.client_secret;
      methods = SECRET_METHODS;
    } else if (authorization !== undefined) {
      try {
        const basic = parseBasicCredentials(authorization)!;
        setClientId(basic.id);
        secret = basic.secret;
      } catch (err) {
        if (err instanceof MalformedBasicCredentials) throw invalidRequest(err.message);
        throw err;
      }
      methods = SECRET_METHODS;
    } else if (params.client_assertion !== undefined) {
      let payload: JWTPayload;
      try {
        payload = decodeJwt(params.client_assertion);
      } catch {
        throw invalidRequest('invalid client_assertion format');
      }
      if (!payload.sub) throw invalidClient('sub (JWT subject) must be provided in the client_assertion JWT');
      if (params.client_assertion_type === undefined) throw invalidRequest('client_assertion_type must be provided');
      if (params.client_assertion_type !== JWT_BEARER) throw invalidRequest(`client_assertion_type must have value ${JWT_BEARER}`);
      setClientId(payload.sub);
      assertion = { value: params.client_assertion, payload };
      methods = ['private_key_jwt'];
    } else {
      methods = ['none'];
    }
    const id: string | undefined = clientId;
    if (!id) throw invalidRequest('no client authentication mechanism provided');

    // Random client ids can start with the prefix too: only a matching resource server wins here.
    if (secret !== undefined && id.startsWith(INTROSPECTION_CLIENT_PREFIX)) {
      const rs = await this.deps.registry.authenticate(id, secret);
      if (rs) return { kind: 'resource-server', rs };
    }
    const client = await this.deps.provider.Client.find(id);
    if (!client) throw invalidClient('client not found');
    if (!methods.includes(client.clientAuthMethod ?? '')) {
      throw invalidClient('the provided authentication mechanism does not match the registered client authentication method');
    }
    if (secret !== undefined) {
      // Not in oidc-provider's types, but part of its Client (a secret past client_secret_expires_at).
      (client as unknown as { checkClientSecretExpiration(message: string): void }).checkClientSecretExpiration('could not authenticate the client - its client secret is expired');
      if (!client.clientSecret || !(await client.compareClientSecret(secret))) throw invalidClient('invalid secret provided');
    } else if (assertion) {
      await this.#verifyAssertion(client, assertion.value, assertion.payload);
    }
    return { kind: 'client', client };
  }

  /** jwt_client_auth.js's checks, in its order; the replay claim last, so a forgery burns no jti. */
  async #verifyAssertion(client: Client, value: string, payload: JWTPayload): Promise<void> {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(value).alg;
    } catch {
      throw invalidClient();
    }
    const algorithms: readonly string[] = client.clientAuthSigningAlg ? [client.clientAuthSigningAlg] : CLIENT_AUTH_SIGNING_ALGS;
    if (!alg || !algorithms.includes(alg)) throw invalidClient('alg mismatch');
    if (!payload.exp) throw invalidClient('expiration must be specified in the client_assertion JWT');
    if (!payload.jti) throw invalidClient('unique jti (JWT ID) must be provided in the client_assertion JWT');
    if (!payload.iss) throw invalidClient('iss (JWT issuer) must be provided in the client_assertion JWT');
    if (payload.iss !== client.clientId) throw invalidClient('iss (JWT issuer) must be the client_id');
    const audience = assertionAudienceProblem(this.deps.issuer, payload.aud);
    if (audience) throw invalidClient(audience);
    const keys = this.#clientKeys(client);
    if (!keys) throw invalidClient();
    try {
      // Signature, alg allow-list, exp/nbf with the shared tolerance, claim types.
      await jwtVerify(value, keys, { algorithms: [alg], clockTolerance: CLOCK_TOLERANCE_SECONDS });
    } catch (err) {
      if (err instanceof StoreUnavailableError) throw err;
      throw invalidClient();
    }
    // oidc-provider's own replay model, as /token uses it: one namespace, claimed atomically
    // by the storage adapter (adapter.ts ReplayDetectionAdapter).
    const unique = await this.deps.provider.ReplayDetection.unique(payload.iss, payload.jti, payload.exp + CLOCK_TOLERANCE_SECONDS);
    if (!unique) throw invalidClient('client assertion tokens must only be used once');
  }

  #clientKeys(client: Client): JWTVerifyGetKey | undefined {
    const metadata = client.metadata();
    if (metadata.jwks) return createLocalJWKSet(metadata.jwks as JSONWebKeySet);
    const uri = metadata.jwks_uri;
    if (typeof uri !== 'string') return undefined;
    let remote = this.#remoteKeys.get(uri);
    if (!remote) this.#remoteKeys.set(uri, (remote = this.#remoteKeySet(new URL(uri))));
    return remote;
  }
}

export interface TokenEndpointRequest {
  caller: Caller;
  /** The presented `token`. */
  value: string;
  hint: string | undefined;
}

/**
 * Serves one of Veil's token endpoints at `path`: POST with a form body only, caller
 * authenticated, `token` present; failures answered as OAuth JSON errors, never cached.
 */
export function tokenEndpoint(issuer: string, path: string, callers: CallerAuthenticator, handle: (ctx: Context, request: TokenEndpointRequest) => Promise<void>): Middleware {
  const parse = formBody('64kb');
  return async (ctx, next) => {
    if (ctx.path !== path) {
      await next();
      return;
    }
    ctx.set('Cache-Control', 'no-store');
    try {
      if (ctx.method !== 'POST') throw new EndpointError(405, 'invalid_request', 'use POST');
      if (!ctx.is('application/x-www-form-urlencoded')) throw new EndpointError(400, 'invalid_request', 'the body must be application/x-www-form-urlencoded');
      await parse(ctx, async () => {});
      const body = (ctx.request.body ?? {}) as Record<string, unknown>;
      const caller = await callers.authenticate(ctx, body);
      const value = body.token;
      if (typeof value !== 'string' || !value) throw new EndpointError(400, 'invalid_request', 'missing required parameter: token');
      await handle(ctx, { caller, value, hint: typeof body.token_type_hint === 'string' ? body.token_type_hint : undefined });
    } catch (err) {
      // OAuth JSON; a bug is logged (the app's error listener) and answered without details.
      sendOAuthError(ctx, err);
    }
  };
}
