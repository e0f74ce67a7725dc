/**
 * The audit event types (pure data, no dependencies: the admin contract and the CLI import it).
 * Each is the row of the domain event of the same name (events/subscribers/audit.ts).
 */
export const AUDIT_EVENT_TYPES = [
  'login.succeeded',
  'login.failed',
  'login.locked',
  'consent.granted',
  'consent.withdrawn',
  'token.revoked',
  'token.reused',
  'token.exchanged',
  'client.created',
  'client.updated',
  'client.deleted',
  'resource.created',
  'resource.deleted',
  'resource.updated',
  'user.created',
  'user.disabled',
  'user.enabled',
  'user.attribute_set',
  'user.attribute_deleted',
  'key.rotated',
  'key.retired',
  'policy.created',
  'policy.deleted',
  'he.decided',
  'he.aggregated',
] as const;

export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

/** `login`, `consent`, ...: a filter on every type of that category. */
export const AUDIT_EVENT_CATEGORIES: readonly string[] = [...new Set(AUDIT_EVENT_TYPES.map((t) => t.split('.')[0]!))];

/** Whether `value` names an event type or a category of them (the read side's `type` filter). */
export function isAuditTypeFilter(value: string): boolean {
  return (AUDIT_EVENT_TYPES as readonly string[]).includes(value) || AUDIT_EVENT_CATEGORIES.includes(value);
}
