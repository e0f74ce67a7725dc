/**
 * The short-lived half of Veil's storage: sessions, interactions, codes, refresh tokens,
 * replay detection and other TTL-driven OAuth state. Redis in deployments, an in-process
 * map in embedded mode; both implement this interface with the same semantics.
 */
import type { AdapterPayload } from 'oidc-provider';

export interface ShortLivedStore {
  readonly kind: 'redis' | 'memory';
  upsert(model: string, id: string, payload: AdapterPayload, expiresIn: number): Promise<void>;
  find(model: string, id: string): Promise<AdapterPayload | undefined>;
  findByUid(model: string, uid: string): Promise<AdapterPayload | undefined>;
  findByUserCode(model: string, userCode: string): Promise<AdapterPayload | undefined>;
  /**
   * Marks the entry consumed in one atomic step. Resolves `true` for the one caller that
   * consumed it, `false` when it was already consumed or is gone, so racing redemptions
   * of the same code or refresh token have exactly one winner.
   */
  consume(model: string, id: string): Promise<boolean>;
  destroy(model: string, id: string): Promise<void>;
  revokeByGrantId(grantId: string): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Models whose entries belong to a grant and die with it. */
export const GRANTABLE_MODELS = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);
