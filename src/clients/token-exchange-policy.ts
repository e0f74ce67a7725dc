/**
 * RFC 8693 token exchange as client registration sees it. A client may exchange a token only
 * with the grant type (`urn:ietf:params:oauth:grant-type:token-exchange` in `grant_types`),
 * for a target among its `allowed_resources`, and only subject tokens whose audience it fronts:
 * Veil's client metadata `exchange_from: [audience identifiers]` (an API gateway lists the APIs
 * it stands in front of). The exchange itself is src/oidc/token-exchange.ts.
 */

/** The grant type (RFC 8693 §2.1), as stored in `grant_types` and sent at /token. */
export const TOKEN_EXCHANGE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** What the CLI accepts for it in `--grant-type`. */
export const TOKEN_EXCHANGE_SHORT_NAME = 'token-exchange';

/** Client metadata: the audiences whose tokens the client may exchange (Veil's extension). */
export const EXCHANGE_FROM = 'exchange_from';

export function hasTokenExchange(metadata: { grant_types?: readonly string[] | undefined }): boolean {
  return metadata.grant_types?.includes(TOKEN_EXCHANGE_GRANT_TYPE) ?? false;
}

/** The audiences a client may exchange tokens from, as stored; anything malformed counts as none. */
export function exchangeSources(metadata: Record<string, unknown>): string[] {
  const value = metadata[EXCHANGE_FROM];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}
