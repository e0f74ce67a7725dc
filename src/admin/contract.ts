/**
 * The admin API's wire contract (docs/ADMIN_API.md): request schemas the server validates
 * with, and the response shapes. The CLI imports these types, so server and client cannot
 * drift apart.
 */
import { z } from 'zod';
import type { PublicAccount } from '../accounts/account-service.js';
import type { CreateClientInput, CreatedClient as CreatedClientResult, PublicClient, UpdateClientInput } from '../clients/client-service.js';
import { SUBJECT_MODES, type ResourceServerRecord, type SubjectMode } from '../store/resource-servers.js';
import type { AuditEventRecord } from '../store/audit-events.js';
import { isAuditTypeFilter } from '../audit/event-types.js';
import type { RingKey } from '../crypto/key-ring.js';
import { TOKEN_ENDPOINT_AUTH_METHODS } from '../clients/auth-methods.js';
import { TOKEN_EXCHANGE_GRANT_TYPE } from '../clients/token-exchange-policy.js';
import { MAX_RESOURCE_ACCESS_TOKEN_TTL } from '../config.js';

const absoluteUri = z.string().refine((v) => {
  const url = URL.parse(v);
  return url !== null && !url.hash && (url.protocol === 'https:' || url.protocol === 'http:' || url.protocol === 'urn:');
}, 'must be an absolute URI without a fragment');

export const createUserBody = z.object({
  email: z.string().max(320),
  password: z.string(),
  name: z.string().max(200).optional(),
  email_verified: z.boolean().optional(),
  /** Account attributes (src/accounts/attribute-catalogue.ts): name → integer or decimal string. */
  attributes: z.record(z.string().max(64), attributeValue()).optional(),
});

/** An attribute's value on the wire: a JSON integer or a decimal string (checked by the account service). */
function attributeValue() {
  return z.union([z.number(), z.string().max(64)], { error: 'must be an integer' });
}

/** `PUT /admin/users/:id/attributes/:name`. */
export const setAttributeBody = z.object({ value: attributeValue() }).strict();

/** `GET|PUT /admin/users/:id/attributes[/:name]`: the stored attributes and what they derive (only the operator sees values). */
export interface UserAttributes {
  attributes: Record<string, number>;
  derived: Record<string, number>;
}

/** Query of `GET /admin/users`: `?email=` finds the one account with that address (or none). */
export const usersQuery = z.object({ email: z.string().max(320).optional() });

/** Body of `POST /admin/users/:id/disable` and `/enable`: an empty JSON object (a POST is always JSON). */
export const emptyBody = z.object({}).strict();

const scopeToken = z
  .string()
  .max(200)
  .regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'scope tokens must be RFC 6749 scope tokens');

/** `{ "<resource identifier>": ["read", "write"] }`: API scopes per resource. */
const resourceScopes = z.record(absoluteUri, z.array(scopeToken).max(100)).refine((v) => Object.keys(v).length <= 50, 'at most 50 resources');

/** The grant types a client may be given; token exchange by its RFC 8693 URN, as stored and listed. */
const grantType = z.enum(['authorization_code', 'refresh_token', 'client_credentials', TOKEN_EXCHANGE_GRANT_TYPE]);

/** Token exchange: the registered audiences whose tokens the client may exchange. */
const exchangeFrom = z.array(absoluteUri).max(50);

export const createClientBody = z.object({
  client_name: z.string().min(1).max(200),
  redirect_uris: z.array(z.string()).max(50).optional(),
  post_logout_redirect_uris: z.array(z.string()).max(50).optional(),
  grant_types: z.array(grantType).optional(),
  public: z.boolean().optional(),
  scope: z.string().max(1000).optional(),
  token_endpoint_auth_method: z.enum(TOKEN_ENDPOINT_AUTH_METHODS).optional(),
  jwks_uri: z.string().optional(),
  jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }).optional(),
  resources: z.array(absoluteUri).max(50).optional(),
  resource_scopes: resourceScopes.optional(),
  exchange_from: exchangeFrom.optional(),
  /** RFC 9449 §5.2: the client must send a DPoP proof with every token request. */
  dpop_bound_access_tokens: z.boolean().optional(),
  /** OpenID Connect Core §8: pairwise `sub` values per sector in ID tokens and userinfo. */
  subject_type: z.enum(['public', 'pairwise']).optional(),
}) satisfies z.ZodType<CreateClientInput>;

