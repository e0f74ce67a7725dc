/** `veil audit`: reads the audit trail (`GET /admin/audit`), newest first. */
import { type Command, InvalidArgumentError } from 'commander';
import { AUDIT_LIMIT_MAX, parseTimeBound } from '../../admin/contract.js';
import { AUDIT_EVENT_CATEGORIES, AUDIT_EVENT_TYPES, isAuditTypeFilter } from '../../audit/event-types.js';
import type { AuditEvent } from '../admin-client.js';
import type { CliContext } from '../context.js';

interface AuditOptions {
  since: string;
  until?: string;
  type?: string;
  limit?: number;
}

/** Checked here for a usage error before any request; sent as given, so durations count back from the server's clock. */
function timeBound(value: string): string {
  if (!parseTimeBound(value)) throw new InvalidArgumentError('must be an ISO 8601 time with a zone (2026-11-23T00:00:00Z) or a duration (15m, 1h, 7d)');
  return value;
}

function eventType(value: string): string {
  if (!isAuditTypeFilter(value)) throw new InvalidArgumentError(`must be one of ${AUDIT_EVENT_TYPES.join(', ')}, or a category (${AUDIT_EVENT_CATEGORIES.join(', ')})`);
  return value;
}

function limit(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > AUDIT_LIMIT_MAX) throw new InvalidArgumentError(`must be a whole number from 1 to ${AUDIT_LIMIT_MAX}`);
  return Number(value);
}

export function registerAudit(program: Command, ctx: CliContext): void {
  program
    .command('audit')
    .description('show the audit trail (sign-ins, consents, revocations, admin changes, key rotation), newest first')
    .requiredOption('--since <time>', 'from this time: ISO 8601 (2026-11-23T00:00:00Z) or a duration back from now (15m, 1h, 7d)', timeBound)
    .option('--until <time>', 'up to this time (same forms as --since)', timeBound)
    .option('--type <type>', 'only this event type (login.failed) or category (login)', eventType)
    .option('--limit <n>', `at most this many events (default 100, at most ${AUDIT_LIMIT_MAX})`, limit)
    .action(async (opts: AuditOptions) => {
      const events = await ctx.client().listAuditEvents(opts);
      ctx.output().list<AuditEvent>('events', events, [
        { header: 'at', value: (e) => e.at },
        { header: 'type', value: (e) => e.type },
        { header: 'actor', value: (e) => e.actor },
        { header: 'account_id', value: (e) => e.account_id },
        { header: 'client_id', value: (e) => e.client_id },
        { header: 'details', value: (e) => (Object.keys(e.details).length ? JSON.stringify(e.details) : '') },
      ]);
    });
}
