/**
 * Audit event repository (PostgreSQL `audit_events`): append and read back, newest first.
 * It stores what it is given; keeping personal data out is the job of `audit/audit-log.ts`,
 * the only writer.
 */
import type { Prisma } from '../generated/prisma/client.js';
import type { PrismaClient } from './database.js';

/** Who caused the event: the signed-in user, an administrator, an OAuth client, or Veil itself. */
export type AuditActor = 'user' | 'admin' | 'client' | 'system';

/** The most events one `list` returns, whatever the caller asks for. */
export const AUDIT_LIST_MAX = 1000;

export interface AuditEventInput {
  type: string;
  actor: AuditActor;
  accountId?: string | null | undefined;
  clientId?: string | null | undefined;
  details?: Record<string, unknown> | undefined;
}

export interface AuditEventRecord {
  /** bigserial, as a string (it does not fit a JSON number in general). */
  id: string;
  at: Date;
  type: string;
  accountId: string | null;
  clientId: string | null;
  actor: AuditActor;
  details: Record<string, unknown>;
}

export interface AuditEventQuery {
  /** Inclusive lower bound on `at`. */
  since: Date;
  /** Exclusive upper bound on `at`. */
  until?: Date | undefined;
  /** An exact type (`login.failed`), or a category (`login`) for every `login.*` type. */
  type?: string | undefined;
  /** Clamped to 1..AUDIT_LIST_MAX. */
  limit: number;
}

export class AuditEventRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async record(event: AuditEventInput): Promise<void> {
    await this.prisma.auditEvent.create({
      data: {
        type: event.type,
        actor: event.actor,
        accountId: event.accountId ?? null,
        clientId: event.clientId ?? null,
        details: (event.details ?? {}) as Prisma.InputJsonObject,
      },
      select: { id: true },
    });
  }

  /** Events in [since, until), newest first (ties broken by insertion order). */
  async list(query: AuditEventQuery): Promise<AuditEventRecord[]> {
    const limit = Math.min(Math.max(Math.trunc(query.limit) || 1, 1), AUDIT_LIST_MAX);
    const type = query.type === undefined ? {} : query.type.includes('.') ? { type: query.type } : { type: { startsWith: `${query.type}.` } };
    const rows = await this.prisma.auditEvent.findMany({
      where: { at: { gte: query.since, ...(query.until ? { lt: query.until } : {}) }, ...type },
      orderBy: [{ at: 'desc' }, { id: 'desc' }],
      take: limit,
    });
    return rows.map((row) => ({
      id: row.id.toString(),
      at: row.at,
      type: row.type,
      accountId: row.accountId,
      clientId: row.clientId,
      actor: row.actor as AuditActor,
      details: (row.details ?? {}) as Record<string, unknown>,
    }));
  }
}
