/**
 * The audit trail: who signed in or failed to, who consented or withdrew consent, which tokens
 * were revoked, what administrators changed, and key rotation. One typed helper per event, so
 * what goes into a row is decided here and nowhere else.
 *
 * No personal data beyond the account id: never an email, a name, an IP address, a token, a
 * password or a secret. Details hold only identifiers Veil itself made up (grant ids, key ids),
 * registry identifiers (resource URIs), scopes and enumerated reasons.
 *
 * Recording never fails the caller. An audit write that fails (PostgreSQL down, a bug) is logged
 * at error level, with `errorFields`, as "audit event not recorded", and the request goes on: a
 * sign-in or an admin change that has already happened must not be reported as failed, or be
 * refused, because its record could not be written. The price is that an outage of the audit
 * table loses events; the error log line (with the event type, never its details) is the trace
 * of each lost one. Callers may `await` the helpers (they never reject) so that the row is
 * written by the time the response goes out, or call them with `void` where they cannot wait.
 */
import { errorFields, type Logger } from '../observability/logger.js';
import type { AuditActor, AuditEventInput, AuditEventQuery, AuditEventRecord, AuditEventRepository } from '../store/audit-events.js';
import type { AuditEventType } from './event-types.js';

export type { AuditActor, AuditEventQuery, AuditEventRecord };
export { AUDIT_EVENT_CATEGORIES, AUDIT_EVENT_TYPES, isAuditTypeFilter, type AuditEventType } from './event-types.js';

export interface AuditEvent extends AuditEventInput {
  type: AuditEventType;
}

export class AuditLog {
  constructor(
    private readonly repository: Pick<AuditEventRepository, 'record' | 'list'>,
    private readonly logger: Logger,
  ) {}

  /** Writes one event. Never throws: a failure is logged and swallowed (see the module comment). */
  async record(event: AuditEvent): Promise<void> {
    try {
      await this.repository.record(event);
    } catch (err) {
      this.logger.error({ err: errorFields(err), auditEvent: event.type }, 'audit event not recorded');
    }
  }

  /** Newest first; `limit` is clamped to 1..1000. Unlike `record`, read failures reach the caller. */
  list(query: AuditEventQuery): Promise<AuditEventRecord[]> {
    return this.repository.list(query);
  }

  // Sign-in (the login form). A failure carries no account id: the email is not recorded, and
  // whether it belongs to an account is exactly what the login page does not reveal.

  loginSucceeded(accountId: string, clientId: string): Promise<void> {
    return this.record({ type: 'login.succeeded', actor: 'user', accountId, clientId });
  }

  /** Wrong email or password. `locked` lists the throttle scopes this failure locked, if any. */
  loginFailed(clientId: string, locked: ReadonlyArray<'account' | 'ip' | 'device'> = []): Promise<void> {
    return this.record({ type: 'login.failed', actor: 'user', clientId, details: { reason: 'invalid_credentials', ...(locked.length ? { locked: [...locked] } : {}) } });
  }

  /** An attempt refused, unchecked, because the account, the address or the device cookie is locked. */
  loginLocked(clientId: string, scope: 'account' | 'ip' | 'device'): Promise<void> {
    return this.record({ type: 'login.locked', actor: 'user', clientId, details: { scope } });
  }

  // Consent.

  /** What this consent added: OIDC scopes and claims, and scopes per resource identifier. */
  consentGranted(
    accountId: string,
    clientId: string,
    granted: { grantId: string; scopes: string[]; claims?: string[] | undefined; resources: Record<string, string[]> },
  ): Promise<void> {
    return this.record({
      type: 'consent.granted',
      actor: 'user',
      accountId,
      clientId,
      details: { grant_id: granted.grantId, scopes: granted.scopes, ...(granted.claims?.length ? { claims: granted.claims } : {}), resources: granted.resources },
    });
  }

  /** By the user (self-service) or by an administrator (`DELETE /admin/users/:id/consents/:clientId`). */
  consentWithdrawn(accountId: string, clientId: string, actor: 'user' | 'admin'): Promise<void> {
    return this.record({ type: 'consent.withdrawn', actor, accountId, clientId });
  }

  // Tokens.

  /** At the revocation endpoint, by the client. The token itself is never recorded. */
  tokenRevoked(clientId: string, kind: string, grantId?: string | undefined): Promise<void> {
    return this.record({ type: 'token.revoked', actor: 'client', clientId, details: { kind, ...(grantId ? { grant_id: grantId } : {}) } });
  }

  /**
   * A consumed code or refresh token presented again: the grant was revoked. `concurrent`: during
   * its first redemption (Veil's lost consume), else later (oidc-provider's own check).
   */
  tokenReused(clientId: string | undefined, kind: string, grantId: string, concurrent = true): Promise<void> {
    return this.record({ type: 'token.reused', actor: 'system', clientId: clientId ?? null, details: { kind, grant_id: grantId, concurrent } });
  }

  // Administration.

  clientCreated(clientId: string, details: { grantTypes?: readonly string[] | undefined; authMethod?: string | undefined } = {}): Promise<void> {
    return this.record({
      type: 'client.created',
      actor: 'admin',
      clientId,
      details: { ...(details.grantTypes ? { grant_types: [...details.grantTypes] } : {}), ...(details.authMethod ? { token_endpoint_auth_method: details.authMethod } : {}) },
    });
  }

  /** Which fields an update replaced, and the client's scopes after it (no URIs: only what the trail may hold). */
  clientUpdated(clientId: string, change: { fields: readonly string[]; scope?: string | undefined; resourceScopes?: Record<string, string[]> | undefined; grantTypes?: readonly string[] | undefined }): Promise<void> {
    return this.record({
      type: 'client.updated',
      actor: 'admin',
      clientId,
      details: {
        fields: [...change.fields],
        ...(change.grantTypes ? { grant_types: [...change.grantTypes] } : {}),
        ...(change.scope ? { scope: change.scope } : {}),
        resource_scopes: change.resourceScopes ?? {},
      },
    });
  }

  clientDeleted(clientId: string): Promise<void> {
    return this.record({ type: 'client.deleted', actor: 'admin', clientId });
  }

  resourceCreated(identifier: string, introspectionClientId?: string | undefined): Promise<void> {
    return this.record({ type: 'resource.created', actor: 'admin', clientId: introspectionClientId ?? null, details: { identifier } });
  }

  /** `clients`: the clients it was taken off (ClientService.forgetResource). */
  resourceDeleted(identifier: string, clients: readonly string[] = []): Promise<void> {
    return this.record({ type: 'resource.deleted', actor: 'admin', details: { identifier, clients } });
  }

  userCreated(accountId: string): Promise<void> {
    return this.record({ type: 'user.created', actor: 'admin', accountId });
  }

  userDisabled(accountId: string): Promise<void> {
    return this.record({ type: 'user.disabled', actor: 'admin', accountId });
  }

  userEnabled(accountId: string): Promise<void> {
    return this.record({ type: 'user.enabled', actor: 'admin', accountId });
  }

  // Signing keys (called by the admin API's key routes; `veil keys ... --local` works on the
  // files alone and records nothing).

  keyRotated(kid: string, alg: string, actor: 'system' | 'admin' = 'system'): Promise<void> {
    return this.record({ type: 'key.rotated', actor, details: { kid, alg } });
  }

  keyRetired(kid: string, actor: 'system' | 'admin' = 'system'): Promise<void> {
    return this.record({ type: 'key.retired', actor, details: { kid } });
  }
}
