/**
 * JWT introspection responses (RFC 9701; issue 11, acceptance 5). Asked with
 * `Accept: application/token-introspection+jwt`, the introspection endpoint answers a JWT signed
 * by Veil (typ token-introspection+jwt, iss, aud the caller, iat, token_introspection the RFC 7662
 * answer) that verifies with jose against Veil's JWKS; a resource server gets it encrypted to its
 * registered key with its registered algorithms; inactive answers are signed too; refusals (no
 * credentials, a public client) stay OAuth JSON errors; without the Accept header nothing changes.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { compactDecrypt, createRemoteJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { createVerifier, VeilTokenError } from '@veil/resource-server';
import { httpAuthorizationCodeFlow, type HttpFlowClient } from '../helpers/http-flow.js';
import { introspect, registerResourceServer, revoke, type TestResourceServer } from '../helpers/resource-servers.js';
import { rememberSecret } from '../helpers/secrets.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const JWT_TYPE = 'application/token-introspection+jwt';
const EC_API = 'https://ec.introspection-jwt.test';
const RSA_API = 'https://rsa.introspection-jwt.test';
const REDIRECT = 'https://app.introspection-jwt.test/cb';

type Credentials = { id: string; secret: string };
const basic = (c: Credentials) => `Basic ${Buffer.from(`${encodeURIComponent(c.id)}:${encodeURIComponent(c.secret)}`).toString('base64')}`;

describe('JWT introspection responses (RFC 9701)', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let ec: TestResourceServer;
  let rsa: TestResourceServer;
  let web: HttpFlowClient;
  let publicClient: string;
  let users = 0;
  const rsCreds = (rs: TestResourceServer): Credentials => ({ id: rs.clientId, secret: rs.clientSecret });
  const webCreds = (): Credentials => ({ id: web.clientId, secret: web.clientSecret! });

  /** POST /token/introspection asking for a JWT answer. */
  async function introspectJwt(token: string, auth: { authorization?: string; body?: Record<string, string> }, accept = JWT_TYPE) {
    rememberSecret(token, 'introspected token');
    const res = await fetch(`${veil.issuer}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept, ...(auth.authorization ? { authorization: auth.authorization } : {}) },
      body: new URLSearchParams({ token, ...auth.body }).toString(),
    });
    return { status: res.status, type: res.headers.get('content-type') ?? '', cache: res.headers.get('cache-control'), text: await res.text() };
  }

  /** Verifies a signed answer with jose against Veil's published JWKS, as a relying party later would. */
  async function verifyAnswer(jws: string, audience: string): Promise<JWTPayload & { token_introspection: Record<string, unknown> }> {
    const { payload, protectedHeader } = await jwtVerify(jws, createRemoteJWKSet(new URL(`${veil.issuer}/jwks`)), {
      issuer: veil.issuer,
      audience,
      typ: 'token-introspection+jwt',
      algorithms: ['ES256'],
    });
    assert.equal(protectedHeader.typ, 'token-introspection+jwt');
    assert.ok(typeof payload.iat === 'number' && Math.abs(payload.iat - Date.now() / 1000) < 60);
    // RFC 9701 §5: the token's own claims are inside token_introspection, not at the top.
    assert.equal(payload.sub, undefined);
    assert.equal(payload.exp, undefined);
    return payload as JWTPayload & { token_introspection: Record<string, unknown> };
  }

  async function userToken(resource: string) {
    const user = { email: `jwt-introspection-${++users}@example.com`, password: 'introspect me as a jwt please' };
    const created = await veil.admin('POST', '/admin/users', { ...user, name: 'Jay Double' });
    assert.equal(created.status, 201);
    return httpAuthorizationCodeFlow(web, user, 'openid orders:read', { resource });
  }

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    ec = await registerResourceServer(veil, { identifier: EC_API, scopes: ['orders:read'] });
    rsa = await registerResourceServer(veil, { identifier: RSA_API, scopes: ['orders:read'], kind: 'rsa', extra: { enc: 'A128GCM' } });
    const created = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'jwt introspection web',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      scope: 'openid offline_access',
      resource_scopes: { [EC_API]: ['orders:read'], [RSA_API]: ['orders:read'] },
    });
    assert.equal(created.status, 201);
    web = { issuer: veil.issuer, clientId: created.body.client.client_id, clientSecret: created.body.client_secret, redirectUri: REDIRECT };
    const pub = await veil.admin<{ client: { client_id: string } }>('POST', '/admin/clients', { client_name: 'public app', redirect_uris: [REDIRECT], public: true });
    assert.equal(pub.status, 201);
    publicClient = pub.body.client.client_id;
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  test('discovery names the signing and encryption algorithms (RFC 9701 §6)', async () => {
    const meta = (await (await fetch(`${veil.issuer}/.well-known/openid-configuration`)).json()) as Record<string, string[]>;
    assert.deepEqual(meta.introspection_signing_alg_values_supported, ['ES256']);
    assert.ok(meta.introspection_encryption_alg_values_supported!.includes('ECDH-ES+A256KW'));
    assert.ok(meta.introspection_encryption_alg_values_supported!.includes('RSA-OAEP-256'));
    assert.ok(!meta.introspection_encryption_alg_values_supported!.includes('RSA-OAEP'));
    assert.ok(meta.introspection_encryption_enc_values_supported!.includes('A256GCM'));
  });

  test("a resource server's answer is encrypted to its key and verifies against Veil's JWKS", async () => {
    for (const [rs, alg, enc] of [
      [ec, 'ECDH-ES+A256KW', 'A256GCM'],
      [rsa, 'RSA-OAEP-256', 'A128GCM'],
    ] as const) {
      const { access_token: token } = await userToken(rs.identifier);
      const plain = await introspect(veil.issuer, rsCreds(rs), token);
      assert.equal(plain.body.active, true);

      const res = await introspectJwt(token, { authorization: basic(rsCreds(rs)) });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.type, JWT_TYPE);
      assert.equal(res.cache, 'no-store');
      assert.equal(res.text.split('.').length, 5, 'a JWE');
      const header = decodeProtectedHeader(res.text);
      assert.deepEqual([header.alg, header.enc, header.kid, header.cty], [alg, enc, rs.publicJwk.kid, 'JWT']);
      const { plaintext } = await compactDecrypt(res.text, rs.privateKey);
      const answer = await verifyAnswer(new TextDecoder().decode(plaintext), rs.clientId);
      // Exactly the plain answer, pairwise sub included.
      assert.deepEqual(answer.token_introspection, plain.body);
      assert.equal(answer.iss, veil.issuer);

      // Only the calling API's key opens it.
      const other = rs === ec ? rsa : ec;
      await assert.rejects(compactDecrypt(res.text, other.privateKey));
    }
  });

  test('a client gets a signed answer (aud: its client_id)', async () => {
    const { access_token: token } = await userToken(EC_API);
    const plain = await introspect(veil.issuer, webCreds(), token);
    const res = await introspectJwt(token, { authorization: basic(webCreds()) });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.type, JWT_TYPE);
    assert.equal(res.text.split('.').length, 3, 'a JWS');
    const answer = await verifyAnswer(res.text, web.clientId);
    assert.deepEqual(answer.token_introspection, plain.body);
    assert.equal(answer.token_introspection.active, true);
    // A tampered answer does not verify.
    const [h, p, s] = res.text.split('.');
    const forged = Buffer.from(JSON.stringify({ ...answer, token_introspection: { ...answer.token_introspection, scope: 'orders:read orders:write' } })).toString('base64url');
    await assert.rejects(verifyAnswer(`${h}.${forged}.${s}`, web.clientId));
    assert.ok(p);
  });

  test('inactive answers are signed JWTs too: revoked, unknown, another API’s token', async () => {
    const { access_token: token } = await userToken(EC_API);
    // Another API asking about EC's token: inactive, encrypted to the caller.
    const wrongApi = await introspectJwt(token, { authorization: basic(rsCreds(rsa)) });
    assert.equal(wrongApi.type, JWT_TYPE);
    const opened = await compactDecrypt(wrongApi.text, rsa.privateKey);
    assert.deepEqual((await verifyAnswer(new TextDecoder().decode(opened.plaintext), rsa.clientId)).token_introspection, { active: false });

    const unknown = await introspectJwt('not-a-token-at-all', { authorization: basic(webCreds()) });
    assert.deepEqual((await verifyAnswer(unknown.text, web.clientId)).token_introspection, { active: false });

    assert.equal((await revoke(veil.issuer, webCreds(), token)).status, 200);
    const revoked = await introspectJwt(token, { authorization: basic(rsCreds(ec)) });
    const openedRevoked = await compactDecrypt(revoked.text, ec.privateKey);
    assert.deepEqual((await verifyAnswer(new TextDecoder().decode(openedRevoked.plaintext), ec.clientId)).token_introspection, { active: false });
  });

  test('refusals are unchanged OAuth JSON errors, never a JWT', async () => {
    const { access_token: token } = await userToken(EC_API);
    const none = await introspectJwt(token, {});
    assert.equal(none.status, 400);
    assert.match(none.type, /application\/json/);
    assert.equal((JSON.parse(none.text) as { error: string }).error, 'invalid_request');

    const wrongSecret = await introspectJwt(token, { authorization: basic({ id: ec.clientId, secret: 'wrong' }) });
    assert.equal(wrongSecret.status, 401);
    assert.equal((JSON.parse(wrongSecret.text) as { error: string }).error, 'invalid_client');

    const pub = await introspectJwt(token, { body: { client_id: publicClient } });
    assert.equal(pub.status, 401);
    assert.equal((JSON.parse(pub.text) as { error: string }).error, 'invalid_client');
    // The token is still live: nothing a refusal did changed it.
    assert.equal((await introspect(veil.issuer, rsCreds(ec), token)).body.active, true);
  });

  test('the SDK asks for JWT answers and accepts only ones that open and verify', async () => {
    const verifier = (introspect: { clientId: string; clientSecret: string; endpoint?: string }) =>
      createVerifier({
        issuer: veil.issuer,
        audience: EC_API,
        decryptionKeys: [{ kid: ec.publicJwk.kid!, key: ec.privateKey }],
        cache: false,
        introspect: { ...introspect, jwtResponse: true },
      });
    const code = async (p: Promise<unknown>) => {
      try {
        await p;
        return 'accepted';
      } catch (err) {
        assert.ok(err instanceof VeilTokenError, String(err));
        return err.code;
      }
    };
    const { access_token: token } = await userToken(EC_API);
    const own = verifier({ clientId: ec.clientId, clientSecret: ec.clientSecret });
    const verified = await own.verify(token);
    assert.equal(verified.claims.aud, EC_API);

    // Another API's credentials: Veil answers inactive, encrypted to that API: this one cannot open it.
    assert.equal(await code(verifier({ clientId: rsa.clientId, clientSecret: rsa.clientSecret }).verify(token)), 'introspection_failed');

    // An endpoint answering plain JSON (or a JWT not from Veil) is refused when JWT answers are asked for.
    const fake = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.headers.accept !== JWT_TYPE) res.writeHead(406).end();
        else if (req.url === '/json') res.writeHead(200, { 'content-type': 'application/json' }).end('{"active":true}');
        else res.writeHead(200, { 'content-type': JWT_TYPE }).end('eyJhbGciOiJub25lIn0.eyJ0b2tlbl9pbnRyb3NwZWN0aW9uIjp7ImFjdGl2ZSI6dHJ1ZX19.');
      });
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    try {
      const base = `http://127.0.0.1:${(fake.address() as { port: number }).port}`;
      for (const path of ['/json', '/unsigned']) {
        assert.equal(await code(verifier({ clientId: ec.clientId, clientSecret: ec.clientSecret, endpoint: `${base}${path}` }).verify(token)), 'introspection_failed', path);
      }
    } finally {
      await new Promise((r) => fake.close(r));
    }

    // Revoked: the signed answer says inactive.
    assert.equal((await revoke(veil.issuer, webCreds(), token)).status, 200);
    assert.equal(await code(own.verify(token)), 'token_inactive');
  });

  test('without the Accept header (or preferring JSON) the answer stays JSON', async () => {
    const { access_token: token } = await userToken(EC_API);
    for (const accept of ['application/json', '*/*', `application/json, ${JWT_TYPE};q=0.5`]) {
      const res = await introspectJwt(token, { authorization: basic(rsCreds(ec)) }, accept);
      assert.match(res.type, /application\/json/, accept);
      assert.equal((JSON.parse(res.text) as { active: boolean }).active, true);
    }
    const preferred = await introspectJwt(token, { authorization: basic(rsCreds(ec)) }, `application/json;q=0.5, ${JWT_TYPE}`);
    assert.equal(preferred.type, JWT_TYPE);
  });
});
