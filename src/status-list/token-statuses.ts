/**
 * Token statuses: what ties status lists to Veil's tokens. Each sealed access token gets a slot
 * when it is issued; its record keeps the slot and the owners it was filed under (its grant,
 * client, account and, for an exchanged token, everything its subject token was filed under plus
 * that token itself), so that revoking any of them reaches it:
 *   the token revoked            its slot, and the tokens exchanged from it      INVALID
 *   its grant revoked            (refresh-token reuse, consent withdrawn, ...)    INVALID
 *   its client deleted                                                            INVALID
 *   its user disabled                                                             SUSPENDED (lifted when enabled again)
 */
import type { AdapterPayload } from 'oidc-provider';
import { TokenStatus } from './format.js';
import { statusListUri } from './options.js';
import type { StatusOwnerIndex } from './owner-index.js';
import { decodeSlot, encodeSlot, type StatusListStore, type StatusSlot } from './store.js';

/** Where a token's record keeps its status (in `extra`, which the stored record keeps; never a claim as it is). */
export const STATUS_RECORD = 'veil_status';

export interface StatusRecord {
  /** encodeSlot of the token's slot; absent on an exchange's inherited owners before allocation. */
  slot?: string;
  owners: string[];
}

/** Owner names in the index: one namespace per kind, so ids of different kinds never meet. */
export const statusOwner = {
  grant: (id: string) => `g:${id}`,
  client: (id: string) => `c:${id}`,
  account: (id: string) => `a:${id}`,
  token: (jti: string) => `t:${jti}`,
};

const extraOf = (payload: AdapterPayload) => (payload.extra ?? {}) as Record<string, unknown>;

export function statusRecordOf(payload: AdapterPayload): StatusRecord | undefined {
  const value = extraOf(payload)[STATUS_RECORD] as Partial<StatusRecord> | undefined;
  if (!value || typeof value !== 'object' || !Array.isArray(value.owners) || !value.owners.every((o) => typeof o === 'string')) return undefined;
  return { ...(typeof value.slot === 'string' ? { slot: value.slot } : {}), owners: value.owners };
}

export function statusSlotOf(payload: AdapterPayload): StatusSlot | undefined {
  const slot = statusRecordOf(payload)?.slot;
  return slot === undefined ? undefined : decodeSlot(slot);
}

/** The token's own owners: its client, its account, its grant. */
export function ownOwners(payload: { clientId?: unknown; accountId?: unknown; grantId?: unknown }): string[] {
  const owners: string[] = [];
  if (typeof payload.grantId === 'string') owners.push(statusOwner.grant(payload.grantId));
  if (typeof payload.clientId === 'string') owners.push(statusOwner.client(payload.clientId));
  if (typeof payload.accountId === 'string') owners.push(statusOwner.account(payload.accountId));
  return owners;
}

/**
 * What a token exchanged from `subject` is filed under besides its own: whatever the subject was
 * (so a chain of exchanges follows the first token's grant, client and user) and the subject
 * token itself (revoking it revokes what was made from it).
 */
export function inheritedOwners(subject: { id: string; payload: AdapterPayload }): string[] {
  const fromSubject = statusRecordOf(subject.payload)?.owners ?? ownOwners(subject.payload);
  return [...new Set([...fromSubject, statusOwner.token(subject.id)])];
}

/** The `status` claim (draft-ietf-oauth-status-list §6.1) of a token whose record has a slot. */
export function statusClaim(issuer: string, payload: AdapterPayload): { status_list: { idx: number; uri: string } } | undefined {
  const slot = statusSlotOf(payload);
  return slot && { status_list: { idx: slot.idx, uri: statusListUri(issuer, slot.list) } };
}

export class TokenStatuses {
  constructor(
    readonly store: StatusListStore,
    private readonly owners: StatusOwnerIndex,
  ) {}

  /** A slot for a token expiring at `exp`, filed under `owners`: what its record keeps. */
  async assign(exp: number, owners: readonly string[]): Promise<StatusRecord & { slot: string }> {
    const slot = await this.store.allocate(exp);
    const unique = [...new Set(owners)];
    await this.owners.add(unique, slot);
    return { slot: encodeSlot(slot), owners: unique };
  }

  /** One token revoked: its own bit, and those of the tokens exchanged from it. */
  async revokeToken(jti: string, payload: AdapterPayload): Promise<void> {
    const slot = statusSlotOf(payload);
    await Promise.all([slot ? this.store.setStatus(slot, TokenStatus.INVALID) : undefined, this.setForOwner(statusOwner.token(jti), TokenStatus.INVALID)]);
  }

  revokeGrant(grantId: string): Promise<number> {
    return this.setForOwner(statusOwner.grant(grantId), TokenStatus.INVALID);
  }

  /** Sets the status of every live token filed under `owner`; resolves to how many now have it. */
  async setForOwner(owner: string, status: TokenStatus): Promise<number> {
    const slots = await this.owners.slots(owner);
    return slots.length ? this.store.setStatuses(slots, status) : 0;
  }
}
