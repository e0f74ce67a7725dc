/**
 * The domain-event subscriber that carries client and user changes into status lists: a deleted
 * client's tokens become INVALID, a disabled user's SUSPENDED, and enabling the user again lifts
 * that (never a revocation: INVALID is final). Grants are revoked through GrantRevocation, which
 * sets its tokens' bits itself.
 *
 * A token request already past its client and account checks when the change lands can still
 * file a token after the first sweep; a second sweep a little later (RESWEEP_MS) catches it, for a
 * user only while they are still disabled.
 */
import { errorFields, type Logger } from '../observability/logger.js';
import type { Subscriber } from '../events/domain-events.js';
import { TokenStatus } from './format.js';
import { statusOwner, type TokenStatuses } from './token-statuses.js';

/** Longer than a token request takes from its client and account checks to its slot. */
export const RESWEEP_MS = 30_000;

export interface StatusListSubscriberDeps {
  statuses: Pick<TokenStatuses, 'setForOwner'>;
  /** Whether the account is (still) disabled, for the second sweep. */
  accountDisabled(accountId: string): Promise<boolean>;
  logger: Pick<Logger, 'error'>;
  resweepMs?: number;
}

export function statusListSubscriber(deps: StatusListSubscriberDeps): Subscriber {
  const later = (what: string, sweep: () => Promise<unknown>) => {
    const timer = setTimeout(() => {
      sweep().catch((err: unknown) => deps.logger.error({ err: errorFields(err), sweep: what }, 'status list sweep failed'));
    }, deps.resweepMs ?? RESWEEP_MS);
    timer.unref();
  };
  return async (event) => {
    if (event.type === 'client.deleted') {
      const sweep = () => deps.statuses.setForOwner(statusOwner.client(event.clientId), TokenStatus.INVALID);
      await sweep();
      later('client.deleted', sweep);
    } else if (event.type === 'user.disabled') {
      const sweep = () => deps.statuses.setForOwner(statusOwner.account(event.accountId), TokenStatus.SUSPENDED);
      await sweep();
      later('user.disabled', async () => {
        if (await deps.accountDisabled(event.accountId)) await sweep();
      });
    } else if (event.type === 'user.enabled') {
      await deps.statuses.setForOwner(statusOwner.account(event.accountId), TokenStatus.VALID);
    }
  };
}
