/**
 * Files each access token for an API in a status list as oidc-provider builds it: wraps the
 * `extraTokenClaims` hook (configuration.ts), which runs once per token, before its record is
 * stored, so the slot is written with the record and sealed from the same payload
 * (token-claims.ts turns it into the `status` claim). Userinfo-only tokens (no `aud`) get none.
 */
import type { Configuration } from 'oidc-provider';
import { ownOwners, STATUS_RECORD, statusRecordOf, type TokenStatuses } from '../status-list/token-statuses.js';
import { toProtocolError } from './errors.js';

type ExtraTokenClaims = NonNullable<Configuration['extraTokenClaims']>;

interface TokenFields {
  aud?: unknown;
  exp?: unknown;
  expiration?: unknown;
  clientId?: unknown;
  accountId?: unknown;
  grantId?: unknown;
}

export function withTokenStatus(statuses: Pick<TokenStatuses, 'assign'> | undefined, extraTokenClaims: ExtraTokenClaims): ExtraTokenClaims {
  if (!statuses) return extraTokenClaims;
  return async (ctx, token) => {
    const extra = await extraTokenClaims(ctx, token);
    const fields = token as unknown as TokenFields;
    if (typeof fields.aud !== 'string') return extra;
    // `exp` is stamped when the lifetime is decided (configuration.ts `ttl`), just before this hook.
    const exp = typeof fields.exp === 'number' ? fields.exp : Math.floor(Date.now() / 1000) + Number(fields.expiration);
    // An exchanged token arrives with its subject's owners (token-exchange.ts).
    const inherited = statusRecordOf({ extra })?.owners ?? [];
    try {
      const record = await statuses.assign(exp, [...ownOwners(fields), ...inherited]);
      return { ...extra, [STATUS_RECORD]: record };
    } catch (err) {
      throw toProtocolError(err);
    }
  };
}
