/**
 * Confidential claims at issuance (issue 10): a resource server registered with `he_claims`
 * gets, in each of its tokens, `hec: { kid, <claim>: <Paillier ciphertext> }` inside the signed
 * inner JWT, and the token response carries a companion `hec+jwt` with the same ciphertexts,
 * bound to the access token's jti and without a subject. Plain values appear nowhere; other
 * audiences are untouched.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { ciphertextFromBase64url, decrypt, type PaillierSecretKey } from '@veil/resource-server/paillier';
import { main } from '../../src/cli/main.js';
import { Envelope, loadMasterKeys } from '../../src/crypto/master-key.js';
import { openHeKeyStore } from '../../src/he/he-key-store.js';
import { loadOrCreateHeKeys, type HeKeyRing } from '../../src/he/he-keys.js';
import { httpAuthorizationCodeFlow, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { openSealed, registerResourceServer, type TestResourceServer } from '../helpers/resource-servers.js';
import { rememberSecret } from '../helpers/secrets.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

interface Resource {
  identifier: string;
  he_claims: string[];
}

type Hec = { kid: string } & Record<string, string>;

// Distinctive values (remembered as secrets: Veil's logs must never show them).
const LIMIT = 9_876_543_210;
const SPENT = 1_234_567;
const AGE = 34;

describe('confidential claims at issuance', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let plain: TestResourceServer;
  let pay: TestResourceServer;
  let web: HttpFlowClient;
  let worker: HttpFlowClient;
  let outsider: HttpFlowClient;
  let heKeys: HeKeyRing;
  const ada = { email: 'ada@example.com', password: 'an analytical engine' };
  const bob = { email: 'bob@example.com', password: 'sixteen and a half' };
  const cyd = { email: 'cyd@example.com', password: 'no attributes at all' };

  /** What the test process decrypts with: the secret half from Veil's own HE key store. */
  const secretFor = (kid: string): PaillierSecretKey => {
    const sk = heKeys.secret(kid);
    assert.ok(sk, `HE key ${kid} is in Veil's key store`);
    return sk;
  };
  const open = (hec: Hec, claim: string) => {
    const sk = secretFor(hec.kid);
    return decrypt(sk, ciphertextFromBase64url(sk.publicKey, hec[claim]!));
  };

  /** A token for `resource` by the code flow, and what its audience reads from it. */
  async function userToken(user: { email: string; password: string }, rs: TestResourceServer) {
    const body = (await httpAuthorizationCodeFlow(web, user, 'openid offline_access', { resource: rs.identifier, scope: 'openid offline_access read' })) as Record<string, string>;
    rememberSecret(body.hec_token, 'companion token');
    const { payload, inner } = await openSealed(body.access_token!, rs.privateKey, veil.issuer, rs.identifier);
    return { body, payload, inner };
  }

  async function verifyCompanion(value: string): Promise<JWTPayload> {
    const { payload, protectedHeader } = await jwtVerify(value, createRemoteJWKSet(new URL(`${veil.issuer}/jwks`)), { issuer: veil.issuer, typ: 'hec+jwt' });
    assert.equal(protectedHeader.typ, 'hec+jwt');
    return payload;
  }

  async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const io = { stdout: (t: string) => void (stdout += t), stderr: (t: string) => void (stderr += t), readStdin: async () => '' };
    const code = await main(['node', 'veil', '--admin-url', veil.adminUrl, '--admin-token', veil.adminToken, ...args], io);
    return { code, stdout, stderr };
  }

  const heClaimsOf = async (identifier: string) =>
    (await veil.admin<{ resources: Resource[] }>('GET', '/admin/resources')).body.resources.find((r) => r.identifier === identifier)?.he_claims;

  before(async () => {
    stores = await createTestStores();
    // 2048 bits keep the test's key generation short; the benchmark measures 3072.
    veil = await startTestVeil(stores, { HE_KEY_BITS: '2048' });
    for (const v of [LIMIT, SPENT, LIMIT - SPENT]) rememberSecret(String(v), 'attribute value');
    plain = await registerResourceServer(veil, { identifier: 'https://plain.example/api', scopes: ['read'] });
    pay = await registerResourceServer(veil, { identifier: 'https://pay.example/api', scopes: ['read'], extra: { he_claims: ['age', 'spend_headroom'] } });
    const client = async (name: string, body: Record<string, unknown>) => {
      const res = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', { client_name: name, ...body });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return { issuer: veil.issuer, clientId: res.body.client.client_id, clientSecret: res.body.client_secret, redirectUri: 'http://127.0.0.1:9/cb' };
    };
    const apis = { resources: [pay.identifier, plain.identifier], resource_scopes: { [pay.identifier]: ['read'], [plain.identifier]: ['read'] } };
    web = await client('web', { redirect_uris: ['http://127.0.0.1:9/cb'], grant_types: ['authorization_code', 'refresh_token'], ...apis });
    worker = await client('worker', { grant_types: ['client_credentials'], ...apis });
    outsider = await client('outsider', { grant_types: ['client_credentials'], resources: [plain.identifier], resource_scopes: { [plain.identifier]: ['read'] } });
    await veil.admin('POST', '/admin/users', { ...ada, attributes: { age: AGE, spend_limit: LIMIT, spend_this_month: SPENT } });
    await veil.admin('POST', '/admin/users', { ...bob, attributes: { age: 16 } });
    await veil.admin('POST', '/admin/users', cyd);
    const master = await loadMasterKeys({ env: veil.config.masterKey.value, file: veil.config.masterKey.file, keysDir: veil.config.keysDir, production: false });
    heKeys = (await loadOrCreateHeKeys(openHeKeyStore(veil.config, veil.database), new Envelope(master.keys), 2048)).ring;
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  describe('registration', () => {
    test('he_claims are set at creation and changed with PATCH / `veil resources update`; only catalogue names', async () => {
      const rs = await registerResourceServer(veil, { identifier: 'https://reg.example/api', extra: { he_claims: ['age', 'spend_headroom', 'age'] } });
      assert.deepEqual(await heClaimsOf(rs.identifier), ['age', 'spend_headroom']);
      assert.deepEqual(await heClaimsOf(plain.identifier), []);

      const updated = await cli('--json', 'resources', 'update', rs.identifier, '--he-claims', 'spend_limit,age');
      assert.equal(updated.code, 0, updated.stderr);
      assert.deepEqual((JSON.parse(updated.stdout) as Resource).he_claims, ['spend_limit', 'age']);
      assert.deepEqual(await heClaimsOf(rs.identifier), ['spend_limit', 'age']);
      const cleared = await veil.admin<{ resource: Resource }>('PATCH', `/admin/resources/${encodeURIComponent(rs.identifier)}`, { he_claims: [] });
      assert.equal(cleared.status, 200);
      assert.deepEqual(cleared.body.resource.he_claims, []);

      // Unknown names, a body with nothing to change, an unknown resource: refused, nothing changed.
      await veil.admin('PATCH', `/admin/resources/${encodeURIComponent(rs.identifier)}`, { he_claims: ['age'] });
      const unknown = await veil.admin<{ error: string; error_description: string }>('PATCH', `/admin/resources/${encodeURIComponent(rs.identifier)}`, {
        he_claims: ['age', 'salary'],
      });
      assert.equal(unknown.status, 400);
      assert.equal(unknown.body.error, 'invalid_request');
      assert.match(unknown.body.error_description, /he_claims must be among age, spend_limit, spend_this_month, spend_headroom; unknown: salary/);
      for (const body of [{}, { he_claims: 'age' }, { he_claims: ['age'], name: 'x' }]) {
        assert.equal((await veil.admin('PATCH', `/admin/resources/${encodeURIComponent(rs.identifier)}`, body)).status, 400, JSON.stringify(body));
      }
      assert.deepEqual(await veil.admin('PATCH', `/admin/resources/${encodeURIComponent('https://nowhere.example/api')}`, { he_claims: ['age'] }), {
        status: 404,
        body: { error: 'not_found', error_description: 'no such resource server' },
      });
      assert.deepEqual(await heClaimsOf(rs.identifier), ['age']);
      const badCli = await cli('resources', 'update', rs.identifier, '--he-claims', 'height');
      assert.notEqual(badCli.code, 0);
      assert.match(badCli.stderr, /unknown: height/);
      const nothing = await cli('resources', 'update', rs.identifier);
      assert.notEqual(nothing.code, 0);
      assert.deepEqual(await heClaimsOf(rs.identifier), ['age']);

      const refusedCreate = await veil.admin<{ error: string }>('POST', '/admin/resources', {
        identifier: 'https://refused.example/api',
        name: 'refused',
        scopes: ['read'],
        jwk: rs.publicJwk,
        he_claims: ['age', 'weight'],
      });
      assert.equal(refusedCreate.status, 400);
      assert.equal(await heClaimsOf('https://refused.example/api'), undefined, 'not registered');
    });

    test('changing he_claims needs the admin token; a refusal changes nothing', async () => {
      const path = `/admin/resources/${encodeURIComponent('https://reg.example/api')}`;
      for (const headers of [{ 'content-type': 'application/json' }, { 'content-type': 'application/json', authorization: 'Bearer wrong-token-wrong-token' }] as Array<
        Record<string, string>
      >) {
        const res = await fetch(`${veil.adminUrl}${path}`, { method: 'PATCH', headers, body: JSON.stringify({ he_claims: ['spend_limit'] }) });
        assert.equal(res.status, 401);
      }
      assert.deepEqual(await heClaimsOf('https://reg.example/api'), ['age']);
    });
  });

  describe('issuance', () => {
    test('a token for an API with he_claims carries hec in its signed JWT; the ciphertexts decrypt to the attributes', async () => {
      const { body, payload, inner } = await userToken(ada, pay);
      const hec = payload.hec as Hec;
      assert.deepEqual(Object.keys(hec).sort(), ['age', 'kid', 'spend_headroom']);
      assert.equal(hec.kid, heKeys.active().kid);
      assert.equal(open(hec, 'age'), BigInt(AGE));
      assert.equal(open(hec, 'spend_headroom'), BigInt(LIMIT - SPENT));
      // Fixed width: byteLength(n²) bytes, base64url.
      const width = Math.ceil((heKeys.active().n2.toString(16).length / 2) * (4 / 3));
      for (const claim of ['age', 'spend_headroom']) assert.equal(hec[claim]!.length, width, claim);
      // The JWS signature covers hec: the inner JWT's payload is exactly what was verified.
      assert.deepEqual(decodeJwt<{ hec: Hec }>(inner).hec, hec);
      assert.equal(payload.age, undefined);
      assert.equal(payload.spend_headroom, undefined);
      assert.equal(typeof body.hec_token, 'string');
    });

    test('no plain value anywhere in the JWE, the JWS, the companion or the token response', async () => {
      const { body, inner } = await userToken(ada, pay);
      const texts = [JSON.stringify(body), body.access_token!, inner, JSON.stringify(decodeJwt(inner)), JSON.stringify(decodeJwt(body.hec_token!))];
      for (const text of texts) {
        for (const value of [LIMIT, SPENT, LIMIT - SPENT]) assert.ok(!text.includes(String(value)), `${value} found`);
        // The age as a JSON value (the ciphertexts are strings; iat/exp are ten digits).
        assert.ok(!/[:[,]\s*34\s*[,\]}]/.test(text), 'the age found as a JSON number');
        assert.ok(!/"(age|spend_headroom|spend_limit|spend_this_month)"\s*:\s*-?\d/.test(text), 'an attribute as a plain number');
      }
    });

    test('every token has fresh ciphertexts: two tokens of one user differ in every claim, and decrypt alike', async () => {
      const first = await userToken(ada, pay);
      const second = await tokenRequest(web, { grant_type: 'refresh_token', refresh_token: first.body.refresh_token! });
      assert.equal(second.status, 200, JSON.stringify(second.body));
      rememberSecret(second.body.hec_token, 'companion token');
      const a = first.payload.hec as Hec;
      const b = (await openSealed(second.body.access_token!, pay.privateKey, veil.issuer, pay.identifier)).payload.hec as Hec;
      const ciphertexts = [a.age, a.spend_headroom, b.age, b.spend_headroom];
      assert.equal(new Set(ciphertexts).size, 4, 'no two ciphertexts alike');
      for (const claim of ['age', 'spend_headroom']) assert.equal(open(a, claim), open(b, claim), claim);
      // The companion of each token carries that token's ciphertexts.
      assert.deepEqual((await verifyCompanion(second.body.hec_token!)).hec, b);
    });

    test('the companion hec+jwt verifies with jose against /jwks, is bound to the jti, carries the same ciphertexts and no sub', async () => {
      const { body, payload } = await userToken(ada, pay);
      const companion = await verifyCompanion(body.hec_token!);
      assert.deepEqual(Object.keys(companion).sort(), ['aud', 'exp', 'hec', 'iat', 'iss', 'jti']);
      assert.equal(companion.jti, payload.jti);
      assert.equal(companion.exp, payload.exp);
      assert.equal(companion.iat, payload.iat);
      assert.equal(companion.aud, pay.identifier);
      assert.equal(companion.sub, undefined);
      assert.deepEqual(companion.hec, payload.hec);
      // Signed with the access-token key: the same kid as the inner JWS.
      const inner = await openSealed(body.access_token!, pay.privateKey, veil.issuer, pay.identifier);
      assert.equal(decodeProtectedHeader(body.hec_token!).kid, inner.jwsHeader.kid);
      // It is not an access token: the at+jwt type check refuses it, and a changed ciphertext breaks the signature.
      await assert.rejects(jwtVerify(body.hec_token!, createRemoteJWKSet(new URL(`${veil.issuer}/jwks`)), { issuer: veil.issuer, typ: 'at+jwt' }));
      const [h, p, sig] = body.hec_token!.split('.');
      const tampered = JSON.parse(Buffer.from(p!, 'base64url').toString()) as { hec: Hec };
      tampered.hec.age = tampered.hec.spend_headroom!;
      await assert.rejects(verifyCompanion(`${h}.${Buffer.from(JSON.stringify(tampered)).toString('base64url')}.${sig}`));
    });

    test('spend_headroom is derived at issuance from what the admin API set; a claim the user lacks is left out', async () => {
      const id = (await veil.admin<{ users: Array<{ id: string }> }>('GET', '/admin/users?email=ada%40example.com')).body.users[0]!.id;
      assert.equal((await veil.admin('PUT', `/admin/users/${id}/attributes/spend_this_month`, { value: LIMIT + 5 })).status, 200);
      assert.equal(open((await userToken(ada, pay)).payload.hec as Hec, 'spend_headroom'), -5n, 'over the limit: negative headroom');
      assert.equal((await veil.admin('PUT', `/admin/users/${id}/attributes/spend_this_month`, { value: SPENT })).status, 200);
      assert.equal(open((await userToken(ada, pay)).payload.hec as Hec, 'spend_headroom'), BigInt(LIMIT - SPENT));

      // Bob has an age and no spending limit: no headroom claim.
      const b = await userToken(bob, pay);
      assert.deepEqual(Object.keys(b.payload.hec as Hec).sort(), ['age', 'kid']);
      assert.equal(open(b.payload.hec as Hec, 'age'), 16n);
      assert.deepEqual(Object.keys((await verifyCompanion(b.body.hec_token!)).hec as Hec).sort(), ['age', 'kid']);
      // Cyd has no attributes: no hec, no companion.
      const c = await userToken(cyd, pay);
      assert.equal(c.payload.hec, undefined);
      assert.equal(c.body.hec_token, undefined);
    });

    test('an API without he_claims gets no hec and no companion; neither does a token without a user', async () => {
      const p = await userToken(ada, plain);
      assert.equal(p.payload.hec, undefined);
      assert.equal(p.body.hec_token, undefined);
      const cc = await tokenRequest(worker, { grant_type: 'client_credentials', resource: pay.identifier, scope: 'read' });
      assert.equal(cc.status, 200, JSON.stringify(cc.body));
      assert.equal(cc.body.hec_token, undefined);
      assert.equal((await openSealed(cc.body.access_token!, pay.privateKey, veil.issuer, pay.identifier)).payload.hec, undefined);
    });

    test('only the client the token is issued to gets the companion: other clients and no credentials are refused, with none', async () => {
      const refusals = [
        await tokenRequest(outsider, { grant_type: 'client_credentials', resource: pay.identifier, scope: 'read' }),
        await tokenRequest({ ...worker, clientSecret: 'not-the-secret-of-worker' }, { grant_type: 'client_credentials', resource: pay.identifier, scope: 'read' }),
        await tokenRequest({ ...worker, clientSecret: undefined }, { grant_type: 'client_credentials', resource: pay.identifier, scope: 'read' }),
      ];
      for (const res of refusals) {
        assert.ok(res.status === 400 || res.status === 401, JSON.stringify(res.body));
        assert.equal(res.body.hec_token, undefined);
        assert.equal(res.body.access_token, undefined);
      }
    });
  });
});
