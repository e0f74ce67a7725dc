/**
 * Veil's own key material in KEYS_DIR (KEYS_STORE=file, key-store-file.ts): the signing keys
 * (published, public parts only, at /jwks) and, when COOKIE_KEYS is not configured, the
 * cookie-signing keys. Generated on the first start, loaded on later ones, never overwritten: a
 * file that cannot be read or parsed stops start-up instead.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { VeilError } from '../errors/veil-error.js';
import { DEFAULT_SIGNING_ALGORITHMS } from './algorithms.js';

export const SIGNING_KEYS_FILE = 'signing-keys.json';
export const COOKIE_KEYS_FILE = 'cookie-keys.json';

/** RS256 first: it is the default ID token algorithm every relying party supports. */
const SIGNING_ALGORITHMS = DEFAULT_SIGNING_ALGORITHMS;

/** A key file is unusable, or a key-ring operation was refused; the message names only the server's own key files and ids. */
export class KeyFileError extends VeilError {
  constructor(message: string) {
    super('key_error', message);
  }
}

export interface SigningJwk extends JWK {
  kid: string;
  alg: string;
  use: 'sig';
}

/** The parsed JSON of a key file, or undefined when it does not exist; unreadable or invalid is a KeyFileError. */
export async function readJsonIfPresent(file: string): Promise<unknown> {
  let raw: string;
  try {
    raw = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new KeyFileError(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(raw);
  } catch {
    throw new KeyFileError(`${file} is not valid JSON; fix or remove it (it is never overwritten)`);
  }
}

/**
 * Writes the whole file under a temporary name, then links it into place: the link fails with
 * EEXIST rather than clobber a file another process created meanwhile, and nobody can ever
 * read a half-written file.
 */
async function writeSecretFile(file: string, data: unknown): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await fs.writeFile(tmp, `${JSON.stringify(data, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await fs.link(tmp, file);
  } finally {
    await fs.unlink(tmp).catch(() => {});
  }
}

/**
 * Key ids are the first 16 characters (96 bits) of the RFC 7638 thumbprint: unique among the
 * handful of keys in a JWKS, and short, because every sealed access token carries one.
 */
export async function shortThumbprint(jwk: JWK): Promise<string> {
  return (await calculateJwkThumbprint(jwk)).slice(0, 16);
}

async function generateSigningKey(alg: string): Promise<SigningJwk> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg.startsWith('RS') ? { modulusLength: 2048 } : {}) });
  const jwk = await exportJWK(privateKey);
  const kid = await shortThumbprint(jwk);
  return { ...jwk, kid, alg, use: 'sig' };
}

export function assertSigningKeys(file: string, value: unknown): SigningJwk[] {
  const keys = (value as { keys?: unknown })?.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw new KeyFileError(`${file} has no "keys" array`);
  for (const key of keys as SigningJwk[]) {
    if (typeof key?.kid !== 'string' || typeof key.alg !== 'string' || typeof key.kty !== 'string' || !key.d) {
      throw new KeyFileError(`${file} holds a key without kid, alg, kty or private part`);
    }
  }
  return keys as SigningJwk[];
}

export async function loadOrCreateSigningKeys(keysDir: string): Promise<{ keys: SigningJwk[]; created: boolean }> {
  const file = path.join(keysDir, SIGNING_KEYS_FILE);
  const existing = await readJsonIfPresent(file);
  if (existing !== undefined) return { keys: assertSigningKeys(file, existing), created: false };
  const keys = await Promise.all(SIGNING_ALGORITHMS.map(generateSigningKey));
  try {
    await writeSecretFile(file, { keys });
  } catch (err) {
    // Another process won the race to create it: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateSigningKeys(keysDir);
    throw new KeyFileError(`cannot write ${file}: ${(err as Error).message}`);
  }
  return { keys, created: true };
}

/** KEYS_DIR/cookie-keys.json, or undefined when there is none. */
export async function readCookieKeysFile(keysDir: string): Promise<string[] | undefined> {
  const file = path.join(keysDir, COOKIE_KEYS_FILE);
  const existing = await readJsonIfPresent(file);
  if (existing === undefined) return undefined;
  const keys = (existing as { keys?: unknown }).keys;
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string' && k.length >= 32)) {
    throw new KeyFileError(`${file} must hold {"keys": [strings of 32+ characters]}`);
  }
  return keys as string[];
}

export async function loadOrCreateCookieKeys(keysDir: string): Promise<string[]> {
  const file = path.join(keysDir, COOKIE_KEYS_FILE);
  const existing = await readCookieKeysFile(keysDir);
  if (existing) return existing;
  const keys = [randomBytes(32).toString('base64url')];
  try {
    await writeSecretFile(file, { keys });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateCookieKeys(keysDir);
    throw new KeyFileError(`cannot write ${file}: ${(err as Error).message}`);
  }
  return keys;
}
