/**
 * Caller authentication for Veil's own token endpoints (introspection, revocation), which
 * replace oidc-provider's because those refuse structured tokens. Two kinds of caller:
 *   - a resource server, with the introspection credentials it got when it was registered;
 *   - an OAuth client, by its registered method: client_secret_basic, client_secret_post,
 *     private_key_jwt (verified with jose, replay-checked) or none (public clients, own tokens only).
 */
import type { Context, Middleware } from 'koa';
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { Client, Provider } from 'oidc-provider';
import { INTROSPECTION_CLIENT_PREFIX, type ResourceServerRegistry } from '../resource-servers/registry.js';
import type { ResourceServerRecord } from '../store/resource-servers.js';
import { parseBasicCredentials } from '../http/basic-auth.js';
import { BadRequestBody, formBody } from '../http/body.js';
import { StoreUnavailableError } from '../store/errors.js';
import type { ShortLivedStore } from '../store/short-lived-store.js';

export const INTROSPECTION_PATH = '/token/introspection';
export const REVOCATION_PATH = '/token/revocation';
export const TOKEN_ENDPOINT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'];

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const ASSERTION_ALGS = ['RS256', 'PS256', 'ES256', 'ES384', 'ES512', 'EdDSA'];

export type Caller = { kind: 'client'; client: Client } | { kind: 'resource-server'; rs: ResourceServerRecord };

/** An OAuth error answered as JSON by the endpoint (RFC 6749 §5.2). */
export class EndpointError extends Error {
  constructor(readonly status: number, readonly error: string, description: string) {
    super(description);
  }
}

const invalidClient = () => new EndpointError(401, 'invalid_client', 'client authentication failed');

export interface CallerAuthDeps {
  issuer: string;
  provider: Provider;
  registry: ResourceServerRegistry;
  store: ShortLivedStore;
}

function basicCredentials(header: string | undefined): { id: string; secret: string } | undefined {
  try {
    return parseBasicCredentials(header);
  } catch (err) {
    throw new EndpointError(400, 'invalid_request', (err as Error).message);
  }
}

export class CallerAuthenticator {
  readonly #remoteKeys = new Map<string, JWTVerifyGetKey>();

  constructor(private readonly deps: CallerAuthDeps) {}

  async authenticate(ctx: Context, body: Record<string, unknown>, endpointUrl: string): Promise<Caller> {
    const str = (name: string) => (typeof body[name] === 'string' ? (body[name] as string) : undefined);
    const basic = basicCredentials(ctx.get('authorization') || undefined);
    const postSecret = str('client_secret');
    const assertion = str('client_assertion');
    const methods = [basic, postSecret, assertion].filter((m) => m !== undefined).length;
    if (methods > 1) throw new EndpointError(400, 'invalid_request', 'client authentication must use only one method');

    if (basic) {
      if (str('client_id') !== undefined && str('client_id') !== basic.id) throw new EndpointError(400, 'invalid_request', 'client_id mismatch');
      return this.#bySecret(basic.id, basic.secret, 'client_secret_basic');
    }
    const clientId = str('client_id');
    if (postSecret !== undefined) {
      if (!clientId) throw new EndpointError(400, 'invalid_request', 'client_id is missing');
      return this.#bySecret(clientId, postSecret, 'client_secret_post');
    }
    if (assertion !== undefined) {
      if (str('client_assertion_type') !== JWT_BEARER) throw new EndpointError(400, 'invalid_request', 'unsupported client_assertion_type');
      return this.#byAssertion(assertion, clientId, endpointUrl);
    }
    if (!clientId) throw new EndpointError(401, 'invalid_client', 'client authentication is required');
    const client = await this.deps.provider.Client.find(clientId);
    if (!client || client.clientAuthMethod !== 'none') throw invalidClient();
    return { kind: 'client', client };
  }

