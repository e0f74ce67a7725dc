/**
 * A Lua script run by its SHA1 (EVALSHA), sent in full (EVAL) only when Redis answers that it
 * does not have it (a restart, a failover, SCRIPT FLUSH). ioredis' `defineCommand` makes the
 * same choice per socket, but its auto-pipeline hands each batch a fresh stand-in socket, so
 * every call went out as EVAL with the whole source: profiled at about 9% of Veil's CPU spent
 * writing script text to Redis, and Redis hashing it again on every call.
 */
import { createHash } from 'node:crypto';
import type { RedisClient } from './redis-connection.js';

export class LuaScript<Result> {
  readonly sha: string;

  constructor(readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  async run(client: RedisClient, keys: readonly string[], args: ReadonlyArray<string | number> = []): Promise<Result> {
    try {
      return (await client.evalsha(this.sha, keys.length, ...keys, ...args)) as Result;
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return (await client.eval(this.lua, keys.length, ...keys, ...args)) as Result;
    }
  }
}
