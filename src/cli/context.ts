/**
 * What every command needs from the program. Global options are only known once commander has
 * parsed argv, so the context hands them out lazily, from inside the actions.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { adminTokenPath, readAdminTokenFileSync } from '../admin/admin-token.js';
import { isLoopback } from '../config.js';
import { KeyFileError } from '../crypto/keys.js';
import { AdminClient } from './admin-client.js';
import { CliError } from './errors.js';
import type { CliIo, Output } from './output.js';

export interface GlobalOptions {
  adminUrl: string;
  adminToken?: string;
  json?: boolean;
}

export interface CliContext {
  io: CliIo;
  output(): Output;
  client(): AdminClient;
}

export function adminClientFrom(options: GlobalOptions, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): AdminClient {
  const token = resolveAdminToken(options, env, cwd);
  try {
    return new AdminClient({ baseUrl: options.adminUrl, token });
  } catch (err) {
    // Bad --admin-url / token: the caller's mistake, not an internal error.
    throw new CliError('invalid_input', (err as Error).message);
  }
}

/**
 * The admin token, first found wins: --admin-token / VEIL_ADMIN_TOKEN, then the server's own
 * settings ADMIN_TOKEN and ADMIN_TOKEN_FILE, then KEYS_DIR/admin-token, the token Veil generated
 * when none is configured. Settings come from the environment, then `.env` in the working
 * directory (read, not loaded: the server's .env never overrides the environment). The generated
 * file is only sent to an admin URL on this machine: it belongs to the local server.
 */
export function resolveAdminToken(options: GlobalOptions, env: NodeJS.ProcessEnv, cwd: string): string | undefined {
  const given = options.adminToken?.trim();
  if (given) return given;
  const dotenvFile = path.join(cwd, '.env');
  let fromFile: Record<string, string> | undefined;
  const setting = (name: string): string | undefined => {
    const value = env[name]?.trim();
    if (value) return value;
    fromFile ??= existsSync(dotenvFile) ? parseDotenv(readFileSync(dotenvFile)) : {};
    return fromFile[name]?.trim() || undefined;
  };
  const configured = setting('ADMIN_TOKEN');
  if (configured) return configured;
  try {
    const file = setting('ADMIN_TOKEN_FILE');
    if (file) {
      const token = readAdminTokenFileSync(path.resolve(cwd, file));
      if (token === undefined) throw new CliError('key_error', `ADMIN_TOKEN_FILE: ${file} does not exist`);
      return token;
    }
    if (!isLocal(options.adminUrl)) return undefined;
    // KEYS_DIR as config.ts resolves it: relative to the working directory, "keys" by default.
    return readAdminTokenFileSync(adminTokenPath(path.resolve(cwd, setting('KEYS_DIR') ?? 'keys')));
  } catch (err) {
    if (err instanceof KeyFileError) throw new CliError('key_error', `${err.message} (run as the user Veil runs as, or pass --admin-token)`);
    throw err;
  }
}

function isLocal(adminUrl: string): boolean {
  try {
    return isLoopback(new URL(adminUrl).hostname.replace(/^\[(.*)\]$/, '$1'));
  } catch {
    return false; // AdminClient reports the bad URL
  }
}
