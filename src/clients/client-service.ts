/**
 * Client registration domain: turns an admin request into oidc-provider client metadata,
 * validates it with oidc-provider's own rules, and stores it. Secrets are generated here and
 * returned exactly once.
 */
import { randomBytes } from 'node:crypto';
import type { ClientMetadata, errors } from 'oidc-provider';
import type { ClientRepository } from '../store/clients.js';
import type { GrantRepository } from '../store/grants.js';
import type { InvalidationBus } from '../store/invalidation.js';
import { clientPolicyViolations } from './client-policy.js';

export type TokenEndpointAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'none';

export interface CreateClientInput {
  client_name: string;
  redirect_uris?: string[];
  post_logout_redirect_uris?: string[];
  grant_types?: string[];
  public?: boolean;
  scope?: string;
  token_endpoint_auth_method?: TokenEndpointAuthMethod;
  jwks_uri?: string;
  jwks?: { keys: unknown[] };
  /** Resource servers (RFC 8707 identifiers) the client may request access tokens for. */
  resources?: string[];
}

/** Client metadata naming the resource servers a client may ask tokens for (Veil's extension). */
export const ALLOWED_RESOURCES = 'allowed_resources';

export interface CreatedClient {
  client: PublicClient;
  client_secret?: string;
}

/** Client metadata as shown to admins: never the secret. */
export type PublicClient = ClientMetadata & { created_at: string; client_secret?: never };

export class InvalidClientInput extends Error {
  override name = 'InvalidClientInput';
}

const SECRET_METHODS = new Set(['client_secret_basic', 'client_secret_post']);

/** Validates metadata with oidc-provider's schema (throws errors.InvalidClientMetadata). */
export type ClientValidator = (metadata: ClientMetadata) => Promise<void>;

export class ClientService {
  constructor(
    private readonly clients: ClientRepository,
    private readonly grants: GrantRepository,
    private readonly validate: ClientValidator,
    private readonly resourceExists: (identifier: string) => Promise<boolean>,
    private readonly bus: InvalidationBus,
  ) {}

  async create(input: CreateClientInput): Promise<CreatedClient> {
    const redirectUris = input.redirect_uris ?? [];
    const grantTypes = input.grant_types?.length
      ? [...new Set(input.grant_types)]
      : redirectUris.length
        ? ['authorization_code', 'refresh_token']
        : ['client_credentials'];
    const authMethod: TokenEndpointAuthMethod = input.public ? 'none' : (input.token_endpoint_auth_method ?? 'client_secret_basic');
    const clientSecret = SECRET_METHODS.has(authMethod) ? randomBytes(32).toString('base64url') : undefined;

    const metadata: ClientMetadata = {
      client_id: randomBytes(16).toString('base64url'),
      client_name: input.client_name,
      redirect_uris: redirectUris,
      post_logout_redirect_uris: input.post_logout_redirect_uris ?? [],
      grant_types: grantTypes,
      response_types: grantTypes.includes('authorization_code') ? ['code'] : [],
      token_endpoint_auth_method: authMethod,
      ...(input.scope ? { scope: input.scope } : {}),
      ...(clientSecret ? { client_secret: clientSecret } : {}),
      ...(input.jwks_uri ? { jwks_uri: input.jwks_uri } : {}),
      ...(input.jwks ? { jwks: input.jwks as ClientMetadata['jwks'] } : {}),
      ...(input.resources?.length ? { [ALLOWED_RESOURCES]: [...new Set(input.resources)] } : {}),
    };
    for (const resource of input.resources ?? []) {
      if (!(await this.resourceExists(resource))) throw new InvalidClientInput(`unknown resource server: ${resource}`);
    }
    const violation = clientPolicyViolations(metadata)[0];
    if (violation) throw new InvalidClientInput(violation.message);
    await this.validate(metadata);
    const record = await this.clients.create(metadata);
    return { client: toPublicClient(record.metadata, record.createdAt), ...(clientSecret ? { client_secret: clientSecret } : {}) };
  }

  async list(): Promise<PublicClient[]> {
    return (await this.clients.list()).map((r) => toPublicClient(r.metadata, r.createdAt));
  }

  /** Deleting a client also drops its consents; its tokens die with it (the client no longer resolves). */
  async delete(clientId: string): Promise<boolean> {
    const deleted = await this.clients.delete(clientId);
    if (deleted) {
      await this.grants.destroyForClient(clientId);
      await this.bus.publish('client', clientId);
    }
    return deleted;
  }
}

export function toPublicClient(metadata: ClientMetadata, createdAt: Date): PublicClient {
  const { client_secret: _secret, ...rest } = metadata;
  return { ...(rest as ClientMetadata), created_at: createdAt.toISOString() } as PublicClient;
}

export type InvalidClientMetadata = InstanceType<typeof errors.InvalidClientMetadata>;
