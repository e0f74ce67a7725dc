/**
 * The admin API's wire contract (docs/ADMIN_API.md): request schemas the server validates
 * with, and the response shapes. The CLI imports these types, so server and client cannot
 * drift apart.
 */
import { z } from 'zod';
import type { PublicAccount } from '../accounts/account-service.js';
import type { CreateClientInput, CreatedClient as CreatedClientResult, PublicClient } from '../clients/client-service.js';
import type { ResourceServerRecord } from '../store/resource-servers.js';

const absoluteUri = z.string().refine((v) => {
  const url = URL.parse(v);
  return url !== null && !url.hash && (url.protocol === 'https:' || url.protocol === 'http:' || url.protocol === 'urn:');
}, 'must be an absolute URI without a fragment');

export const createUserBody = z.object({
  email: z.string().max(320),
  password: z.string(),
  name: z.string().max(200).optional(),
  email_verified: z.boolean().optional(),
});

export const emailBody = z.object({ email: z.string().max(320) });

export const createClientBody = z.object({
  client_name: z.string().min(1).max(200),
  redirect_uris: z.array(z.string()).max(50).optional(),
  post_logout_redirect_uris: z.array(z.string()).max(50).optional(),
  grant_types: z.array(z.enum(['authorization_code', 'refresh_token', 'client_credentials'])).optional(),
  public: z.boolean().optional(),
  scope: z.string().max(1000).optional(),
  token_endpoint_auth_method: z.enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none']).optional(),
  jwks_uri: z.string().optional(),
  jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }).optional(),
}) satisfies z.ZodType<CreateClientInput>;

export const createResourceBody = z.object({
  identifier: absoluteUri,
  name: z.string().min(1).max(200),
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'scope tokens must be RFC 6749 scope tokens')).max(100),
  access_token_ttl: z.number().int().positive().max(86400).optional(),
});

export type CreateUserBody = z.infer<typeof createUserBody>;
export type CreateClientBody = z.infer<typeof createClientBody>;
export type CreateResourceBody = z.infer<typeof createResourceBody>;

/** What a thin client may send before the server validates it (enums as plain strings). */
export type CreateClientRequest = Omit<CreateClientBody, 'grant_types' | 'token_endpoint_auth_method' | 'jwks'> & {
  grant_types?: string[];
  token_endpoint_auth_method?: string;
  jwks?: unknown;
};

export type User = PublicAccount;
export type Client = PublicClient;
export type CreatedClient = CreatedClientResult;
export interface Resource {
  identifier: string;
  name: string;
  scopes: string[];
  access_token_ttl: number;
}

export function toPublicResource(r: ResourceServerRecord): Resource {
  return { identifier: r.identifier, name: r.name, scopes: r.scopes, access_token_ttl: r.accessTokenTtl };
}

/** Every error body: `{ error, error_description }`. */
export interface ErrorBody {
  error: string;
  error_description: string;
}
