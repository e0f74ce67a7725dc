/**
 * The resource server registry as the rest of Veil sees it: validated registration (keys,
 * algorithms, credentials for introspection) and cached look-ups for the hot paths (every
 * token request and every introspection needs the resource server). Caches are bounded,
 * short-lived, and dropped in every process at once when a registration changes.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { JWK } from 'jose';
import { LRUCache } from 'lru-cache';
import { JWKS_URI_ERROR } from '../http/remote-jwks.js';
import { OIDC_SCOPES } from '../oidc/oidc-scopes.js';
import type { InvalidationBus } from '../store/invalidation.js';
import type { ResourceServerRecord, ResourceServerRepository, SubjectMode } from '../store/resource-servers.js';
import type { AudienceExpiry } from '../store/short-lived-store.js';
import { EncryptionKeyError, importPublicEncryptionJwk, refuseSha1Oaep, resolveAlgorithms, selectEncryptionJwk, type EncryptionKeys } from './encryption-keys.js';
import { VeilError } from '../errors/veil-error.js';
import { checkClaimNames } from '../accounts/attributes.js';
import type { EventSink } from '../events/domain-events.js';

export interface RegisterResourceServer {
  identifier: string;
  name: string;
  scopes: string[];
  accessTokenTtl: number;
  /** Exactly one of an inline public JWK or a jwks_uri. */
  jwk?: JWK;
  jwksUri?: string;
  alg?: string;
  enc?: string;
  claims?: string[];
  /** Account attributes its tokens carry Paillier-encrypted (accounts/attribute-catalogue.ts names). */
  heClaims?: string[];
  /** Pairwise (the default) or public `sub` in its tokens (oidc/pairwise-subjects.ts). */
  subjectMode?: SubjectMode;
}

/** A change to a registered resource server. */
export interface UpdateResourceServer {
  subjectMode?: SubjectMode;
  /** Change the subject mode even though tokens for the API may still be live. */
  force?: boolean;
}

export interface IntrospectionCredentials {
  introspection_client_id: string;
  introspection_client_secret: string;
}

export class InvalidResourceServer extends VeilError {
  constructor(message: string) {
    super('invalid_input', message);
  }
}

export class DuplicateResourceServer extends VeilError {
  constructor(message: string) {
    super('conflict', message);
  }
}

/**
 * A subject mode change while tokens for the API may be live: its holders would see one user
 * under two subjects (tokens already issued keep the old one until they expire).
 */
export class LiveTokensForResourceServer extends VeilError {
  constructor(until: number) {
    super('conflict', `the API has live access tokens until ${new Date(until * 1000).toISOString()}: change its subject mode after then, or force it`);
  }
}

/** User claims a resource server may be given (the ones Veil's accounts have). */
export const RELEASABLE_CLAIMS = ['email', 'email_verified', 'name'] as const;

const CACHE_TTL_MS = 60_000;
/** Introspection client ids start with this, to tell them from OAuth clients' ids at a glance. */
export const INTROSPECTION_CLIENT_PREFIX = 'rs_';
const hashSecret = (secret: string) => createHash('sha256').update(secret).digest();

export class ResourceServerRegistry {
  // `null` caches "no such resource server" too, so unknown resource values cost no query.
  readonly #byIdentifier = new LRUCache<string, { record: ResourceServerRecord | null }>({ max: 1000, ttl: CACHE_TTL_MS });
  readonly #byIntrospectionClient = new LRUCache<string, { record: ResourceServerRecord | null }>({ max: 1000, ttl: CACHE_TTL_MS });

  constructor(
    private readonly repository: ResourceServerRepository,
    private readonly keys: EncryptionKeys,
    private readonly bus: InvalidationBus,
    /** resource.created / deleted, after the change is stored and announced. */
    private readonly events: EventSink,
    /** Until when tokens issued for an audience may be live (noted at issuance by the token edge). */
    private readonly expiry: Pick<AudienceExpiry, 'audienceExpiry'>,
  ) {
    bus.subscribe((topic, key) => {
      if (topic === 'resource' || topic === 'all') this.#forget(topic === 'all' ? undefined : key);
    });
  }

  async find(identifier: string): Promise<ResourceServerRecord | null> {
    const hit = this.#byIdentifier.get(identifier);
    if (hit) return hit.record;
    const record = await this.repository.find(identifier);
    this.#byIdentifier.set(identifier, { record });
    return record;
  }

