/**
 * @veil/resource-server and Token Status Lists, against an issuer served here (its JWKS and its
 * lists over real HTTP): a token whose entry is VALID passes, INVALID and SUSPENDED are refused
 * with their own codes, and every bad list is refused with its specific code, never accepted:
 * tampered after signing (one bit of `lst` flipped), expired, signed by an unknown key, wrong
 * `typ`, `sub` not the `uri`, an inflation bomb, the wrong media type, an index outside the list,
 * a `uri` that is not the issuer's. A list is fetched once per ttl however many verifications;
 * when it cannot be fetched the last good copy serves for the grace, then the verifier fails
 * closed.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { deflateSync, inflateSync } from 'node:zlib';
import { createVerifier, VeilTokenError, type AccessTokenVerifier, type VerifierOptions } from '@veil/resource-server';
import { SignJWT } from 'jose';
import { accessTokenClaims, generateRecipient, generateSigner, listen, seal, signAccessToken, type Recipient, type Signer } from '../helpers/sealed-tokens.js';

const AUDIENCE = 'https://api.example.com';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Served {
  body: string;
  status?: number;
  type?: string;
  cacheControl?: string;
}

/** Status values packed the draft's way (index 0 in the lowest bits of byte 0). */
function pack(values: number[], bits: 1 | 2, size = 64): Buffer {
  const bytes = Buffer.alloc((size * bits) / 8);
  values.forEach((v, idx) => {
    const perByte = 8 / bits;
    bytes[Math.floor(idx / perByte)]! |= v << ((idx % perByte) * bits);
  });
  return bytes;
}

