/** Starts a real Veil in-process against real PostgreSQL and Redis (or embedded stores). */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { startVeil, type StartOptions, type Veil } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { freePort } from './net.js';
import { assertNoSecretsLogged, rememberFields, rememberSecret } from './secrets.js';
import type { TestStores } from './stores.js';

export interface TestVeil extends Veil {
  issuer: string;
  logs: string[];
  tmpDir: string;
  admin<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  stop(): Promise<void>;
}

/** The admin token a Veil without ADMIN_TOKEN generated into its KEYS_DIR (for Veils run as child processes). */
export async function generatedAdminToken(keysDir: string): Promise<string> {
  const token = (await fs.readFile(path.join(keysDir, 'admin-token'), 'utf8')).trim();
  rememberSecret(token, 'admin token');
  return token;
}

export async function startTestVeil(stores: TestStores | undefined, env: Record<string, string> = {}, options: Pick<StartOptions, 'grants'> = {}): Promise<TestVeil> {
  const tmpDir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-test-'));
  const port = Number(env.PORT ?? (await freePort()));
  const issuer = env.ISSUER ?? `http://127.0.0.1:${port}`;
  const config = loadConfig({
    NODE_ENV: 'test',
    PORT: String(port),
    HOST: '127.0.0.1',
    ISSUER: issuer,
    ADMIN_PORT: '0',
    KEYS_DIR: path.join(tmpDir, 'keys'),
    VEIL_DATA_DIR: path.join(tmpDir, 'data'),
    VEIL_SEED: 'off',
    LOG_LEVEL: 'info',
    // Test resource servers and clients serve their JWK Sets on 127.0.0.1 (the SSRF tests set 'false').
    RESOURCE_JWKS_ALLOW_PRIVATE: 'true',
    ...(stores ? { DATABASE_URL: stores.databaseUrl, REDIS_URL: stores.redisUrl, REDIS_KEY_PREFIX: stores.keyPrefix } : {}),
    ...env,
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  const veil = await startVeil(config, { ...options, logger: createLogger(config.logLevel, sink), print: (t) => logs.push(t) });
  // Configured or generated into KEYS_DIR/admin-token: either way it must never reach the logs.
  rememberSecret(veil.adminToken, 'admin token');
  return Object.assign(veil, {
    issuer,
    logs,
    tmpDir,
    async admin<T>(method: string, p: string, body?: unknown) {
      rememberFields(body, ['password', 'client_secret', 'introspection_client_secret', 'email']);
      const res = await fetch(`${veil.adminUrl}${p}`, {
        method,
        headers: {
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          authorization: `Bearer ${veil.adminToken}`,
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      const parsed = (text ? JSON.parse(text) : undefined) as T;
      rememberFields(parsed, ['password', 'client_secret', 'introspection_client_secret']);
      return { status: res.status, body: parsed };
    },
    /** Stops Veil, then fails if any secret the helpers saw in this process reached its logs (whatever LOG_LEVEL). */
    async stop() {
      let closeFailure: { error: unknown } | undefined;
      try {
        await veil.close();
        await fs.rm(tmpDir, { recursive: true, force: true });
      } catch (error) {
        closeFailure = { error };
      }
      // After close(), so the shutdown's own lines are checked too; a leak is reported ahead of a failed close.
      try {
        assertNoSecretsLogged(logs);
      } catch (leak) {
        // The throw skips the rest of the caller's `after` (its store cleanup); don't let
        // connections left open keep the failed test file running forever.
        setTimeout(() => process.exit(1), 60_000).unref();
        throw leak;
      }
      if (closeFailure) throw closeFailure.error;
    },
  });
}
