/**
 * Builds Veil-shaped sealed access tokens with jose (a JWT signed by an "issuer", encrypted to a
 * resource server's key) and runs a stand-in issuer on 127.0.0.1: discovery, JWKS and an
 * introspection endpoint whose answer the test controls.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CompactEncrypt,
  SignJWT,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  type CompactJWEHeaderParameters,
  type CryptoKey,
  type JWK,
  type JWTHeaderParameters,
  type JWTPayload,
} from 'jose';

export const encoder = new TextEncoder();
export const b64url = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

export interface Signer {
  alg: 'RS256' | 'ES256';
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

export async function generateSigner(alg: Signer['alg']): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { alg, kid, privateKey, publicKey, publicJwk: { ...jwk, kid, alg, use: 'sig' } };
}

export interface Recipient {
  alg: 'ECDH-ES+A256KW' | 'RSA-OAEP-256';
  kid: string;
  publicKey: CryptoKey;
  privateJwk: JWK & { kid: string };
}

export async function generateRecipient(alg: Recipient['alg']): Promise<Recipient> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { alg, kid, publicKey, privateJwk: { ...(await exportJWK(privateKey)), kid, alg, use: 'enc' } };
}

export function accessTokenClaims(issuer: string, audience: string, overrides: JWTPayload = {}): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: issuer,
    sub: 'user-1',
    aud: audience,
    client_id: 'client-1',
    iat: now,
    exp: now + 300,
    jti: randomUUID(),
    scope: 'read write',
    ...overrides,
  };
}

export function signAccessToken(payload: JWTPayload, signer: Signer, header: Partial<JWTHeaderParameters> = {}): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: 'at+jwt', ...header }).sign(signer.privateKey);
}

/** Encrypts `jws` to the recipient the way Veil does; `header` overrides (or, set to undefined, removes) header fields. */
export function seal(
  jws: string,
  recipient: { kid: string; publicKey: CryptoKey; alg: string },
  header: Partial<Record<keyof CompactJWEHeaderParameters, unknown>> = {},
): Promise<string> {
  const merged: Record<string, unknown> = { alg: recipient.alg, enc: 'A256GCM', kid: recipient.kid, cty: 'JWT', ...header };
  for (const key of Object.keys(merged)) if (merged[key] === undefined) delete merged[key];
  return new CompactEncrypt(encoder.encode(jws)).setProtectedHeader(merged as CompactJWEHeaderParameters).encrypt(recipient.publicKey);
}

export interface IntrospectionCall {
  authorization: string | undefined;
  params: URLSearchParams;
}

export interface FakeIssuer {
  url: string;
  /** The published signing keys; mutate to rotate. */
  jwks: JWK[];
  jwksFetches: number;
  /** What the introspection endpoint answers next. */
  introspection: 'active' | 'inactive' | 'error';
  introspectionCalls: IntrospectionCall[];
  /** When false, /jwks answers 503. */
  jwksUp: boolean;
  /** Sent as /jwks's Cache-Control when set. */
  jwksCacheControl?: string;
  close(): Promise<void>;
}

export async function startFakeIssuer(signers: Signer[]): Promise<FakeIssuer> {
  const state: Omit<FakeIssuer, 'close' | 'url'> = {
    jwks: signers.map((s) => s.publicJwk),
    jwksFetches: 0,
    introspection: 'active',
    introspectionCalls: [],
    jwksUp: true,
  };
  let url = '';
  const json = (res: http.ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', url).pathname;
    if (req.method === 'GET' && path === '/jwks') {
      state.jwksFetches += 1;
      if (state.jwksCacheControl) res.setHeader('cache-control', state.jwksCacheControl);
      return state.jwksUp ? json(res, 200, { keys: state.jwks }) : json(res, 503, { error: 'down' });
    }
    if (req.method === 'GET' && path === '/.well-known/openid-configuration') {
      return json(res, 200, { issuer: url, jwks_uri: `${url}/jwks`, introspection_endpoint: `${url}/token/introspection` });
    }
    if (req.method === 'POST' && path === '/token/introspection') {
      let body = '';
      req
        .setEncoding('utf8')
        .on('data', (chunk: string) => (body += chunk))
        .on('end', () => {
          state.introspectionCalls.push({ authorization: req.headers.authorization, params: new URLSearchParams(body) });
          if (state.introspection === 'error') return json(res, 500, { error: 'server_error' });
          return json(res, 200, state.introspection === 'active' ? { active: true, client_id: 'client-1' } : { active: false });
        });
      return;
    }
    json(res, 404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return Object.assign(state, {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

/** Starts a node:http server for an app callback on 127.0.0.1 and returns its base URL. */
/** `handler` may be async (Koa's `callback()`); like Koa's and Express's, it settles its own errors, so its promise is not awaited. */
export async function listen(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => void handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
