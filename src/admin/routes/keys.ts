/**
 * `/admin/keys`: the signing-key lifecycle of a running deployment (docs/ADMIN_API.md): list,
 * rotate, retire. Changes go to the key store (KEYS_DIR under its lock file, or PostgreSQL under
 * the ring's row lock), then every Veil process on every host is told to reload, so a
 * deployment rotates without a restart.
 */
import type { Router } from '@koa/router';
import { retireKey, rotateKeys, readKeyRing } from '../../crypto/key-ring.js';
import type { KeyStore } from '../../crypto/key-store.js';
import type { Envelope } from '../../crypto/master-key.js';
import { jsonBody } from '../../http/body.js';
import { retireKeyBody, rotateKeysBody, toKeyInfo } from '../contract.js';
import { parse } from '../parse.js';
import type { AdminDeps } from '../server.js';

export interface KeysRoutesDeps {
  store: KeyStore;
  envelope: Envelope;
  /** How long a key that stopped signing stays published. */
  graceSeconds: number;
  /** Reload here and tell the other processes. */
  changed(): Promise<void>;
}

export function registerKeyRoutes(router: Router, keys: KeysRoutesDeps, deps: Pick<AdminDeps, 'events'>): void {
  const json = jsonBody();

  router.get('/admin/keys', async (ctx) => {
    const ring = await readKeyRing(keys.store);
    ctx.body = { keys: (ring?.live() ?? []).map(toKeyInfo) };
  });

  router.post('/admin/keys/rotate', json, async (ctx) => {
    const { algs } = parse(rotateKeysBody, ctx.request.body);
    const { ring, activated } = await rotateKeys(keys.store, keys.envelope, { algs, graceSeconds: keys.graceSeconds });
    await keys.changed();
    for (const key of activated) await deps.events.emit({ type: 'key.rotated', kid: key.kid, alg: key.alg, actor: 'admin' });
    ctx.body = { activated: activated.map(toKeyInfo), keys: ring.live().map(toKeyInfo) };
  });

  router.post('/admin/keys/:kid/retire', json, async (ctx) => {
    const { force } = parse(retireKeyBody, ctx.request.body);
    const ring = await retireKey(keys.store, ctx.params.kid!, { force });
    await keys.changed();
    await deps.events.emit({ type: 'key.retired', kid: ctx.params.kid!, actor: 'admin' });
    ctx.body = { keys: ring.live().map(toKeyInfo) };
  });
}