  /** The resource server these introspection credentials belong to, if they are right. */
  async authenticate(clientId: string, secret: string): Promise<ResourceServerRecord | null> {
    let hit = this.#byIntrospectionClient.get(clientId);
    if (!hit) {
      hit = { record: await this.repository.findByIntrospectionClientId(clientId) };
      this.#byIntrospectionClient.set(clientId, hit);
    }
    const expected = hit.record?.introspectionSecretHash;
    // Compare hashes of equal length in constant time; unknown ids still pay for one hash.
    const presented = hashSecret(secret);
    const matches = timingSafeEqual(presented, expected ? Buffer.from(expected, 'hex') : hashSecret(randomBytes(16).toString('hex')));
    return matches && expected ? hit.record! : null;
  }

  list(): Promise<ResourceServerRecord[]> {
    return this.repository.list();
  }

  async register(input: RegisterResourceServer): Promise<{ record: ResourceServerRecord; credentials: IntrospectionCredentials }> {
    if (Boolean(input.jwk) === Boolean(input.jwksUri)) throw new InvalidResourceServer('give exactly one of an inline JWK or a jwks_uri');
    const unknownClaims = (input.claims ?? []).filter((c) => !(RELEASABLE_CLAIMS as readonly string[]).includes(c));
    if (unknownClaims.length) throw new InvalidResourceServer(`claims must be among ${RELEASABLE_CLAIMS.join(', ')}; unknown: ${unknownClaims.join(', ')}`);
    const heClaims = checkClaimNames(input.heClaims ?? []);
    const oidcNamed = input.scopes.filter((scope) => OIDC_SCOPES.includes(scope));
    if (oidcNamed.length)
      throw new InvalidResourceServer(`scopes must not be named like OpenID Connect scopes (${oidcNamed.join(', ')}): no client could be granted them for this API`);
    if (await this.repository.find(input.identifier)) throw new DuplicateResourceServer('a resource server with this identifier exists');

    const { alg, enc, jwk } = await this.#validateKey(input);
    const secret = randomBytes(32).toString('base64url');
    const credentials = { introspection_client_id: `${INTROSPECTION_CLIENT_PREFIX}${randomBytes(16).toString('base64url')}`, introspection_client_secret: secret };
    const record = await this.repository.create({
      identifier: input.identifier,
      name: input.name,
      scopes: [...new Set(input.scopes)],
      accessTokenTtl: input.accessTokenTtl,
      encryptionJwk: jwk ? publicJwk(jwk) : null,
      jwksUri: input.jwksUri ?? null,
      encryptionAlg: alg,
      encryptionEnc: enc,
      claims: [...new Set(input.claims ?? [])],
      heClaims,
      introspectionClientId: credentials.introspection_client_id,
      introspectionSecretHash: hashSecret(secret).toString('hex'),
      subjectMode: input.subjectMode ?? 'pairwise',
    });
    await this.#announce(record.identifier);
    await this.events.emit({ type: 'resource.created', identifier: record.identifier, introspectionClientId: credentials.introspection_client_id });
    return { record, credentials };
  }

  /**
   * Changes a registration (today: its subject mode). Refused while tokens for it may be live,
   * unless forced. Undefined when there is no such resource server.
   */
  async update(identifier: string, change: UpdateResourceServer): Promise<ResourceServerRecord | undefined> {
    const current = await this.repository.find(identifier);
    if (!current) return undefined;
    if (!change.subjectMode || change.subjectMode === current.subjectMode) return current;
    const liveUntil = latest(await this.expiry.audienceExpiry(identifier), unnotedUntil(current));
    if (liveUntil !== undefined && !change.force) throw new LiveTokensForResourceServer(liveUntil);
    const record = await this.repository.setSubjectMode(identifier, change.subjectMode);
    if (!record) return undefined;
    await this.#announce(identifier);
    await this.events.emit({ type: 'resource.updated', identifier, subjectMode: record.subjectMode, forced: liveUntil !== undefined });
    return record;
  }

