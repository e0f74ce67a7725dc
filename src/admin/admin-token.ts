/**
 * The admin API's bearer token when none is configured: generated once into KEYS_DIR/admin-token
 * (mode 0600), so the admin API is never open, and the CLI on the same machine finds it there by
 * itself. Shared by the server (src/key-material.ts) and the CLI (src/cli/context.ts).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { KeyFileError } from '../crypto/keys.js';

export const ADMIN_TOKEN_FILE = 'admin-token';

/** What the file may hold: the same characters an HTTP header value may carry, 16+ of them. */
const TOKEN_SHAPE = /^[\x21-\x7e]{16,}$/;

export function adminTokenPath(keysDir: string): string {
  return path.join(keysDir, ADMIN_TOKEN_FILE);
}

/** The token in `file` (trimmed), undefined when the file does not exist; anything else unusable is a KeyFileError. */
export async function readAdminTokenFile(file: string): Promise<string | undefined> {
  try {
    return shaped(file, await fs.readFile(file, 'utf8'));
  } catch (err) {
    return absentOr(file, err);
  }
}

/** `readAdminTokenFile` for the CLI, which resolves its options synchronously. */
export function readAdminTokenFileSync(file: string): string | undefined {
  try {
    return shaped(file, readFileSync(file, 'utf8'));
  } catch (err) {
    return absentOr(file, err);
  }
}

function absentOr(file: string, err: unknown): undefined {
  if (err instanceof KeyFileError) throw err;
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
  throw new KeyFileError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
}

function shaped(file: string, raw: string): string {
  const token = raw.trim();
  // Never quote the content: it is (or was meant to be) a secret.
  if (!TOKEN_SHAPE.test(token)) throw new KeyFileError(`${file} must hold one token of at least 16 printable characters`);
  return token;
}

/**
 * Loads KEYS_DIR/admin-token or creates it. The file is written whole under a temporary name
 * and linked into place, so processes racing at first start (cluster workers, two servers on one
 * KEYS_DIR) all end with the one token that won, and nobody reads a half-written file.
 */
export async function loadOrCreateAdminToken(keysDir: string): Promise<{ token: string; created: boolean; file: string }> {
  const file = adminTokenPath(keysDir);
  const existing = await readAdminTokenFile(file);
  if (existing !== undefined) return { token: existing, created: false, file };
  const token = randomBytes(32).toString('base64url');
  try {
    await fs.mkdir(keysDir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    await fs.writeFile(tmp, `${token}\n`, { mode: 0o600, flag: 'wx' });
    try {
      await fs.link(tmp, file);
    } finally {
      await fs.unlink(tmp).catch(() => {});
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateAdminToken(keysDir);
    throw new KeyFileError(`cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return { token, created: true, file };
}
