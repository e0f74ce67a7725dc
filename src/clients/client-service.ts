/**
 * Client registration domain: turns an admin request into oidc-provider client metadata,
 * validates it with oidc-provider's own rules, and stores it. Secrets are generated here and
 * returned exactly once.
 */
import { randomBytes } from 'node:crypto';
import { errors, type ClientMetadata } from 'oidc-provider';
import type { ClientRepository } from '../store/clients.js';
import type { GrantRepository } from '../store/grants.js';
import type { InvalidationBus } from '../store/invalidation.js';
import { isLoopback } from '../config.js';
import { RESOURCE_SCOPES, resourceScopesOf, splitClientScopes, type ResourceScopes } from './api-scopes.js';
import { clientPolicyViolations } from './client-policy.js';
import { VeilError } from '../errors/veil-error.js';
import type { EventSink } from '../events/domain-events.js';
import { DEFAULT_AUTH_METHOD, isSecretAuthMethod, type TokenEndpointAuthMethod } from './auth-methods.js';
import { EXCHANGE_FROM, exchangeSources, TOKEN_EXCHANGE_GRANT_TYPE } from './token-exchange-policy.js';

export type { TokenEndpointAuthMethod };

export interface CreateClientInput {
  client_name: string;
  redirect_uris?: string[];
  post_logout_redirect_uris?: string[];
  grant_types?: string[];
  public?: boolean;
  /** OIDC scopes, and API scopes each registered by exactly one of the client's resources. */
  scope?: string;
  token_endpoint_auth_method?: TokenEndpointAuthMethod;
  jwks_uri?: string;
  jwks?: { keys: unknown[] };
  /** Resource servers (RFC 8707 identifiers) the client may request access tokens for. */
  resources?: string[];
  /** API scopes per resource (needed when two resources share a scope name); each named resource is allowed too. */
  resource_scopes?: ResourceScopes;
  /** Token exchange (RFC 8693): the registered audiences whose tokens the client may exchange. */
  exchange_from?: string[];
  /** RFC 9449 §5.2: every token request must carry a DPoP proof (tokens are always bound). */
  dpop_bound_access_tokens?: boolean;
  /** OpenID Connect Core §8: "pairwise" gives the client's sector a `sub` of its own in ID tokens and userinfo (set at creation only). */
  subject_type?: 'public' | 'pairwise';
}

/**
 * A change to an existing client: every field given replaces the client's; the others stay.
 * `scope` replaces the OIDC scopes and, unless `resource_scopes` is given too, the whole API
 * allow-list; `resources` drops the allow-list of every resource no longer listed.
 */
export interface UpdateClientInput {
  client_name?: string;
  redirect_uris?: string[];
  post_logout_redirect_uris?: string[];
  grant_types?: string[];
  scope?: string;
  resources?: string[];
  resource_scopes?: ResourceScopes;
  /** Replaces the list; without it, the list stays while the client keeps the token-exchange grant. */
  exchange_from?: string[];
  /** Require (true) or stop requiring (false) a DPoP proof with every token request. */
  dpop_bound_access_tokens?: boolean;
}

/** Client metadata naming the resource servers a client may ask tokens for (Veil's extension). */
export const ALLOWED_RESOURCES = 'allowed_resources';

export interface CreatedClient {
  client: PublicClient;
  client_secret?: string;
}

/** Client metadata as shown to admins: never the secret. */
export type PublicClient = ClientMetadata & {
  created_at: string;
  client_secret?: never;
  resource_scopes?: ResourceScopes;
  allowed_resources?: string[];
  exchange_from?: string[];
};

export class InvalidClientInput extends VeilError {
  constructor(message: string, code: 'invalid_input' | 'invalid_client_metadata' = 'invalid_input') {
    super(code, message);
  }
}

/** Validates metadata with oidc-provider's schema (throws errors.InvalidClientMetadata). */
export type ClientValidator = (metadata: ClientMetadata) => Promise<void>;

/** A resource server as the registry has it now (null: not registered). */
export type ResourceLookup = (identifier: string) => Promise<{ identifier: string; scopes: readonly string[] } | null>;

export interface ClientServiceOptions {
  /** NODE_ENV=production: http redirect URIs only on loopback (RFC 9700 §2.1). */
  production: boolean;
  /** The OIDC scopes oidc-provider knows (`scope` keeps only these). */
  oidcScopes: readonly string[];
}