  async #bySecret(id: string, secret: string, method: string): Promise<Caller> {
    // Random client ids can start with the prefix too: only a matching resource server wins here.
    if (id.startsWith(INTROSPECTION_CLIENT_PREFIX)) {
      const rs = await this.deps.registry.authenticate(id, secret);
      if (rs) return { kind: 'resource-server', rs };
    }
    const client = await this.deps.provider.Client.find(id);
    if (!client || client.clientAuthMethod !== method || !client.clientSecret) throw invalidClient();
    if (!(await client.compareClientSecret(secret))) throw invalidClient();
    return { kind: 'client', client };
  }

  async #byAssertion(assertion: string, clientIdParam: string | undefined, endpointUrl: string): Promise<Caller> {
    let clientId: string | undefined;
    try {
      const [, payloadPart] = assertion.split('.');
      clientId = JSON.parse(Buffer.from(payloadPart ?? '', 'base64url').toString('utf8')).iss;
    } catch {
      throw invalidClient();
    }
    if (typeof clientId !== 'string' || (clientIdParam !== undefined && clientIdParam !== clientId)) throw invalidClient();
    const client = await this.deps.provider.Client.find(clientId);
    if (!client || client.clientAuthMethod !== 'private_key_jwt') throw invalidClient();
    const keys = this.#clientKeys(client);
    if (!keys) throw invalidClient();
    let payload;
    try {
      // jose checks the signature, alg allow-list, iss, sub, aud and exp; we add the replay check.
      ({ payload } = await jwtVerify(assertion, keys, {
        issuer: clientId,
        subject: clientId,
        audience: [this.deps.issuer, `${this.deps.issuer}/token`, endpointUrl],
        algorithms: ASSERTION_ALGS,
        requiredClaims: ['exp', 'jti'],
        maxTokenAge: '10m',
      }));
    } catch {
      throw invalidClient();
    }
    const ttl = payload.exp! - Math.floor(Date.now() / 1000);
    if (!(await this.deps.store.claimOnce(`assertion:${clientId}:${payload.jti}`, Math.max(ttl, 1)))) throw invalidClient();
    return { kind: 'client', client };
  }

  #clientKeys(client: Client): JWTVerifyGetKey | undefined {
    const metadata = client.metadata();
    if (metadata.jwks) return createLocalJWKSet(metadata.jwks as JSONWebKeySet);
    const uri = metadata.jwks_uri;
    if (typeof uri !== 'string') return undefined;
    let remote = this.#remoteKeys.get(uri);
    if (!remote) this.#remoteKeys.set(uri, (remote = createRemoteJWKSet(new URL(uri), { timeoutDuration: 3000 })));
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
export function tokenEndpoint(
  issuer: string,
  path: string,
  callers: CallerAuthenticator,
  handle: (ctx: Context, request: TokenEndpointRequest) => Promise<void>,
): Middleware {
  const parse = formBody('64kb');
  const endpointUrl = `${issuer}${path}`;
  return async (ctx, next) => {
    if (ctx.path !== path) return next();
    ctx.set('Cache-Control', 'no-store');
    try {
      if (ctx.method !== 'POST') throw new EndpointError(405, 'invalid_request', 'use POST');
      if (!ctx.is('application/x-www-form-urlencoded')) throw new EndpointError(400, 'invalid_request', 'the body must be application/x-www-form-urlencoded');
      await parse(ctx, async () => {});
      const body = (ctx.request.body ?? {}) as Record<string, unknown>;
      const caller = await callers.authenticate(ctx, body, endpointUrl);
      const value = body.token;
      if (typeof value !== 'string' || !value) throw new EndpointError(400, 'invalid_request', 'missing required parameter: token');
      await handle(ctx, { caller, value, hint: typeof body.token_type_hint === 'string' ? body.token_type_hint : undefined });
    } catch (err) {
      if (err instanceof BadRequestBody) return sendEndpointError(ctx, new EndpointError(err.status === 413 ? 413 : 400, 'invalid_request', err.message));
      let answer: EndpointError;
      try {
        answer = toEndpointError(err);
      } catch {
        // A bug, not the caller's doing: logged (through the app's error listener), answered in
        // the protocol's format without details.
        ctx.app.emit('error', err, ctx);
        answer = new EndpointError(500, 'server_error', 'an unexpected error occurred');
      }
      sendEndpointError(ctx, answer);
    }
  };
}

/** The one place a failure at these endpoints becomes an OAuth error; anything else is a bug and rethrown. */
export function toEndpointError(err: unknown): EndpointError {
  if (err instanceof EndpointError) return err;
  if (err instanceof StoreUnavailableError) return new EndpointError(503, 'temporarily_unavailable', 'the service is temporarily unavailable, try again shortly');
  const status = (err as { statusCode?: number; status?: number }).statusCode ?? (err as { status?: number }).status;
  const oauth = err as { error?: string; error_description?: string; expose?: boolean };
  // oidc-provider's own errors (from Client.find, say) carry their OAuth code.
  if (oauth.expose && typeof oauth.error === 'string' && status && status < 500) {
    return new EndpointError(status, oauth.error, oauth.error_description ?? oauth.error);
  }
  throw err;
}

/** Writes an endpoint error in the OAuth JSON format. */
export function sendEndpointError(ctx: Context, err: EndpointError): void {
  ctx.status = err.status;
  ctx.set('Cache-Control', 'no-store');
  if (err.status === 401) ctx.set('WWW-Authenticate', 'Basic realm="veil"');
  ctx.body = { error: err.error, error_description: err.message };
}