/**
 * `PATCH /admin/clients/:clientId`: the fields given replace the client's, the others stay. At
 * least one field. The id, secret, authentication method and keys are not changed here.
 */
export const updateClientBody = z
  .object({
    client_name: z.string().min(1).max(200).optional(),
    redirect_uris: z.array(z.string()).max(50).optional(),
    post_logout_redirect_uris: z.array(z.string()).max(50).optional(),
    grant_types: z.array(grantType).min(1).optional(),
    scope: z.string().max(1000).optional(),
    resources: z.array(absoluteUri).max(50).optional(),
    resource_scopes: resourceScopes.optional(),
    exchange_from: exchangeFrom.optional(),
    dpop_bound_access_tokens: z.boolean().optional(),
  })
  .strict()
  .refine((b) => Object.keys(b).length > 0, 'give at least one field to change') satisfies z.ZodType<UpdateClientInput>;

/** The longest access-token lifetime a resource server may have (signing keys stay published that long after rotation). */
export { MAX_RESOURCE_ACCESS_TOKEN_TTL };

const heClaims = z.array(z.string().max(64)).max(10);

export const createResourceBody = z
  .object({
    identifier: absoluteUri,
    name: z.string().min(1).max(200),
    scopes: z.array(z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'scope tokens must be RFC 6749 scope tokens')).max(100),
    access_token_ttl: z.number().int().positive().max(MAX_RESOURCE_ACCESS_TOKEN_TTL).optional(),
    /** The resource server's public encryption key (a JWK with kid) ... */
    jwk: z.record(z.string(), z.unknown()).optional(),
    /** ... or the URL of its JWK Set. */
    jwks_uri: z.url({ protocol: /^https?$/ }).optional(),
    alg: z.string().max(40).optional(),
    enc: z.string().max(40).optional(),
    claims: z.array(z.string().max(100)).max(20).optional(),
    /** Account attributes its tokens carry Paillier-encrypted in `hec` (src/accounts/attribute-catalogue.ts). */
    he_claims: heClaims.optional(),
    /** The `sub` its tokens carry: its own pairwise value (default) or the account id. */
    subject: z.enum(SUBJECT_MODES).optional(),
  })
  .refine((b) => Boolean(b.jwk) !== Boolean(b.jwks_uri), { message: 'give exactly one of jwk or jwks_uri' });

/** `PATCH /admin/resources/:identifier`: the fields given replace the resource server's. */
export const updateResourceBody = z
  .object({
    he_claims: heClaims.optional(),
    subject: z.enum(SUBJECT_MODES).optional(),
    /** Change the subject mode even while tokens for the API may be live. */
    force: z.boolean().optional(),
  })
  .strict()
  .refine((b) => Object.keys(b).some((k) => k !== 'force'), 'give at least one field to change');
export type UpdateResourceBody = z.infer<typeof updateResourceBody>;

export type CreateUserBody = z.infer<typeof createUserBody>;
export type CreateClientBody = z.infer<typeof createClientBody>;
export type UpdateClientBody = z.infer<typeof updateClientBody>;
export type CreateResourceBody = z.infer<typeof createResourceBody>;

/** What a thin client may send before the server validates it (enums as plain strings). */
export type CreateClientRequest = Omit<CreateClientBody, 'grant_types' | 'token_endpoint_auth_method' | 'jwks'> & {
  grant_types?: string[];
  token_endpoint_auth_method?: string;
  jwks?: unknown;
};

/** What a thin client may send to `PATCH /admin/clients/:clientId`. */
export type UpdateClientRequest = Omit<UpdateClientBody, 'grant_types'> & { grant_types?: string[] };

export type User = PublicAccount;
export type Client = PublicClient;
export type CreatedClient = CreatedClientResult;
export interface Resource {
  identifier: string;
  name: string;
  scopes: string[];
  access_token_ttl: number;
  jwk?: Record<string, unknown>;
  jwks_uri?: string;
  alg: string;
  enc: string;
  claims: string[];
  he_claims: string[];
  introspection_client_id?: string;
  subject: SubjectMode;
}

/** Returned once, when the resource server is created: the secret is stored only as a hash. */
export interface CreatedResource {
  resource: Resource;
  introspection_client_id: string;
  introspection_client_secret: string;
}