describe('SDK: token status lists', () => {
  let signer: Signer;
  let stranger: Signer;
  let recipient: Recipient;
  let server: { url: string; close(): Promise<void> };
  const lists = new Map<string, Served>();
  const fetches = new Map<string, number>();
  let down = false;
  let issuer = '';

  const uri = (id: string) => `${issuer}/status-lists/${id}`;
  const statusListJwt = (id: string, bytes: Buffer, options: { bits?: 1 | 2; key?: Signer; typ?: string; sub?: string; exp?: number; ttl?: number; lst?: string } = {}) => {
    const now = Math.floor(Date.now() / 1000);
    const key = options.key ?? signer;
    return new SignJWT({ status_list: { bits: options.bits ?? 2, lst: options.lst ?? deflateSync(bytes).toString('base64url') }, ttl: options.ttl ?? 60 })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: options.typ ?? 'statuslist+jwt' })
      .setIssuer(issuer)
      .setSubject(options.sub ?? uri(id))
      .setIssuedAt(now)
      .setExpirationTime(options.exp ?? now + 600)
      .sign(key.privateKey);
  };
  const serve = (id: string, body: string, extra: Omit<Served, 'body'> = {}) => lists.set(id, { body, ...extra });
  const tokenFor = async (status: unknown) => seal(await signAccessToken(accessTokenClaims(issuer, AUDIENCE, { status }), signer), recipient);
  const ref = (id: string, idx: number) => ({ status_list: { idx, uri: uri(id) } });
  const verifier = (extra: Partial<VerifierOptions> = {}): AccessTokenVerifier =>
    createVerifier({ issuer, audience: AUDIENCE, decryptionJwks: { keys: [recipient.privateJwk] }, cache: false, ...extra } as VerifierOptions);
  const refusedWith = async (v: AccessTokenVerifier, token: string, code: string) => {
    await assert.rejects(v.verify(token), (err: unknown) => {
      assert.ok(err instanceof VeilTokenError, String(err));
      assert.equal(err.code, code, err.message);
      return true;
    });
  };

  before(async () => {
    signer = await generateSigner('ES256');
    stranger = await generateSigner('ES256');
    recipient = await generateRecipient('ECDH-ES+A256KW');
    server = await listen((req: http.IncomingMessage, res: http.ServerResponse) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path === '/jwks') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [signer.publicJwk] }));
      const id = path.startsWith('/status-lists/') ? path.slice('/status-lists/'.length) : '';
      fetches.set(id, (fetches.get(id) ?? 0) + 1);
      const served = lists.get(id);
      if (down || !served) return void res.writeHead(down ? 503 : 404, { 'content-type': 'application/json' }).end('{"error":"unavailable"}');
      res
        .writeHead(served.status ?? 200, { 'content-type': served.type ?? 'application/statuslist+jwt', ...(served.cacheControl && { 'cache-control': served.cacheControl }) })
        .end(served.body);
    });
    issuer = server.url;
  });

  after(() => server.close());

  test('VALID passes, INVALID is token_revoked, SUSPENDED token_suspended; one fetch per ttl for many verifications', async () => {
    serve('L1', await statusListJwt('L1', pack([0, 1, 2], 2)));
    const v = verifier();
    const valid = await tokenFor(ref('L1', 0));
    await Promise.all(Array.from({ length: 20 }, () => v.verify(valid)));
    await v.verify(valid);
    assert.equal(fetches.get('L1'), 1);
    await refusedWith(v, await tokenFor(ref('L1', 1)), 'token_revoked');
    await refusedWith(v, await tokenFor(ref('L1', 2)), 'token_suspended');
    // A token without a status claim is not checked (issuers or tokens without lists).
    await v.verify(await seal(await signAccessToken(accessTokenClaims(issuer, AUDIENCE), signer), recipient));
    // Turned off, a revoked entry is not looked at.
    await verifier({ statusList: false }).verify(await tokenFor(ref('L1', 1)));
  });

  test('a change reaches the verifier once its cached copy is stale (max-age, at most ttl)', async () => {
    serve('L2', await statusListJwt('L2', pack([0], 1), { bits: 1, ttl: 1 }));
    const v = verifier();
    const token = await tokenFor(ref('L2', 0));
    await v.verify(token);
    serve('L2', await statusListJwt('L2', pack([1], 1), { bits: 1, ttl: 1 }));
    await v.verify(token); // still the cached copy
    await sleep(1100);
    await refusedWith(v, token, 'token_revoked');
    assert.equal(fetches.get('L2'), 2);
  });

  test('one bit flipped after signing: status_list_invalid (the signature no longer holds)', async () => {
    const jwt = await statusListJwt('L3', pack([1], 2), { bits: 2 });
    const [header, payload, signature] = jwt.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { status_list: { lst: string } };
    const bytes = inflateSync(Buffer.from(claims.status_list.lst, 'base64url'));
    bytes[0] = bytes[0]! ^ 1; // idx 0: INVALID -> VALID
    claims.status_list.lst = deflateSync(bytes).toString('base64url');
    serve('L3', `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`);
    const v = verifier();
    const err = await v.verify(await tokenFor(ref('L3', 0))).catch((e: unknown) => e);
    assert.ok(err instanceof VeilTokenError);
    assert.equal(err.code, 'status_list_invalid');
    assert.equal(err.unavailable, true);
  });

  test('expired: status_list_expired; unknown key: status_list_key_unknown', async () => {
    const now = Math.floor(Date.now() / 1000);
    serve('L4', await statusListJwt('L4', pack([0], 2), { exp: now - 60 }));
    serve('L5', await statusListJwt('L5', pack([0], 2), { key: stranger }));
    const v = verifier();
    await refusedWith(v, await tokenFor(ref('L4', 0)), 'status_list_expired');
    await refusedWith(v, await tokenFor(ref('L5', 0)), 'status_list_key_unknown');
  });

  test('wrong typ, sub not the uri, bad bits, inflation bomb, wrong media type, index outside: status_list_invalid', async () => {
    serve('T1', await statusListJwt('T1', pack([0], 2), { typ: 'JWT' }));
    serve('T2', await statusListJwt('T2', pack([0], 2), { sub: uri('other') }));
    serve('T3', await statusListJwt('T3', pack([0], 2), { bits: 3 as 2 }));
    serve('T4', await statusListJwt('T4', Buffer.alloc(0), { lst: deflateSync(Buffer.alloc(8 * 1024 * 1024)).toString('base64url') }));
    serve('T5', await statusListJwt('T5', pack([0], 2)), { type: 'application/jwt' });
    serve('T6', await statusListJwt('T6', pack([0], 2, 8)));
    const v = verifier();
    for (const id of ['T1', 'T2', 'T3', 'T4', 'T5']) await refusedWith(v, await tokenFor(ref(id, 0)), 'status_list_invalid');
    await refusedWith(v, await tokenFor(ref('T6', 8)), 'status_list_invalid');
  });

  test("a uri that is not the issuer's: status_list_uri_untrusted, and nothing is fetched", async () => {
    const v = verifier();
    const before = [...fetches.values()].reduce((a, b) => a + b, 0);
    for (const bad of [
      'https://evil.example/status-lists/L1',
      `${issuer}.evil.example/status-lists/L1`,
      `${issuer}/status-lists/`,
      `${issuer}/status-lists/a/b`,
      `${issuer}/jwks`,
    ]) {
      await refusedWith(v, await tokenFor({ status_list: { idx: 0, uri: bad } }), 'status_list_uri_untrusted');
    }
    assert.equal(
      [...fetches.values()].reduce((a, b) => a + b, 0),
      before,
    );
    for (const malformed of [{}, { status_list: { idx: '0', uri: uri('L1') } }, { status_list: { idx: -1, uri: uri('L1') } }, { status_list: { idx: 0 } }, 'x']) {
      await refusedWith(v, await tokenFor(malformed), 'claims_invalid');
    }
  });

  test('cannot be fetched: the last good copy serves for the grace, then fails closed; never a list it never had', async () => {
    serve('G1', await statusListJwt('G1', pack([0], 2), { ttl: 1 }));
    const v = verifier({ statusList: { unavailableGraceSeconds: 1 } });
    const token = await tokenFor(ref('G1', 0));
    await v.verify(token);
    down = true;
    try {
      await refusedWith(v, await tokenFor(ref('NEVER', 0)), 'status_list_unavailable');
      await sleep(1200); // stale, within the grace
      await v.verify(token);
      await sleep(1000); // past ttl + grace
      const err = await v.verify(token).catch((e: unknown) => e);
      assert.ok(err instanceof VeilTokenError);
      assert.equal(err.code, 'status_list_unavailable');
      assert.equal(err.unavailable, true);
    } finally {
      down = false;
    }
    await v.verify(token);
    // An unknown list (404) is not an outage with a grace: refused the same way.
    await refusedWith(verifier(), await tokenFor(ref('MISSING', 0)), 'status_list_unavailable');
  });
});
