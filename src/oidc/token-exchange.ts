/**
 * RFC 8693 token exchange at /token (`grant_type=urn:ietf:params:oauth:grant-type:token-exchange`):
 * a client that fronts an API (an API gateway) trades an access token issued for that API for
 * a new one for another API (an internal service), narrowed, no longer-lived, with the client
 * named as the actor (`act`, §4.1).
 *
 * Veil never decrypts the subject token: it finds the record through its index (a sealed JWE by
 * the hash of its value, the inner JWS verified against Veil's keys then by `jti`; opaque values,
 * i.e. refresh and userinfo-only tokens, are refused). The new token is issued as an
 * oidc-provider AccessToken and sealed to the target by the token edge like every other.
 *
 * Who may exchange what:
 *   the grant type in the client's `grant_types` (else unauthorized_client)
 *   the target (`resource`, exactly one) in its `allowed_resources` and registered (else invalid_target)
 *   the subject token live (introspection's rules) and for an audience in its `exchange_from` (else invalid_grant)
 *   scope within subject scope ∩ the client's allow-list for the target ∩ the target's scopes (else invalid_scope)
 * Error codes: RFC 8693 §2.2.2 names invalid_request for an unusable subject token and allows
 * others "as appropriate"; Veil answers invalid_grant (RFC 6749 §5.2: invalid, expired, revoked)
 * for a subject token that is unknown, dead or not the client's to exchange, so a gateway can
 * tell "the caller's token is no good" from "my request is wrong" (invalid_request).
 *
 * The new token is live only while its subject is (introspection.ts follows `EXCHANGED_FROM`):
 * revoking the subject token, ending its grant, deleting its client or disabling its user ends
 * it too. It is not put on the subject's grant list: that list keeps only the newest access
 * tokens of a grant and revokes older ones, and a gateway exchanging per request would push the
 * user's own tokens out of it.
 */
import type { Context, Middleware, Next } from 'koa';
import { errors, type Client, type KoaContextWithOIDC } from 'oidc-provider';
import { allowedApiScopes } from '../clients/api-scopes.js';
import { exchangeSources, TOKEN_EXCHANGE_GRANT_TYPE } from '../clients/token-exchange-policy.js';
import type { DomainEvent, EventSink } from '../events/domain-events.js';
import type { ResourceServerRegistry } from '../resource-registry/registry.js';
import type { ResourceServerRecord } from '../store/resource-servers.js';
import { toProtocolError } from './errors.js';
import { isActive, MAX_EXCHANGE_DEPTH, type Liveness } from './introspection.js';
import { allowedResources } from './resource-indicators.js';
import { inheritedOwners, STATUS_RECORD } from '../status-list/token-statuses.js';
import { ACTOR_CLAIM, actorDepth, actorOf, AUTHENTICATION_CLAIMS, EXCHANGED_FROM, subjectOf, type ActorClaim, type ExchangedFrom } from './token-claims.js';
import type { FoundToken, TokenLookup } from './token-lookup.js';

export { TOKEN_EXCHANGE_GRANT_TYPE };

/** RFC 8693 §3: the only token type Veil takes as a subject and issues. */
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** The request parameters of the grant (RFC 8693 §2.1); every other one is dropped by oidc-provider. */
export const TOKEN_EXCHANGE_PARAMETERS = ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'requested_token_type', 'audience', 'resource', 'scope'];

/** RFC 8693 lets these repeat; more than one is refused here with a clear error instead of oidc-provider's generic one. */
export const TOKEN_EXCHANGE_REPEATABLE = ['resource', 'audience'];

export interface TokenExchangeDeps {
  registry: Pick<ResourceServerRegistry, 'find'>;
  /** The look-up for the current signing keys (inner JWSs are verified with them). */
  tokens: Pick<TokenLookup, 'find' | 'findByJti'>;
  liveness: Liveness;
}

interface ExchangeParams {
  subject_token?: unknown;
  subject_token_type?: unknown;
  actor_token?: unknown;
  actor_token_type?: unknown;
  requested_token_type?: unknown;
  audience?: unknown;
  resource?: unknown;
  scope?: unknown;
}

/** The access-token model as this grant builds it (oidc-provider's typings want fields it does not need). */
interface ExchangedModel {
  jti: string;
  iat: number;
  exp?: number | undefined;
  extra?: Record<string, unknown> | undefined;
  save(): Promise<string>;
}

const invalidGrant = (description: string) => Object.assign(new errors.InvalidGrant(), { error_description: description });
const SUBJECT_NOT_LIVE = 'subject_token is invalid, expired or revoked';

/** The exchanges answered so far, by request: the event goes out once the token edge has sealed the token. */
const exchanged = new WeakMap<object, DomainEvent>();

