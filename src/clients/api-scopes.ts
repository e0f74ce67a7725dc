/**
 * Which API scopes a client may obtain, per resource server: the one rule Veil applies at every
 * token request (src/oidc/resource-indicators.ts), and the way an admin's `scope` and
 * `resource_scopes` become that allow-list (src/clients/client-service.ts).
 *
 * The allow-list is Veil client metadata, `resource_scopes: { "<resource identifier>": [scopes] }`.
 * oidc-provider only knows the OIDC scopes (`scope` stays limited to them, so its own validation
 * passes); a client without `resource_scopes` gets no API scope at all (the safe default for
 * clients registered before allow-lists existed).
 */
import { VeilError } from '../errors/veil-error.js';

/** Client metadata: the API scopes a client may obtain, per resource identifier (Veil's extension). */
export const RESOURCE_SCOPES = 'resource_scopes';

export type ResourceScopes = Record<string, string[]>;

/** RFC 6749 §3.3 scope-token characters. */
export const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

/** The allow-list as stored; anything malformed (a hand-edited row) counts as "nothing allowed". */
export function resourceScopesOf(metadata: Record<string, unknown>): ResourceScopes {
  const value = metadata[RESOURCE_SCOPES];
  if (!isResourceScopes(value)) return {};
  return value;
}

export function isResourceScopes(value: unknown): value is ResourceScopes {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  return Object.entries(value).every(([uri, scopes]) => URL.canParse(uri) && Array.isArray(scopes) && scopes.every((s) => typeof s === 'string' && SCOPE_TOKEN.test(s)));
}

/**
 * THE rule: the API scopes a client may obtain for a resource server are its allow-list for that
 * resource intersected with the scopes the resource server registers now (a scope the API has
 * since dropped is never granted, whatever the client row says).
 */
export function allowedApiScopes(clientMetadata: Record<string, unknown>, resource: { identifier: string; scopes: readonly string[] }): string[] {
  const allowed = new Set(resourceScopesOf(clientMetadata)[resource.identifier] ?? []);
  return resource.scopes.filter((s) => allowed.has(s));
}

export class ScopeInputError extends VeilError {
  constructor(message: string) {
    super('invalid_input', message);
  }
}

/**
 * Splits an admin's scope request into oidc-provider's `scope` (OIDC scopes only) and the API
 * allow-list. `scope` may name OIDC scopes and any scope registered by exactly one of the
 * client's resources; a name two of them share must be given per resource in `resourceScopes`.
 * Every resource in `resourceScopes` must be one of `resources`, and each of its scopes
 * registered by that resource. Throws ScopeInputError with a message fit for the admin.
 */
export function splitClientScopes(input: {
  scope: string | undefined;
  resourceScopes: ResourceScopes | undefined;
  /** The client's resource servers, as the registry has them now. */
  resources: ReadonlyArray<{ identifier: string; scopes: readonly string[] }>;
  oidcScopes: readonly string[];
}): { oidcScope: string | undefined; resourceScopes: ResourceScopes } {
  const result: Record<string, Set<string>> = {};
  const add = (identifier: string, scope: string) => (result[identifier] ??= new Set()).add(scope);
  const oidc: string[] = [];
  const oidcScopes = new Set(input.oidcScopes);

  for (const scope of new Set((input.scope ?? '').split(' ').filter(Boolean))) {
    if (!SCOPE_TOKEN.test(scope)) throw new ScopeInputError('scope tokens must be RFC 6749 scope tokens');
    if (oidcScopes.has(scope)) {
      oidc.push(scope);
      continue;
    }
    const owners = input.resources.filter((r) => r.scopes.includes(scope));
    if (owners.length === 0) {
      throw new ScopeInputError(`scope "${scope}" is neither an OIDC scope nor registered by any of the client's resources`);
    }
    if (owners.length > 1) {
      throw new ScopeInputError(
        `scope "${scope}" is registered by several of the client's resources (${owners.map((r) => r.identifier).join(', ')}): give it per resource with resource_scopes`,
      );
    }
    add(owners[0]!.identifier, scope);
  }

  for (const [identifier, scopes] of Object.entries(input.resourceScopes ?? {})) {
    const resource = input.resources.find((r) => r.identifier === identifier);
    if (!resource) throw new ScopeInputError(`resource_scopes names ${identifier}, which is not one of the client's resources`);
    for (const scope of scopes) {
      if (!resource.scopes.includes(scope)) throw new ScopeInputError(`scope "${scope}" is not registered by ${identifier}`);
      add(identifier, scope);
    }
  }

  const resourceScopes: ResourceScopes = {};
  for (const r of input.resources) {
    // In the resource server's own order, so the stored list reads predictably.
    const picked = result[r.identifier];
    if (picked?.size) resourceScopes[r.identifier] = r.scopes.filter((s) => picked.has(s));
  }
  return { oidcScope: oidc.length ? oidc.join(' ') : undefined, resourceScopes };
}
