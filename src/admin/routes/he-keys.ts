/**
 * `/admin/keys/he`: the Paillier keys of confidential claims. `GET` lists them (public facts:
 * kid, size, dates); `POST /admin/keys/he/rotate` makes a new key active and keeps the old one
 * until its tokens have expired (he/he-keys.ts). This process re-reads the ring at once, the
 * others within KEYS_RELOAD_SECONDS.
 */
import type { Router } from '@koa/router';
import type { Envelope } from '../../crypto/master-key.js';
import type { EventSink } from '../../events/domain-events.js';
import type { HeKeyStore, StoredHeKey } from '../../he/he-key-store.js';
import { rotateHeKey } from '../../he/he-keys.js';
import { jsonBody } from '../../http/body.js';

export interface HeKeysRoutesDeps {
  store: HeKeyStore;
  envelope: Envelope;
  bits: 2048 | 3072;
  graceSeconds: number;
  /** Re-reads the ring in this process after a change. */
  refresh(): Promise<void>;
}

/** What the admin API shows of a key: never the sealed primes. */
export interface HeKeyInfo {
  kid: string;
  bits: number;
  status: 'active' | 'retiring';
  created_at: string;
  drop_after?: string;
}

export const toHeKeyInfo = (k: StoredHeKey): HeKeyInfo => ({
  kid: k.kid,
  bits: k.bits,
  status: k.retired_at ? 'retiring' : 'active',
  created_at: k.created_at,
  ...(k.drop_after ? { drop_after: k.drop_after } : {}),
});

export function registerHeKeyRoutes(router: Router, he: HeKeysRoutesDeps, deps: { events: EventSink }): void {
  router.get('/admin/keys/he', async (ctx) => {
    ctx.body = { keys: (await he.store.read()).map(toHeKeyInfo) };
  });

  router.post('/admin/keys/he/rotate', jsonBody(), async (ctx) => {
    const { activated, keys } = await rotateHeKey(he.store, he.envelope, { bits: he.bits, graceSeconds: he.graceSeconds });
    await he.refresh();
    await deps.events.emit({ type: 'key.rotated', kid: activated.kid, alg: `Paillier-${activated.bits}`, actor: 'admin' });
    ctx.body = { activated: toHeKeyInfo(activated), keys: keys.map(toHeKeyInfo) };
  });
}
