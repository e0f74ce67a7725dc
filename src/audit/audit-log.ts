/**
 * The audit trail: who signed in or failed to, who consented or withdrew consent, which tokens
 * were revoked, what administrators changed, and key rotation. Rows are written by the audit
 * subscriber of the domain events (events/subscribers/audit.ts), which decides what goes into
 * each; this is the writing and reading side over the repository.
 *
 * Recording never fails the caller. An audit write that fails (PostgreSQL down, a bug) is logged
 * at error level, with `errorFields`, as "audit event not recorded", and the request goes on: a
 * sign-in or an admin change that has already happened must not be reported as failed, or be
 * refused, because its record could not be written. The price is that an outage of the audit
 * table loses events; the error log line (with the event type, never its details) is the trace
 * of each lost one. `record` never rejects, so the event it comes from is never reported as failed.
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
}
