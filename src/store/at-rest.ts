/**
 * How the short-lived store keeps bearer values unusable at rest: every id (a refresh token,
 * an authorization code, a session id...) becomes a keyed hash before it is part of a Redis
 * key, and every payload is encrypted, bound to its key. A Redis dump or replica then holds
 * neither a usable token nor personal data.
 *
 * While the master key is being rotated, ids hash differently under each configured master
 * key: look-ups try each (the current one first), writes use the current one.
 *
 * Ids are hashed under a key of their own (`short-lived-store-ids`), never the key that
 * encrypts the payloads. Entries written before that change are named with a hash under the
 * payload key; look-ups also try that legacy form (after every current one) so sessions and
 * tokens in flight during a deploy are not orphaned. Nothing is written under it any more, so
 * it can be dropped once REFRESH_TOKEN_TTL (the longest-lived entry) has passed since.
 */
import { createHmac } from 'node:crypto';
import type { Envelope } from '../crypto/master-key.js';

export interface AtRest {
  /** The stored forms of an id, current master key first. */
  ids(id: string): string[];
  seal(json: string, context: string): string;
  open(stored: string, context: string): string;
}

export function envelopeAtRest(envelope: Envelope): AtRest {
  const current = envelope.keys.map((_, i) => envelope.keyForIndex('short-lived-store-ids', i));
  const legacy = envelope.keys.map((_, i) => envelope.keyForIndex('short-lived-store', i));
  const hashKeys = [...current, ...legacy];
  return {
    ids: (id) => hashKeys.map((key) => createHmac('sha256', key).update(id).digest('base64url')),
    seal: (json, context) => envelope.seal(json, 'short-lived-store', context),
    open: (stored, context) => envelope.open(stored, 'short-lived-store', context),
  };
}

/** For tests of store semantics only: ids and payloads as given. */
export const plainAtRest: AtRest = {
  ids: (id) => [id],
  seal: (json) => json,
  open: (stored) => stored,
};
