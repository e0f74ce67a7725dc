/** A test resource server: its own key pair, registered with Veil, able to open its sealed tokens. */
import { calculateJwkThumbprint, compactDecrypt, createRemoteJWKSet, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, type CryptoKey, type JWK } from 'jose';
import { rememberSecret } from './secrets.js';
import type { TestVeil } from './veil.js';

export interface TestResourceServer {
  identifier: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  clientId: string;
  clientSecret: string;
}

export async function generateEncryptionKey(kind: 'ec' | 'rsa' | 'x25519' = 'ec') {
  const alg = kind === 'rsa' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW';
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(kind === 'x25519' ? { crv: 'X25519' } : {}) });
  const jwk = await exportJWK(publicKey);
  return { privateKey, publicJwk: { ...jwk, kid: (await calculateJwkThumbprint(jwk)).slice(0, 16), use: 'enc' } as JWK };
}

export async function registerResourceServer(
  veil: TestVeil,
  options: { identifier: string; scopes?: string[]; kind?: 'ec' | 'rsa' | 'x25519'; claims?: string[]; ttl?: number; extra?: Record<string, unknown> },
): Promise<TestResourceServer> {
  const { privateKey, publicJwk } = await generateEncryptionKey(options.kind);
  const res = await veil.admin<{ introspection_client_id: string; introspection_client_secret: string }>('POST', '/admin/resources', {
    identifier: options.identifier,
    name: `RS ${options.identifier}`,
    scopes: options.scopes ?? ['read', 'write'],
    jwk: publicJwk,
    ...(options.claims ? { claims: options.claims } : {}),
    ...(options.ttl ? { access_token_ttl: options.ttl } : {}),
    ...options.extra,
  });
  if (res.status !== 201) throw new Error(`registering ${options.identifier}: ${res.status} ${JSON.stringify(res.body)}`);
  return { identifier: options.identifier, privateKey, publicJwk, clientId: res.body.introspection_client_id, clientSecret: res.body.introspection_client_secret };
}

/** What the resource server does with a token: decrypt with its key, verify with Veil's JWKS (jose only). */
export async function openSealed(token: string, privateKey: CryptoKey, issuer: string, audience: string) {
  const jweHeader = decodeProtectedHeader(token);
  const { plaintext } = await compactDecrypt(token, privateKey);
  const inner = new TextDecoder().decode(plaintext);
  const { payload, protectedHeader: jwsHeader } = await jwtVerify(inner, createRemoteJWKSet(new URL(`${issuer}/jwks`)), { issuer, audience, typ: 'at+jwt' });
  return { jweHeader, jwsHeader, payload, inner };
}

export async function introspect(issuer: string, credentials: { id: string; secret: string }, token: string, extra: Record<string, string> = {}) {
  rememberSecret(credentials.secret, 'introspection client secret');
  rememberSecret(token, 'introspected token');
  const res = await fetch(`${issuer}/token/introspection`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(credentials.id)}:${encodeURIComponent(credentials.secret)}`).toString('base64')}`,
    },
    body: new URLSearchParams({ token, ...extra }).toString(),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export async function revoke(issuer: string, credentials: { id: string; secret: string }, token: string) {
  rememberSecret(credentials.secret, 'client secret');
  rememberSecret(token, 'revoked token');
  const res = await fetch(`${issuer}/token/revocation`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(credentials.id)}:${encodeURIComponent(credentials.secret)}`).toString('base64')}`,
    },
    body: new URLSearchParams({ token }).toString(),
  });
  return { status: res.status, text: await res.text() };
}
