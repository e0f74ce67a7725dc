/**
 * The demo API: a resource server protected by @veil/resource-server. It owns an ECDH P-256 key
 * (generated once, kept in a 0600 file), publishes the public half at /jwks.json for Veil to
 * encrypt to, and serves one protected route.
 */
import fs from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Router } from '@koa/router';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import Koa from 'koa';
import { createVerifier, koaRequireAccessToken, type AccessTokenState } from '@veil/resource-server';

/** What Veil encrypts to by default for EC keys; published as the key's `alg`. */
export const DEMO_KEY_ALG = 'ECDH-ES+A256KW';

export interface DemoKey extends JWK {
  kty: 'EC';
  crv: 'P-256';
  kid: string;
  d: string;
  alg: typeof DEMO_KEY_ALG;
  use: 'enc';
}

export interface DemoApiOptions {
  /** 0 picks a free port. */
  port: number;
  /** Interface to listen on. Default `localhost`. */
  host?: string;
  /** Veil's issuer URL. */
  issuer: string;
  /** The API's identifier: the resource URI tokens must carry as `aud`. */
  identifier: string;
  /** Where the private key lives; created on first start, never overwritten. */
  keyFile: string;
  /** Scope /api/hello requires. Default `read`. */
  scope?: string;
  /**
   * The origin clients call the API at, for the URL DPoP proofs must name (behind a proxy).
   * Default: the URL the API listens on, as the request's Host header says.
   */
  publicOrigin?: string;
  /** Turns on RFC 7662 introspection with the credentials `veil resources create` printed. */
  introspection?: { clientId: string; clientSecret: string };
  log?: (line: string) => void;
}

export interface DemoApi {
  url: string;
  jwksUri: string;
  kid: string;
  close(): Promise<void>;
}

function isDemoKey(value: unknown): value is DemoKey {
  const k = value as Partial<DemoKey> | null;
  return (
    typeof k === 'object' &&
    k !== null &&
    k.kty === 'EC' &&
    k.crv === 'P-256' &&
    typeof k.kid === 'string' &&
    typeof k.x === 'string' &&
    typeof k.y === 'string' &&
    typeof k.d === 'string'
  );
}

async function generateDemoKey(): Promise<DemoKey> {
  const { privateKey } = await generateKeyPair(DEMO_KEY_ALG, { crv: 'P-256', extractable: true });
  const jwk = await exportJWK(privateKey);
  // The RFC 7638 thumbprint only covers the public members, so it is the public key's too.
  const kid = await calculateJwkThumbprint(jwk);
  return { ...jwk, kty: 'EC', crv: 'P-256', d: jwk.d!, kid, alg: DEMO_KEY_ALG, use: 'enc' };
}

/** Loads the key file, or creates it (0600, exclusive) when absent; an unreadable file stops start-up. */
export async function loadOrCreateDemoKey(file: string): Promise<{ key: DemoKey; created: boolean }> {
  let raw: string | undefined;
  try {
    raw = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (raw !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      throw new Error(`${file} is not valid JSON; fix or remove it (it is never overwritten)`);
    }
    if (!isDemoKey(parsed)) throw new Error(`${file} is not a private EC P-256 JWK with a kid`);
    return { key: parsed, created: false };
  }

  const key = await generateDemoKey();
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    // 'wx' fails instead of clobbering a key another process wrote meanwhile.
    await fs.writeFile(file, `${JSON.stringify(key, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateDemoKey(file);
    throw err;
  }
  return { key, created: true };
}

/** Only the public members, listed explicitly so a private part can never leak into /jwks.json. */
export function publicJwk(key: DemoKey): JWK {
  return { kty: key.kty, crv: key.crv, x: key.x, y: key.y, kid: key.kid, alg: key.alg, use: key.use };
}

/** Quotes a value for a POSIX shell only when it needs it. */
function shellArg(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

function displayHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

export async function startDemoApi(options: DemoApiOptions): Promise<DemoApi> {
  const log = options.log ?? ((line: string) => console.log(line));
  const scope = options.scope ?? 'read';
  const host = options.host ?? 'localhost';
  const { key, created } = await loadOrCreateDemoKey(options.keyFile);

  const verifier = createVerifier({
    issuer: options.issuer,
    audience: options.identifier,
    decryptionKeys: [key],
    ...(options.introspection && { introspect: options.introspection }),
  });
  const jwks = { keys: [publicJwk(key)] };

  const router = new Router<AccessTokenState>();
  router.get('/jwks.json', (ctx) => {
    ctx.set('cache-control', 'public, max-age=300');
    ctx.type = 'application/jwk-set+json';
    ctx.body = JSON.stringify(jwks);
  });
  // Bearer tokens, and DPoP-bound tokens with their proof (`Authorization: DPoP` and a `DPoP` header).
  router.get('/api/hello', koaRequireAccessToken(verifier, { scopes: [scope], ...(options.publicOrigin && { publicOrigin: options.publicOrigin }) }), (ctx) => {
    const { claims } = ctx.state.accessToken;
    ctx.body = { message: `Hello, ${claims.sub}`, sub: claims.sub, client_id: claims.client_id, scope: claims.scope ?? '' };
  });

  const app = new Koa();
  app.use(router.routes()).use(router.allowedMethods());

  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(options.port, host, () => resolve(s)).once('error', reject);
  });
  const url = `http://${displayHost(host)}:${(server.address() as AddressInfo).port}`;
  const jwksUri = `${url}/jwks.json`;

  log(`demo API listening on ${url} (${created ? 'generated' : 'loaded'} key ${key.kid} in ${options.keyFile})`);
  log(`jwks_uri: ${jwksUri}`);
  log('register it with Veil:');
  log(`  npx veil resources create --identifier ${shellArg(options.identifier)} --name "Demo API" --scope "${scope}" --jwks-uri ${shellArg(jwksUri)}`);
  log(`then: curl -H "Authorization: Bearer $ACCESS_TOKEN" ${url}/api/hello   (token for resource ${options.identifier}, scope ${scope})`);
  log(`DPoP-bound tokens: Authorization: DPoP $ACCESS_TOKEN with a DPoP proof for GET ${options.publicOrigin ?? url}/api/hello`);
  log(options.introspection ? 'introspection: on' : 'introspection: off (set DEMO_API_INTROSPECTION_CLIENT_ID and _SECRET to turn it on)');

  return {
    url,
    jwksUri,
    kid: key.kid,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