/** What create and update both settle before the metadata is validated and stored. */
interface ClientShape {
  redirect_uris: string[];
  post_logout_redirect_uris: string[];
  grant_types: string[];
  scope: string | undefined;
  resources: string[];
  resource_scopes: ResourceScopes | undefined;
  /** The allow-list is the stored one: scopes its API no longer registers are dropped, not refused. */
  carriedOver?: boolean;
  exchange_from: string[];
  /** The stored `exchange_from`: audiences no longer registered are dropped, not refused. */
  exchangeFromCarriedOver?: boolean;
}

export class ClientService {
  constructor(
    private readonly clients: ClientRepository,
    private readonly grants: GrantRepository,
    private readonly validate: ClientValidator,
    private readonly findResource: ResourceLookup,
    private readonly bus: InvalidationBus,
    private readonly options: ClientServiceOptions,
    /** client.created / updated / deleted, after the change is stored. */
    private readonly events: EventSink,
  ) {}

  async create(input: CreateClientInput): Promise<CreatedClient> {
    const redirectUris = input.redirect_uris ?? [];
    const grantTypes = input.grant_types?.length ? [...new Set(input.grant_types)] : redirectUris.length ? ['authorization_code', 'refresh_token'] : ['client_credentials'];
    const authMethod: TokenEndpointAuthMethod = input.public ? 'none' : (input.token_endpoint_auth_method ?? DEFAULT_AUTH_METHOD);
    const clientSecret = isSecretAuthMethod(authMethod) ? randomBytes(32).toString('base64url') : undefined;

    const base: ClientMetadata = {
      client_id: clientIdFrom(randomBytes(16)),
      client_name: input.client_name,
      token_endpoint_auth_method: authMethod,
      ...(clientSecret ? { client_secret: clientSecret } : {}),
      ...(input.jwks_uri ? { jwks_uri: input.jwks_uri } : {}),
      ...(input.jwks ? { jwks: input.jwks as ClientMetadata['jwks'] } : {}),
      ...(input.dpop_bound_access_tokens ? { dpop_bound_access_tokens: true } : {}),
      ...(input.subject_type === 'pairwise' ? { subject_type: 'pairwise' } : {}),
    };
    const metadata = await this.#settle(base, {
      redirect_uris: redirectUris,
      post_logout_redirect_uris: input.post_logout_redirect_uris ?? [],
      grant_types: grantTypes,
      scope: input.scope,
      resources: input.resources ?? [],
      resource_scopes: input.resource_scopes,
      exchange_from: input.exchange_from ?? [],
    });
    const record = await this.clients.create(metadata);
    const client = toPublicClient(record.metadata, record.createdAt);
    await this.events.emit({ type: 'client.created', clientId: client.client_id, grantTypes: client.grant_types, authMethod: client.token_endpoint_auth_method });
    return { client, ...(clientSecret ? { client_secret: clientSecret } : {}) };
  }

  /**
   * Changes a client in place, validated exactly like a create; a refused update changes
   * nothing. Every process drops its cached copy, so the change applies to the next request
   * (grants stay: what a user consented to beyond the new allow-list is simply never issued).
   * Resolves to undefined when there is no such client.
   */
  async update(clientId: string, input: UpdateClientInput): Promise<PublicClient | undefined> {
    const current = await this.clients.findRecord(clientId);
    if (!current) return undefined;
    const existing = current.metadata as ClientMetadata & Record<string, unknown>;
    const resources = input.resources ?? (Array.isArray(existing[ALLOWED_RESOURCES]) ? (existing[ALLOWED_RESOURCES] as string[]) : []);
    let resourceScopes: ResourceScopes | undefined = input.resource_scopes;
    if (resourceScopes === undefined && input.scope === undefined) {
      // Unchanged allow-list, except for resources the update removes.
      resourceScopes = Object.fromEntries(Object.entries(resourceScopesOf(existing)).filter(([uri]) => resources.includes(uri)));
    }
    const grantTypes = input.grant_types?.length ? [...new Set(input.grant_types)] : [...(existing.grant_types ?? [])];
    const {
      [ALLOWED_RESOURCES]: _resources,
      [RESOURCE_SCOPES]: _resourceScopes,
      [EXCHANGE_FROM]: _exchangeFrom,
      scope: _scope,
      redirect_uris: _redirects,
      post_logout_redirect_uris: _postLogout,
      grant_types: _grants,
      response_types: _responses,
      dpop_bound_access_tokens: requireDpop,
      ...kept
    } = existing;
    // Kept unless the update says otherwise; stored only when on (false is oidc-provider's default).
    const dpop = input.dpop_bound_access_tokens ?? requireDpop === true;
    const metadata = await this.#settle(
      { ...kept, client_id: clientId, ...(input.client_name !== undefined ? { client_name: input.client_name } : {}), ...(dpop ? { dpop_bound_access_tokens: true } : {}) },
      {
        redirect_uris: input.redirect_uris ?? [...(existing.redirect_uris ?? [])],
        post_logout_redirect_uris: input.post_logout_redirect_uris ?? [...(existing.post_logout_redirect_uris ?? [])],
        grant_types: grantTypes,
        // Without a new `scope`, the OIDC scopes stay as they are.
        scope: input.scope ?? existing.scope,
        resources,
        resource_scopes: resourceScopes,
        carriedOver: input.resource_scopes === undefined && input.scope === undefined,
        // Taking the grant type away takes the list with it; otherwise it stays unless replaced.
        exchange_from: input.exchange_from ?? (grantTypes.includes(TOKEN_EXCHANGE_GRANT_TYPE) ? exchangeSources(existing) : []),
        exchangeFromCarriedOver: input.exchange_from === undefined,
      },
    );
    const record = await this.clients.update(clientId, metadata);
    if (!record) return undefined;
    await this.bus.publish('client', clientId);
    const client = toPublicClient(record.metadata, record.createdAt);
    await this.events.emit({
      type: 'client.updated',
      clientId,
      fields: Object.keys(input),
      scope: client.scope,
      resourceScopes: client.resource_scopes,
      grantTypes: client.grant_types,
    });
    return client;
  }

  /** Completes and checks the metadata: scopes split, resources known, policy, redirect rule, oidc-provider's schema. */
  async #settle(base: ClientMetadata, shape: ClientShape): Promise<ClientMetadata> {
    const resourceIds = [...new Set([...shape.resources, ...Object.keys(shape.resource_scopes ?? {})])];
    const resources: Array<{ identifier: string; scopes: readonly string[] }> = [];
    for (const identifier of resourceIds) {
      const found = await this.findResource(identifier);
      if (!found) throw new InvalidClientInput(`unknown resource server: ${identifier}`);
      resources.push(found);
    }
    let requested = shape.resource_scopes;
    if (shape.carriedOver && requested) {
      requested = Object.fromEntries(
        Object.entries(requested).map(([uri, scopes]) => [uri, scopes.filter((s) => resources.find((r) => r.identifier === uri)?.scopes.includes(s))]),
      );
    }
    // Throws ScopeInputError (`invalid_input`, a message fit for the admin).
    const split = splitClientScopes({ scope: shape.scope, resourceScopes: requested, resources, oidcScopes: this.options.oidcScopes });
    // A `scope` naming API scopes only still limits the OIDC scopes: to the narrowest set.
    const oidcScope = split.oidcScope ?? (shape.scope?.trim() ? 'openid' : undefined);
    const exchangeFrom = await this.#exchangeSources(shape);

    const metadata: ClientMetadata = {
      ...base,
      redirect_uris: shape.redirect_uris,
      post_logout_redirect_uris: shape.post_logout_redirect_uris,
      grant_types: shape.grant_types,
      response_types: shape.grant_types.includes('authorization_code') ? ['code'] : [],
      ...(oidcScope ? { scope: oidcScope } : {}),
      ...(resourceIds.length ? { [ALLOWED_RESOURCES]: resourceIds } : {}),
      ...(Object.keys(split.resourceScopes).length ? { [RESOURCE_SCOPES]: split.resourceScopes } : {}),
      ...(exchangeFrom.length ? { [EXCHANGE_FROM]: exchangeFrom } : {}),
    };
    const violation = clientPolicyViolations(metadata)[0];
    if (violation) throw new InvalidClientInput(violation.message);
    if (this.options.production) {
      const insecure = redirectUriViolation([...shape.redirect_uris, ...shape.post_logout_redirect_uris]);
      if (insecure) throw new InvalidClientInput(insecure);
    }
    try {
      await this.validate(metadata);
    } catch (err) {
      // oidc-provider's schema (and the jwks_uri check) refuse with its InvalidClientMetadata.
      if (err instanceof errors.InvalidClientMetadata) throw new InvalidClientInput(err.error_description ?? err.message, 'invalid_client_metadata');
      throw err;
    }
    return metadata;
  }

  /** `exchange_from`, each a registered resource server (a carried-over one no longer registered is dropped). */
  async #exchangeSources(shape: ClientShape): Promise<string[]> {
    const kept: string[] = [];
    for (const identifier of new Set(shape.exchange_from)) {
      if (await this.findResource(identifier)) kept.push(identifier);
      else if (!shape.exchangeFromCarriedOver) throw new InvalidClientInput(`${EXCHANGE_FROM} names an unknown resource server: ${identifier}`);
    }
    return kept;
  }

  async list(): Promise<PublicClient[]> {
    return (await this.clients.list()).map((r) => toPublicClient(r.metadata, r.createdAt));
  }

  /**
   * A deleted resource server leaves every client that named it (`allowed_resources`,
   * `resource_scopes` and `exchange_from`), so whoever registers the identifier later starts with no clients, and
   * updates of those clients do not trip over an unknown resource. Resolves to the client ids changed.
   */
  async forgetResource(identifier: string): Promise<string[]> {
    const changed: string[] = [];
    for (const record of await this.clients.list()) {
      const metadata = record.metadata as ClientMetadata & Record<string, unknown>;
      const allowed = Array.isArray(metadata[ALLOWED_RESOURCES]) ? (metadata[ALLOWED_RESOURCES] as string[]) : [];
      const scopes = resourceScopesOf(metadata);
      const sources = exchangeSources(metadata);
      if (!allowed.includes(identifier) && !Object.hasOwn(scopes, identifier) && !sources.includes(identifier)) continue;
      const { [ALLOWED_RESOURCES]: _allowed, [RESOURCE_SCOPES]: _scopes, [EXCHANGE_FROM]: _sources, ...rest } = metadata;
      const remaining = allowed.filter((r) => r !== identifier);
      const remainingScopes = Object.fromEntries(Object.entries(scopes).filter(([uri]) => uri !== identifier));
      const remainingSources = sources.filter((r) => r !== identifier);
      await this.clients.update(record.clientId, {
        ...rest,
        ...(remaining.length ? { [ALLOWED_RESOURCES]: remaining } : {}),
        ...(Object.keys(remainingScopes).length ? { [RESOURCE_SCOPES]: remainingScopes } : {}),
        ...(remainingSources.length ? { [EXCHANGE_FROM]: remainingSources } : {}),
      });
      await this.bus.publish('client', record.clientId);
      changed.push(record.clientId);
    }
    return changed;
  }

  /** Deleting a client also drops its consents; its tokens die with it (the client no longer resolves). */
  async delete(clientId: string): Promise<boolean> {
    const deleted = await this.clients.delete(clientId);
    if (deleted) {
      await this.grants.destroyForClient(clientId);
      await this.bus.publish('client', clientId);
      await this.events.emit({ type: 'client.deleted', clientId });
    }
    return deleted;
  }
}

