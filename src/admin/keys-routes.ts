/**
 * Admin API for the signing-key lifecycle of a running deployment (docs/ADMIN_API.md):
 * list, rotate, retire. Changes go to the shared KEYS_DIR under its lock file, then every
 * Veil process is told to reload (KeyChanges), so a cluster rotates without a restart.
 */
import { Router } from '@koa/router';
import type { Middleware } from 'koa';
import { z } from 'zod';
import { retireKey, rotateKeys, readKeyRing, type RingKey } from '../crypto/key-ring.js';
import type { Envelope } from '../crypto/master-key.js';
import { jsonBody } from '../http/body.js';

export const rotateKeysBody = z.object({ algs: z.array(z.string().max(20)).max(10).optional() });
export const retireKeyBody = z.object({ force: z.boolean().optional() });

export interface PublicKeyInfo {
  kid: string;
  alg: string;
  status: RingKey['status'];
  created_at: string;
  activated_at?: string;
  retire_after?: string;
}

export const toKeyInfo = (k: RingKey): PublicKeyInfo => ({
  kid: k.kid,
  alg: k.alg,
  status: k.status,
  created_at: k.created_at,
  ...(k.activated_at ? { activated_at: k.activated_at } : {}),
  ...(k.retire_after ? { retire_after: k.retire_after } : {}),
});

export interface KeysRoutesDeps {
  keysDir: string;
  envelope: Envelope;
  /** How long a key that stopped signing stays published. */
  graceSeconds: number;
  /** Reload here and tell the other processes. */
  changed(): Promise<void>;
  onRotated?(key: RingKey): Promise<void> | void;
  onRetired?(kid: string): Promise<void> | void;
  /** Turns a bad request into the admin API's error (thrown). */
  badRequest(message: string): Error;
}

export function keysRoutes(deps: KeysRoutesDeps): Middleware {
  const router = new Router({ prefix: '/admin/keys' });
  const json = jsonBody();

  router.get('/', async (ctx) => {
    const ring = await readKeyRing(deps.keysDir);
    ctx.body = { keys: (ring?.live() ?? []).map(toKeyInfo) };
  });

  router.post('/rotate', json, async (ctx) => {
    const parsed = rotateKeysBody.safeParse(ctx.request.body ?? {});
    if (!parsed.success) throw deps.badRequest(parsed.error.issues[0]!.message);
    const { ring, activated } = await rotateKeys(deps.keysDir, deps.envelope, { algs: parsed.data.algs, graceSeconds: deps.graceSeconds });
    await deps.changed();
    for (const key of activated) await deps.onRotated?.(key);
    ctx.body = { activated: activated.map(toKeyInfo), keys: ring.live().map(toKeyInfo) };
  });

  router.post('/:kid/retire', json, async (ctx) => {
    const parsed = retireKeyBody.safeParse(ctx.request.body ?? {});
    if (!parsed.success) throw deps.badRequest(parsed.error.issues[0]!.message);
    const ring = await retireKey(deps.keysDir, ctx.params.kid!, { force: parsed.data.force });
    await deps.changed();
    await deps.onRetired?.(ctx.params.kid!);
    ctx.body = { keys: ring.live().map(toKeyInfo) };
  });

  return router.routes() as Middleware;
}
