/**
 * Signing-key rotation under use, with two Veil processes sharing KEYS_DIR, PostgreSQL and
 * Redis: tokens and ID tokens signed before a rotation keep verifying through the JWKS; new
 * ones use the key that was published in advance; the other process picks the rotation up
 * without a restart. Also the CLI's `keys` commands and `rotate-master`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { httpAuthorizationCodeFlow, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { freePort } from '../helpers/net.js';
import { ManagedProcess, runCli } from '../helpers/process.js';
import { openSealed, registerResourceServer, type TestResourceServer } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const jwksOf = async (issuer: string) => (await (await fetch(`${issuer}/jwks`)).json()) as JSONWebKeySet;

async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail('condition not reached in time');
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('signing-key rotation across processes', () => {
  let stores: TestStores;
  let a: TestVeil;
  let b: ManagedProcess;
  let bIssuer: string;
  let bAdmin: string;
  let rs: TestResourceServer;
  let worker: HttpFlowClient;
  let web: HttpFlowClient;
  const user = { email: 'rotate@example.com', password: 'rotation is a ritual' };

  before(async () => {
    stores = await createTestStores();
    a = await startTestVeil(stores);
    const port = await freePort();
    bIssuer = `http://127.0.0.1:${port}`;
    const adminPort = await freePort();
    bAdmin = `http://127.0.0.1:${adminPort}`;
    // B shares A's KEYS_DIR (and so its development master key file) and stores, not its memory.
    b = new ManagedProcess(process.execPath, ['dist/main.js'], {
      NODE_ENV: 'test',
      PORT: String(port),
      HOST: '127.0.0.1',
      ISSUER: a.issuer,
      ADMIN_PORT: String(adminPort),
      KEYS_DIR: a.config.keysDir,
      KEYS_RELOAD_SECONDS: '60',
      DATABASE_URL: stores.databaseUrl,
      REDIS_URL: stores.redisUrl,
      REDIS_KEY_PREFIX: stores.keyPrefix,
      VEIL_SEED: 'off',
    });
    await b.waitFor(/Veil is ready/, 60_000);
    rs = await registerResourceServer(a, { identifier: 'https://rotation.example/api' });
    const w = await a.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'rot-worker',
      grant_types: ['client_credentials'],
      resources: [rs.identifier],
    });
    worker = { issuer: a.issuer, clientId: w.body.client.client_id, clientSecret: w.body.client_secret, redirectUri: 'x' };
    const c = await a.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'rot-web',
      redirect_uris: ['http://127.0.0.1:9/cb'],
      grant_types: ['authorization_code', 'refresh_token'],
    });
    web = { issuer: a.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret, redirectUri: 'http://127.0.0.1:9/cb' };
    await a.admin('POST', '/admin/users', user);
  });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await stores?.cleanup();
  });

  const sealedVia = async (issuerUrl: string) => {
    const res = await tokenRequest({ ...worker, issuer: issuerUrl }, { grant_type: 'client_credentials', resource: rs.identifier });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.access_token!;
  };
  const innerKid = async (token: string) => (await openSealed(token, rs.privateKey, a.issuer, rs.identifier)).jwsHeader.kid;

  test('old tokens keep verifying, new ones use the pre-published key, and the other process follows at once', async () => {
    const oldIdToken = (await httpAuthorizationCodeFlow(web, user, 'openid')).id_token;
    const oldSealed = await sealedVia(a.issuer);
    const oldEsKid = await innerKid(oldSealed);
    const oldRsKid = decodeProtectedHeader(oldIdToken).kid;
    const before = await a.admin<{ keys: { kid: string; alg: string; status: string }[] }>('GET', '/admin/keys');
    const nextEs = before.body.keys.find((k) => k.alg === 'ES256' && k.status === 'next')!;
    const nextRs = before.body.keys.find((k) => k.alg === 'RS256' && k.status === 'next')!;
    // The next keys are already published, before they sign anything.
    for (const issuer of [a.issuer, bIssuer]) {
      const kids = (await jwksOf(issuer)).keys.map((k) => k.kid);
      assert.ok(kids.includes(nextEs.kid) && kids.includes(nextRs.kid), `${issuer} publishes the next keys`);
    }
    assert.match((await fetch(`${a.issuer}/jwks`)).headers.get('cache-control') ?? '', /max-age=\d+/);

    const rotated = await a.admin<{ activated: { kid: string }[] }>('POST', '/admin/keys/rotate', {});
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    assert.deepEqual(rotated.body.activated.map((k) => k.kid).sort(), [nextEs.kid, nextRs.kid].sort());

    // A signs with the new keys at once...
    assert.equal(await innerKid(await sealedVia(a.issuer)), nextEs.kid);
    const newIdToken = (await httpAuthorizationCodeFlow(web, user, 'openid')).id_token;
    assert.equal(decodeProtectedHeader(newIdToken).kid, nextRs.kid);
    // ...and B follows without a restart (announced over Redis, not by its 60 s poll).
    await eventually(async () => ((await innerKid(await sealedVia(bIssuer))) === nextEs.kid ? true : undefined));

    // Everything signed before the rotation still verifies through either process's JWKS.
    for (const issuer of [a.issuer, bIssuer]) {
      const jwks = createLocalJWKSet(await jwksOf(issuer));
      await jwtVerify(oldIdToken, jwks, { issuer: a.issuer, audience: web.clientId });
      await jwtVerify((await openSealed(oldSealed, rs.privateKey, a.issuer, rs.identifier)).inner, jwks, { issuer: a.issuer, audience: rs.identifier });
      await jwtVerify(newIdToken, jwks, { issuer: a.issuer, audience: web.clientId });
    }
    assert.notEqual(oldEsKid, nextEs.kid);
    assert.notEqual(oldRsKid, nextRs.kid);

    // Retiring the old key early is refused while its tokens may live; forced, it leaves the JWKS everywhere.
    const refused = await a.admin<{ error: string }>('POST', `/admin/keys/${oldEsKid}/retire`, {});
    assert.equal(refused.status, 400);
    assert.equal((await a.admin('POST', `/admin/keys/${oldEsKid}/retire`, { force: true })).status, 200);
    await eventually(async () => (!(await jwksOf(bIssuer)).keys.some((k) => k.kid === oldEsKid) ? true : undefined));
  });

  test('veil keys list / rotate through the admin API of the other process', async () => {
    // No token given: the CLI finds the one B generated in the shared KEYS_DIR.
    const env = { VEIL_ADMIN_URL: bAdmin, KEYS_DIR: a.config.keysDir };
    const listed = await runCli(['keys', 'list', '--json'], { env });
    assert.equal(listed.code, 0, listed.stderr);
    const keys = (JSON.parse(listed.stdout) as { keys: { status: string; alg: string }[] }).keys;
    assert.deepEqual(
      keys
        .filter((k) => k.status === 'active')
        .map((k) => k.alg)
        .sort(),
      ['ES256', 'RS256'],
    );
    const rotated = await runCli(['keys', 'rotate', '--alg', 'ES256', '--json'], { env });
    assert.equal(rotated.code, 0, rotated.stderr);
    const activated = (JSON.parse(rotated.stdout) as { activated: { kid: string }[] }).activated[0]!.kid;
    await eventually(async () => ((await innerKid(await sealedVia(a.issuer))) === activated ? true : undefined));
  });
});
