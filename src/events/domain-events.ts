/**
 * Veil's domain events: what happened, said once by the code that made it happen (a service, or
 * the route or hook that owns the step), after the change succeeded. Subscribers turn each event
 * into its side effects: the audit row (subscribers/audit.ts), the log line (subscribers/log.ts)
 * and the metric (subscribers/metrics.ts). Call sites no longer write any of those themselves.
 *
 * Payloads hold identifiers Veil made up (account ids, client ids, grant ids, key ids), registry
 * identifiers, scopes and enumerated reasons: never a password, an email, a name, an address, a
 * token or a secret. Whatever is here may reach the log and the audit trail.
 *
 * A subscriber that throws or rejects is logged ("event subscriber failed") and swallowed: the
 * change has happened, and its side effects must not report it as failed. `emit` resolves once
 * every subscriber has finished (so an audit row is written before the response goes out) and
 * never rejects; hooks that cannot wait call it with `void`.
 */
import { errorFields, type Logger } from '../observability/logger.js';

/** A login-throttle scope: the account (from this address), the address, or the device cookie. */
export type LockScope = 'account' | 'ip' | 'device';
export type KeyActor = 'system' | 'admin';

export type DomainEvent =
  // Sign-in at the login form. A failure carries no account id: whether the email belongs to an
  // account is exactly what the login page does not reveal.
  | { type: 'login.succeeded'; accountId: string; clientId: string }
  /** Wrong email or password; `locked`: the throttle scopes this failure locked, if any. */
  | { type: 'login.failed'; clientId: string; interaction: string; locked: LockScope[] }
  /** Refused unchecked: a lock on `scope`, or the account's progressive delay (`reason`). */
  | { type: 'login.locked'; clientId: string; interaction: string; scope: LockScope; reason: 'locked' | 'delayed' }
  // Consent.
  /** What this consent added: OIDC scopes and claims, and scopes per resource identifier. */
  | { type: 'consent.granted'; accountId: string; clientId: string; grantId: string; scopes: string[]; claims?: string[] | undefined; resources: Record<string, string[]> }
  /** Every grant of the account to the client ended (`grants`: how many), by the user or an administrator. */
  | { type: 'consent.withdrawn'; accountId: string; clientId: string; actor: 'user' | 'admin'; grants: number }
  // Tokens.
  /** At the revocation endpoint, by the client. */
  | { type: 'token.revoked'; clientId: string; kind: string; grantId?: string | undefined }
  /**
   * A consumed code or refresh token presented again: the grant was revoked. `concurrent`: during
   * its first redemption (the adapter's lost consume, the token edge), else later (oidc-provider).
   */
  | { type: 'token.reused'; model: string; clientId?: string | undefined; grantId: string; concurrent: boolean }
  /**
   * RFC 8693 token exchange at /token, once the new token is sealed: `clientId` (the actor)
   * exchanged a token of `subjectClientId` for `subjectAudience` for one for `audience`.
   */
  | {
      type: 'token.exchanged';
      clientId: string;
      accountId?: string | undefined;
      subjectClientId: string;
      grantId?: string | undefined;
      subjectAudience: string;
      audience: string;
      scope: string;
    }
  // Administration.
  | { type: 'client.created'; clientId: string; grantTypes?: readonly string[] | undefined; authMethod?: string | undefined }
  /** Which fields an update replaced, and the client's scopes after it. */
  | {
      type: 'client.updated';
      clientId: string;
      fields: readonly string[];
      scope?: string | undefined;
      resourceScopes?: Record<string, string[]> | undefined;
      grantTypes?: readonly string[] | undefined;
    }
  | { type: 'client.deleted'; clientId: string }
  | { type: 'resource.created'; identifier: string; introspectionClientId: string }
  /** `clients`: the clients it was taken off. */
  | { type: 'resource.deleted'; identifier: string; clients: readonly string[] }
  /** `forced`: its subject mode changed although tokens for it may still be live. */
  | { type: 'resource.updated'; identifier: string; subjectMode: 'pairwise' | 'public'; forced: boolean }
  | { type: 'user.created'; accountId: string }
  | { type: 'user.disabled'; accountId: string }
  | { type: 'user.enabled'; accountId: string }
  /** An account attribute set or deleted by the operator: its name only, never the value. */
  | { type: 'user.attribute_set'; accountId: string; name: string }
  | { type: 'user.attribute_deleted'; accountId: string; name: string }
  // Signing keys.
  | { type: 'key.rotated'; kid: string; alg: string; actor: KeyActor }
  | { type: 'key.retired'; kid: string; actor: KeyActor }
  // Confidential claims (src/he/decisions/): identifiers only, never a ciphertext, a decrypted
  // value or the decision itself.
  | { type: 'policy.created'; clientId: string; policy: string; claim: string; kind: string; op: string }
  | { type: 'policy.deleted'; clientId: string; policy: string }
  /** A blinded decision answered; `cached`: the earlier answer for this (token, node, policy) again. */
  | { type: 'he.decided'; clientId: string; accountId?: string | undefined; policy: string; claim: string; cached: boolean }
  /** An aggregate answered over `count` distinct subjects. */
  | { type: 'he.aggregated'; clientId: string; policy: string; claim: string; count: number };

export type DomainEventType = DomainEvent['type'];
export type EventOf<T extends DomainEventType> = Extract<DomainEvent, { type: T }>;

/** One function per event type: subscribers' mapping tables, checked complete by the compiler. */
export type EventTable<R> = { [T in DomainEventType]: (event: EventOf<T>) => R };

/** Looks up `event`'s entry in `table` and calls it (the one cast the union needs). */
export function dispatch<R>(table: EventTable<R>, event: DomainEvent): R {
  return (table[event.type] as (event: DomainEvent) => R)(event);
}

export type Subscriber = (event: DomainEvent) => void | Promise<void>;

/** What emitting code needs. */
export interface EventSink {
  emit(event: DomainEvent): Promise<void>;
}

/** For code built without subscribers (unit tests of a service alone): events go nowhere. */
export const NO_EVENTS: EventSink = { emit: () => Promise.resolve() };

export class DomainEvents implements EventSink {
  readonly #subscribers: Array<{ name: string; handle: Subscriber }> = [];

  constructor(private readonly logger: Logger) {}

  /** Subscribers see every event, in subscription order; `name` identifies a failing one in the log. */
  subscribe(name: string, handle: Subscriber): () => void {
    const entry = { name, handle };
    this.#subscribers.push(entry);
    return () => {
      const at = this.#subscribers.indexOf(entry);
      if (at >= 0) this.#subscribers.splice(at, 1);
    };
  }

  /** Runs every subscriber; resolves when all have finished, never rejects. */
  async emit(event: DomainEvent): Promise<void> {
    await Promise.all(
      this.#subscribers.map(async ({ name, handle }) => {
        try {
          await handle(event);
        } catch (err) {
          // The event type only: its fields are the subscriber's business, not the error log's.
          this.logger.error({ err: errorFields(err), subscriber: name, domainEvent: event.type }, 'event subscriber failed');
        }
      }),
    );
  }
}
