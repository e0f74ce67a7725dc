/**
 * Ending a grant: the user's consent and every token issued under it. PostgreSQL first (the
 * grant row is the authority every refresh and introspection checks), then the short-lived
 * store in one atomic step (tokens deleted, access-token jtis blacklisted, grant marked revoked
 * so a refresh racing this cannot write a new pair).
 */
import type { GrantRepository } from '../store/grants.js';
import type { InvalidationBus } from '../store/invalidation.js';
import type { GrantTokenStore } from '../store/short-lived-store.js';
import type { TokenStatuses } from '../status-list/token-statuses.js';

export class GrantRevocation {
  constructor(
    private readonly grants: GrantRepository,
    private readonly store: GrantTokenStore,
    /** Longer than any token of a grant can live. */
    private readonly markerTtl: number,
    /** Every process's cached copy of the grant is dropped (oidc/adapter.ts GrantAdapter). */
    private readonly bus: Pick<InvalidationBus, 'publish'>,
    /** Status lists: the grant's live access tokens are set INVALID for verifiers that check offline. */
    private readonly statuses?: Pick<TokenStatuses, 'revokeGrant'>,
  ) {}

  async revoke(grantId: string): Promise<void> {
    await this.grants.destroy(grantId);
    // The store step is tried even when the announcement fails (Redis away): a failed one is
    // re-applied until it lands (RedisStore), so the grant's tokens do not outlive its row.
    const [announced, revoked, listed] = await Promise.allSettled([
      this.bus.publish('grant', grantId),
      this.store.revokeByGrantId(grantId, this.markerTtl),
      this.statuses?.revokeGrant(grantId),
    ]);
    if (revoked.status === 'rejected') throw revoked.reason;
    if (listed.status === 'rejected') throw listed.reason;
    if (announced.status === 'rejected') throw announced.reason;
  }

  /** Withdraws an account's consent to a client: every grant between them ends. */
  async withdraw(accountId: string, clientId: string): Promise<number> {
    const ids = await this.grants.idsFor(accountId, clientId);
    for (const id of ids) await this.revoke(id);
    return ids.length;
  }
}