export function toPublicResource(r: ResourceServerRecord): Resource {
  return {
    identifier: r.identifier,
    name: r.name,
    scopes: r.scopes,
    access_token_ttl: r.accessTokenTtl,
    ...(r.encryptionJwk ? { jwk: r.encryptionJwk } : {}),
    ...(r.jwksUri ? { jwks_uri: r.jwksUri } : {}),
    alg: r.encryptionAlg,
    enc: r.encryptionEnc,
    claims: r.claims,
    he_claims: r.heClaims,
    ...(r.introspectionClientId ? { introspection_client_id: r.introspectionClientId } : {}),
    subject: r.subjectMode,
  };
}

/** A user's consent to a client (oidc-provider Grant), as admins see it. */
export interface Consent {
  grant_id: string;
  client_id: string;
  created_at: string;
  expires_at: string;
}

/** Every error body: `{ error, error_description }`. */
export interface ErrorBody {
  error: string;
  error_description: string;
}

/** The most events `GET /admin/audit` returns (`limit`), and how many when no limit is given. */
export const AUDIT_LIMIT_MAX = 1000;
export const AUDIT_LIMIT_DEFAULT = 100;

const DURATION_UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
/** A date, or a date and time with seconds optional and a zone required (Z or ±hh:mm). */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2}))?$/;

/**
 * A time bound of the audit query: an ISO 8601 time (`2026-11-23T00:00:00Z`, `2026-11-23` for
 * midnight UTC) or a duration back from `now` (`90s`, `15m`, `1h`, `7d`, `2w`). Null if neither.
 */
export function parseTimeBound(value: string, now: number = Date.now()): Date | null {
  const duration = /^(\d{1,9})([smhdw])$/.exec(value.trim());
  if (duration) return new Date(now - Number(duration[1]) * DURATION_UNITS[duration[2]!]!);
  if (!ISO_TIME.test(value.trim())) return null;
  const ms = Date.parse(value.trim());
  return Number.isNaN(ms) ? null : new Date(ms);
}

const TIME_BOUND_HINT = 'must be an ISO 8601 time with a zone (2026-11-23T00:00:00Z) or a duration (15m, 1h, 7d)';
const timeBound = z
  .string()
  .max(64)
  .transform((value, ctx) => {
    const date = parseTimeBound(value);
    if (!date) {
      ctx.addIssue({ code: 'custom', message: TIME_BOUND_HINT });
      return z.NEVER;
    }
    return date;
  });

/** Query string of `GET /admin/audit`. */
export const auditQuery = z.object({
  since: timeBound,
  until: timeBound.optional(),
  type: z.string().max(64).refine(isAuditTypeFilter, 'not an audit event type or category').optional(),
  limit: z
    .string()
    .regex(/^\d{1,4}$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(1).max(AUDIT_LIMIT_MAX))
    .optional(),
});

/** One audit trail entry. No personal data beyond `account_id`. */
export interface AuditEvent {
  id: string;
  at: string;
  type: string;
  account_id: string | null;
  client_id: string | null;
  actor: 'user' | 'admin' | 'client' | 'system';
  details: Record<string, unknown>;
}

export function toPublicAuditEvent(e: AuditEventRecord): AuditEvent {
  return { id: e.id, at: e.at.toISOString(), type: e.type, account_id: e.accountId, client_id: e.clientId, actor: e.actor, details: e.details };
}

/** `POST /admin/keys/rotate`: only these algorithms (default: every one). */
export const rotateKeysBody = z.object({ algs: z.array(z.string().max(20)).max(10).optional() });
/** `POST /admin/keys/:kid/retire`: `force` retires a key whose tokens may still be live. */
export const retireKeyBody = z.object({ force: z.boolean().optional() });

/** A signing key as the admin API shows it (never the private part). */
export interface PublicKeyInfo {
  kid: string;
  alg: string;
  status: RingKey['status'];
  created_at: string;
  activated_at?: string;
  retire_after?: string;
}

export const toKeyInfo = (k: RingKey): PublicKeyInfo => ({
  kid: k.kid,
  alg: k.alg,
  status: k.status,
  created_at: k.created_at,
  ...(k.activated_at ? { activated_at: k.activated_at } : {}),
  ...(k.retire_after ? { retire_after: k.retire_after } : {}),
});
