/**
 * The status lists Veil serves, checked by an independent implementation (issue 11, acceptance
 * 2): jose verifies the Status List Token against Veil's JWKS and @sd-jwt/jwt-status-list
 * decodes `lst` (its own inflate, pako) and reads the entries. @sd-jwt/jwt-status-list only
 * decodes, it does not verify signatures; the pair is the independent verifier. A list with one
 * bit flipped after signing is refused by that pair (the signature) and by the SDK, which gets
 * it through a tampering proxy in front of Veil (the issuer's own URL). Embedded stores here
 * (the in-process status-list store); the Redis store is covered by status-list-revocation.test.ts.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { deflateSync, inflateSync } from 'node:zlib';
import { getListFromStatusListJWT } from '@sd-jwt/jwt-status-list';
import { createVerifier, VeilTokenError, type AccessTokenVerifier } from '@veil/resource-server';
import { createRemoteJWKSet, errors, jwtVerify } from 'jose';
import { freePort } from '../helpers/net.js';
import { tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { openSealed, registerResourceServer, revoke, type TestResourceServer } from '../helpers/resource-servers.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const API = 'https://interop.example/api';
const TTL_SECONDS = 1;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The same Status List Token with one bit of its list flipped and the signature left as it was. */
function flipBit(jwt: string, idx: number, bits: number): string {
  const [header, payload, signature] = jwt.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { status_list: { lst: string } };
  const bytes = inflateSync(Buffer.from(claims.status_list.lst, 'base64url'));
  const perByte = 8 / bits;
  bytes[Math.floor(idx / perByte)]! ^= 1 << ((idx % perByte) * bits);
  claims.status_list.lst = deflateSync(bytes, { level: 9 }).toString('base64url');
  return `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
}

describe('token status lists: an independent implementation accepts what Veil serves', () => {
  let veil: TestVeil;
  let api: TestResourceServer;
  let worker: HttpFlowClient;
  let proxy: http.Server;
  let issuer: string;
  /** idx -> flip that entry's lowest bit in every list the proxy passes on. */
  let tamper: { idx: number; bits: number } | undefined;

  const independent = async (uri: string) => {
    const jwt = await (await fetch(uri)).text();
    const { payload, protectedHeader } = await jwtVerify(jwt, createRemoteJWKSet(new URL(`${issuer}/jwks`)), { issuer, subject: uri, typ: 'statuslist+jwt' });
    return { jwt, payload, protectedHeader, list: getListFromStatusListJWT(jwt) };
  };
  const issue = async () => {
    const res = await tokenRequest(worker, { grant_type: 'client_credentials', resource: API, scope: 'read' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const token = res.body.access_token!;
    const { payload } = await openSealed(token, api.privateKey, issuer, API);
    return { token, ...(payload.status as { status_list: { idx: number; uri: string } }).status_list };
  };
  const verifier = (): AccessTokenVerifier => createVerifier({ issuer, audience: API, decryptionKeys: [{ kid: api.publicJwk.kid!, key: api.privateKey }] });

  before(async () => {
    // Veil on its own port, known to the world (ISSUER) by the proxy's.
    const port = await freePort();
    proxy = http.createServer((req, res) => {
      void (async () => {
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        const upstream = await fetch(`http://127.0.0.1:${port}${req.url}`, {
          method: req.method,
          headers: Object.fromEntries(Object.entries(req.headers).filter(([k]) => k !== 'host' && k !== 'connection') as Array<[string, string]>),
          body: chunks.length ? Buffer.concat(chunks) : undefined,
        });
        let body = Buffer.from(await upstream.arrayBuffer());
        if (tamper && req.url?.startsWith('/status-lists/') && upstream.status === 200) body = Buffer.from(flipBit(body.toString(), tamper.idx, tamper.bits));
        const headers = Object.fromEntries([...upstream.headers].filter(([k]) => !['content-length', 'content-encoding', 'transfer-encoding', 'connection'].includes(k)));
        res.writeHead(upstream.status, headers).end(body);
      })().catch(() => res.writeHead(502).end());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    issuer = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    veil = await startTestVeil(undefined, {
      PORT: String(port),
      ISSUER: issuer,
      STATUS_LIST_TTL_SECONDS: String(TTL_SECONDS),
      STATUS_LIST_EXP_SECONDS: '30',
      STATUS_LIST_SIZE: '4096',
    });
    api = await registerResourceServer(veil, { identifier: API, scopes: ['read'] });
    const c = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'worker',
      grant_types: ['client_credentials'],
      resources: [API],
      resource_scopes: { [API]: ['read'] },
    });
    worker = { issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret, redirectUri: 'http://127.0.0.1/unused' };
  });

  after(async () => {
    await veil?.stop();
    proxy.closeAllConnections();
    await new Promise((resolve) => proxy.close(resolve));
  });

  test('jose + @sd-jwt/jwt-status-list read the revoked entry as INVALID and the live one as VALID', async () => {
    const revoked = await issue();
    const live = await issue();
    assert.equal(revoked.uri, live.uri);
    assert.equal((await revoke(issuer, { id: worker.clientId, secret: worker.clientSecret! }, revoked.token)).status, 200);
    await sleep(TTL_SECONDS * 1000 + 100); // past the render Veil keeps for a ttl

    const { payload, protectedHeader, list } = await independent(revoked.uri);
    assert.equal(protectedHeader.typ, 'statuslist+jwt');
    assert.equal(payload.ttl, TTL_SECONDS);
    assert.ok(typeof payload.exp === 'number' && payload.exp - payload.iat! === 30);
    assert.equal(list.getBitsPerStatus(), 2);
    assert.equal(list.getStatus(revoked.idx), 1);
    assert.equal(list.getStatus(live.idx), 0);
    assert.equal(list.statusList.length, 4096);

    // And the SDK agrees, verifying locally.
    await assert.rejects(verifier().verify(revoked.token), (err: unknown) => err instanceof VeilTokenError && err.code === 'token_revoked');
    await verifier().verify(live.token);
  });

  test('one bit flipped after signing: refused by jose (so by the independent pair) and by the SDK', async () => {
    const revoked = await issue();
    assert.equal((await revoke(issuer, { id: worker.clientId, secret: worker.clientSecret! }, revoked.token)).status, 200);
    await sleep(TTL_SECONDS * 1000 + 100);
    const honest = await independent(revoked.uri);
    const forged = flipBit(honest.jwt, revoked.idx, 2);
    // Decoded without a signature check, the flipped entry would read VALID: the signature is what stops it.
    assert.equal(getListFromStatusListJWT(forged).getStatus(revoked.idx), 0);
    await assert.rejects(
      jwtVerify(forged, createRemoteJWKSet(new URL(`${issuer}/jwks`)), { issuer, subject: revoked.uri, typ: 'statuslist+jwt' }),
      errors.JWSSignatureVerificationFailed,
    );

    tamper = { idx: revoked.idx, bits: 2 };
    try {
      const v = verifier();
      await assert.rejects(v.verify(revoked.token), (err: unknown) => err instanceof VeilTokenError && err.code === 'status_list_invalid');
      // Nor does it let a live token through on a forged list.
      await assert.rejects(v.verify((await issue()).token), (err: unknown) => err instanceof VeilTokenError && err.code === 'status_list_invalid');
    } finally {
      tamper = undefined;
    }
    await assert.rejects(verifier().verify(revoked.token), (err: unknown) => err instanceof VeilTokenError && err.code === 'token_revoked');
  });
});