  /**
   * Replaces the attributes its tokens carry encrypted (tokens already issued keep theirs).
   * Undefined when there is no such resource server.
   */
  async setHeClaims(identifier: string, names: string[]): Promise<ResourceServerRecord | undefined> {
    const heClaims = checkClaimNames(names);
    const record = await this.repository.setHeClaims(identifier, heClaims);
    if (!record) return undefined;
    await this.#announce(identifier);
    return record;
  }

  /**
   * `detach` takes the deleted resource server off whatever names it (ClientService.forgetResource)
   * and resolves to the client ids it changed; they are part of the event.
   */
  async delete(identifier: string, detach: (identifier: string) => Promise<readonly string[]>): Promise<boolean> {
    const deleted = await this.repository.delete(identifier);
    if (!deleted) return false;
    await this.#announce(identifier);
    const clients = await detach(identifier);
    await this.events.emit({ type: 'resource.deleted', identifier, clients });
    return true;
  }

  /** Forget here at once (pub/sub delivery is asynchronous), then tell every other process. */
  async #announce(identifier: string): Promise<void> {
    this.#forget(identifier);
    await this.bus.publish('resource', identifier);
  }

  async #validateKey(input: RegisterResourceServer): Promise<{ alg: string; enc: string; jwk?: JWK }> {
    try {
      refuseSha1Oaep(input.alg);
      if (input.jwksUri) {
        // Fetched through the SSRF rules; a failure answers one generic message, never the body.
        const { keys } = await this.keys.fetchKeySet(input.jwksUri);
        const jwk = selectEncryptionJwk(
          keys.filter((k) => k.alg !== 'RSA-OAEP'),
          input.alg,
        );
        if (!jwk) {
          if (keys.some((k) => k.alg === 'RSA-OAEP')) refuseSha1Oaep('RSA-OAEP');
          throw new EncryptionKeyError('the jwks_uri has no public encryption key with a kid');
        }
        const key = await importPublicEncryptionJwk(jwk);
        // As for an inline JWK: the key's own `alg`, when it names one, is the default.
        const resolved = resolveAlgorithms(key, input.alg ?? jwk.alg, input.enc);
        refuseSha1Oaep(resolved.alg);
        return resolved;
      }
      const jwk = input.jwk!;
      if (typeof jwk.kid !== 'string' || !jwk.kid) throw new EncryptionKeyError('the JWK needs a "kid"');
      const key = await importPublicEncryptionJwk(jwk);
      const resolved = resolveAlgorithms(key, input.alg ?? jwk.alg, input.enc);
      refuseSha1Oaep(resolved.alg);
      return { ...resolved, jwk };
    } catch (err) {
      if (err instanceof EncryptionKeyError) throw new InvalidResourceServer(err.message);
      // A jwks_uri's unexpected failure could carry what was fetched: say nothing of it.
      throw new InvalidResourceServer(input.jwksUri ? JWKS_URI_ERROR : `cannot use the key: ${(err as Error).message}`);
    }
  }

  #forget(identifier: string | undefined): void {
    if (identifier === undefined) {
      this.#byIdentifier.clear();
      this.#byIntrospectionClient.clear();
      return;
    }
    const record = this.#byIdentifier.get(identifier)?.record;
    this.#byIdentifier.delete(identifier);
    if (record) this.keys.forget(record);
    // Credentials are looked up by client id; a changed or deleted server must not linger there.
    for (const [clientId, entry] of this.#byIntrospectionClient.entries()) {
      if (!entry.record || entry.record.identifier === identifier) this.#byIntrospectionClient.delete(clientId);
    }
  }
}

/**
 * Until when tokens issued before the API's tokens were noted (it existed before the migration
 * that began noting them) may still be live: one access-token lifetime after noting began.
 */
function unnotedUntil(rs: ResourceServerRecord): number | undefined {
  if (!rs.tokensNotedSince) return undefined;
  const until = Math.ceil(rs.tokensNotedSince.getTime() / 1000) + rs.accessTokenTtl;
  return until > Date.now() / 1000 ? until : undefined;
}

const latest = (a: number | undefined, b: number | undefined) => (a === undefined ? b : b === undefined ? a : Math.max(a, b));

/** Only the public members of the key are kept. */
function publicJwk(jwk: JWK): Record<string, unknown> {
  const { kty, crv, x, y, n, e, kid, alg, use } = jwk;
  return Object.fromEntries(Object.entries({ kty, crv, x, y, n, e, kid, alg, use }).filter(([, v]) => v !== undefined));
}