/**
 * A client id from 128 random bits, base64url, never beginning with '-': the CLI (and most
 * command lines) would read `veil clients delete -x…` as an option.
 */
export function clientIdFrom(random: Buffer): string {
  const id = random.toString('base64url');
  return id.startsWith('-') ? `_${id.slice(1)}` : id;
}

/**
 * RFC 9700 §2.1: in production, redirect URIs use https (or a private-use scheme of a native
 * app); plain http only to the loopback interface, where the traffic never leaves the device.
 */
export function redirectUriViolation(uris: readonly string[]): string | undefined {
  for (const uri of uris) {
    const url = URL.parse(uri);
    if (url?.protocol !== 'http:') continue;
    if (!isLoopback(url.hostname.replace(/^\[(.*)\]$/, '$1'))) {
      return 'http redirect URIs are allowed only for loopback (127.0.0.1, [::1], localhost) in production: use https';
    }
  }
  return undefined;
}

export function toPublicClient(metadata: ClientMetadata, createdAt: Date): PublicClient {
  const { client_secret: _secret, ...rest } = metadata;
  return { ...(rest as ClientMetadata), created_at: createdAt.toISOString() } as PublicClient;
}

export type InvalidClientMetadata = InstanceType<typeof errors.InvalidClientMetadata>;