function checkParameters(params: ExchangeParams): void {
  if (params.actor_token !== undefined || params.actor_token_type !== undefined) {
    throw new errors.InvalidRequest('actor_token is not supported: the authenticated client is the actor');
  }
  if (params.audience !== undefined) throw new errors.InvalidRequest('audience is not supported: name the target API with the resource parameter');
  if (params.subject_token === undefined || params.subject_token === '') throw new errors.InvalidRequest("missing required parameter 'subject_token'");
  if (params.subject_token_type === undefined) throw new errors.InvalidRequest("missing required parameter 'subject_token_type'");
  if (params.subject_token_type !== ACCESS_TOKEN_TYPE) throw new errors.InvalidRequest(`subject_token_type must be ${ACCESS_TOKEN_TYPE}`);
  if (params.requested_token_type !== undefined && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest(`requested_token_type must be ${ACCESS_TOKEN_TYPE} (the only type issued)`);
  }
}

/** RFC 8707 §2: the one API the new token is for; invalid_target for none, several, unknown or not this client's. */
async function targetOf(params: ExchangeParams, client: Client, registry: TokenExchangeDeps['registry']): Promise<ResourceServerRecord> {
  const named = [params.resource ?? []].flat();
  if (named.length === 0 || named[0] === '') throw new errors.InvalidTarget('resource is required: name the one API the new token is for');
  if (named.length > 1) throw new errors.InvalidTarget('only a single resource indicator value must be requested');
  const resource = named[0];
  // One answer for "no such resource" and "not for this client": no probing the registry.
  const notForYou = () => new errors.InvalidTarget('the resource is unknown or not allowed for this client');
  if (typeof resource !== 'string' || !allowedResources(client).includes(resource)) throw notForYou();
  const record = await registry.find(resource);
  if (!record) throw notForYou();
  return record;
}

/** The subject token's record, live and this client's to exchange; invalid_request / invalid_grant otherwise. */
async function subjectOfRequest(value: string, client: Client, deps: TokenExchangeDeps): Promise<FoundToken & { payload: { aud: string; exp: number } }> {
  // What Veil issues for an API is a JWE (or, decrypted, its inner JWS); one part is an opaque
  // refresh token or userinfo-only access token, which no API ever received.
  const parts = value.split('.').length;
  if (parts !== 5 && parts !== 3) {
    throw new errors.InvalidRequest('subject_token must be an access token issued for an API (refresh tokens and userinfo-only tokens cannot be exchanged)');
  }
  const subject = await deps.tokens.find(value);
  if (!subject || subject.kind === 'RefreshToken' || typeof subject.payload.aud !== 'string') throw invalidGrant(SUBJECT_NOT_LIVE);
  // The audience first: whether a token for an API this client does not front is still live is none of its business.
  if (!exchangeSources(client.metadata()).includes(subject.payload.aud)) {
    throw invalidGrant('subject_token was issued for an audience this client may not exchange from (its exchange_from)');
  }
  if (!(await isActive(subject, deps.liveness, (jti) => deps.tokens.findByJti(jti)))) throw invalidGrant(SUBJECT_NOT_LIVE);
  // A bound token is good only with its key's proof; exchanging it would make a bearer token of it.
  if (subject.payload.jkt || subject.payload['x5t#S256']) throw new errors.InvalidRequest('sender-constrained (DPoP or mTLS) subject tokens cannot be exchanged');
  if (actorDepth(actorOf(subject.payload)) >= MAX_EXCHANGE_DEPTH) {
    throw new errors.InvalidRequest(`subject_token was already exchanged ${MAX_EXCHANGE_DEPTH} times in a row; it cannot be exchanged again`);
  }
  return subject as FoundToken & { payload: { aud: string; exp: number } };
}

/** The scopes of the new token: those asked (each within the intersection), or the whole intersection. */
function scopesFor(params: ExchangeParams, subject: FoundToken, client: Client, target: ResourceServerRecord): string[] {
  const held = new Set(String(subject.payload.scope ?? '').split(' '));
  const available = allowedApiScopes(client.metadata(), target).filter((s) => held.has(s));
  const asked = typeof params.scope === 'string' ? [...new Set(params.scope.split(' ').filter(Boolean))] : [];
  const beyond = asked.filter((s) => !available.includes(s));
  if (beyond.length)
    throw new errors.InvalidScope("requested scope is beyond the subject token's scope, this client's allow-list for the resource, or the resource's scopes", beyond.join(' '));
  const scopes = asked.length ? available.filter((s) => asked.includes(s)) : available;
  if (!scopes.length) {
    const none = "no scope is left: the subject token's scope, this client's allow-list for the resource and the resource's scopes have none in common";
    throw new errors.InvalidScope(none, undefined as unknown as string); // no scope to name
  }
  return scopes;
}

