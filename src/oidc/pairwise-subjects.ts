/**
 * Pairwise subjects: the `sub` one party sees for a user, derived so that two parties cannot
 * join what they know about the same user by it.
 *   - per API (a resource server registered with subject mode "pairwise"): the `sub` of its
 *     access tokens and of introspection answers about them;
 *   - per client sector (OpenID Connect Core §8, a client with `subject_type: pairwise`): the
 *     `sub` of its ID tokens and userinfo, through oidc-provider's `pairwiseIdentifier`.
 * The value is HMAC-SHA-256 (base64url) under the deployment's pairwise secret
 * (crypto/pairwise-secret.ts: random, stored sealed, kept across master-key rotations), over the
 * kind of party, its identifier and the account id: stable for the pair for the life of the
 * deployment, different for any other API or sector.
 * Tokens of no user (client credentials: `sub` is the client id) are left as they are.
 * Records keep the account id: only what leaves Veil for a party carries the derived value.
 */
import { createHmac } from 'node:crypto';
import type { AdapterPayload } from 'oidc-provider';
import type { ResourceServerRecord } from '../store/resource-servers.js';
import { subjectOf } from './token-claims.js';

export class PairwiseSubjects {
  readonly #key: Buffer;

  constructor(secret: Buffer) {
    this.#key = secret;
  }

  #derive(kind: 'api' | 'sector', party: string, accountId: string): string {
    // JSON of the three strings: no two different triples give the same input.
    return createHmac('sha256', this.#key)
      .update(JSON.stringify([kind, party, accountId]))
      .digest('base64url');
  }

  /** The `sub` the API `identifier` sees for the account. */
  forApi(accountId: string, identifier: string): string {
    return this.#derive('api', identifier, accountId);
  }

  /** The `sub` the clients of a sector (OIDC Core §8.1, the host of their redirect URIs or their sector_identifier_uri) see. */
  forSector(accountId: string, sector: string): string {
    return this.#derive('sector', sector, accountId);
  }

  /**
   * The `sub` of an access token (or its introspection answer) for the API `rs`: the API's
   * pairwise value when the token speaks for a user and the API is pairwise, else the stored
   * subject (the account id, or the client id for client credentials). An exchanged token's
   * record keeps the account id of its subject, so it gets the target API's own value.
   */
  subjectFor(payload: AdapterPayload, rs: Pick<ResourceServerRecord, 'identifier' | 'subjectMode'> | null | undefined): unknown {
    const sub = subjectOf(payload);
    if (rs?.subjectMode !== 'pairwise' || typeof payload.accountId !== 'string' || sub !== payload.accountId) return sub;
    return this.forApi(payload.accountId, rs.identifier);
  }

  /**
   * The `sub` of a token of no API (a refresh token, a userinfo-only access token) as its own
   * client sees it: its sector's value when the client is pairwise, as in its ID tokens.
   */
  subjectForClient(payload: AdapterPayload, client: { subjectType?: string | undefined; sectorIdentifier?: string | undefined }): unknown {
    const sub = subjectOf(payload);
    if (client.subjectType !== 'pairwise' || !client.sectorIdentifier || typeof payload.accountId !== 'string' || sub !== payload.accountId) return sub;
    return this.forSector(payload.accountId, client.sectorIdentifier);
  }
}