/** The grant handler for `registerGrantType`. */
export function tokenExchangeGrant(deps: TokenExchangeDeps): (ctx: KoaContextWithOIDC) => Promise<void> {
  return async (ctx) => {
    const params = ctx.oidc.params as ExchangeParams;
    const client = ctx.oidc.client!;
    checkParameters(params);
    // The exchanged token is issued unbound: a DPoP proof (or a client that must send one) would be ignored, so it is refused.
    if (ctx.get('dpop') || client.dpopBoundAccessTokens) throw new errors.InvalidRequest('DPoP is not supported with token exchange: exchanged tokens are bearer tokens');
    try {
      const target = await targetOf(params, client, deps.registry);
      const subject = await subjectOfRequest(String(params.subject_token), client, deps);
      const scope = scopesFor(params, subject, client, target).join(' ');

      const now = Math.floor(Date.now() / 1000);
      // No longer than the target's own tokens live, and not past the subject token.
      const lifetime = Math.min(target.accessTokenTtl, subject.payload.exp - now);
      if (lifetime <= 0) throw invalidGrant(SUBJECT_NOT_LIVE);

      const source: ExchangedFrom = {
        jti: subject.id,
        sub: String(subjectOf(subject.payload)),
        client_id: String(subject.payload.clientId),
        aud: subject.payload.aud,
        ...(typeof subject.payload.grantId === 'string' ? { grant_id: subject.payload.grantId } : {}),
      };
      const priorActor = actorOf(subject.payload);
      const act: ActorClaim = priorActor ? { sub: client.clientId, act: priorActor } : { sub: client.clientId };
      // The authentication event carries over; user claims do not (no consent covers the target for them).
      const subjectExtra = (subject.payload.extra ?? {}) as Record<string, unknown>;
      const extra: Record<string, unknown> = { [ACTOR_CLAIM]: act, [EXCHANGED_FROM]: source };
      for (const name of AUTHENTICATION_CLAIMS) if (subjectExtra[name] !== undefined) extra[name] = subjectExtra[name];
      // Its status-list entry follows the subject's grant, client and user, and the subject itself (token-status.ts).
      extra[STATUS_RECORD] = { owners: inheritedOwners(subject) };

      const { AccessToken, ResourceServer } = ctx.oidc.provider;
      const token = new AccessToken({
        client,
        accountId: subject.payload.accountId,
        gty: TOKEN_EXCHANGE_GRANT_TYPE,
        scope,
        resourceServer: new ResourceServer(target.identifier, { audience: target.identifier, scope, accessTokenTTL: lifetime, accessTokenFormat: 'opaque' }),
        expiresIn: lifetime,
      } as unknown as ConstructorParameters<typeof AccessToken>[0]) as unknown as ExchangedModel;
      // Stamped now, so the sealed token and the stored record carry the same times (token-edge.ts).
      token.iat = now;
      token.exp = now + lifetime;
      token.extra = extra;
      ctx.oidc.entity('AccessToken', token);
      const id = await token.save();

      exchanged.set(ctx, {
        type: 'token.exchanged',
        clientId: client.clientId,
        accountId: typeof subject.payload.accountId === 'string' ? subject.payload.accountId : undefined,
        subjectClientId: source.client_id,
        grantId: source.grant_id,
        subjectAudience: source.aud,
        audience: target.identifier,
        scope,
      });
      // The bare id: the token edge seals it, indexes it and puts the sealed value here.
      ctx.body = { access_token: id, issued_token_type: ACCESS_TOKEN_TYPE, token_type: 'Bearer', expires_in: lifetime, scope };
    } catch (err) {
      throw toProtocolError(err);
    }
  };
}

/**
 * Mounted outside the token edge. After an exchange was answered and sealed: the domain event.
 * For a client without the grant type, oidc-provider answers `invalid_request`; RFC 6749 §5.2
 * (and RFC 8693 through it) calls that `unauthorized_client`.
 */
export function tokenExchangeOutcome(events: EventSink): Middleware {
  return async (ctx: Context, next: Next) => {
    await next();
    const oidc = (ctx as unknown as KoaContextWithOIDC).oidc;
    if (oidc?.route !== 'token' || oidc.params?.grant_type !== TOKEN_EXCHANGE_GRANT_TYPE) return;
    const event = exchanged.get(ctx);
    if (ctx.status === 200 && event) {
      await events.emit(event);
      return;
    }
    const body = ctx.body as { error?: unknown } | undefined;
    if (ctx.status === 400 && body?.error === 'invalid_request' && oidc.client && !oidc.client.grantTypeAllowed(TOKEN_EXCHANGE_GRANT_TYPE)) {
      ctx.body = { error: 'unauthorized_client', error_description: 'this client is not allowed to use token exchange' };
    }
  };
}
