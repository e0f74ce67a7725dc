/**
 * One client-authentication behaviour at every endpoint. A shared table of cases (method
 * registered × method used, and malformed ones) runs against oidc-provider's `/token` and
 * against Veil's `/token/introspection` and `/token/revocation`; each must accept or refuse
 * alike (status and `error`). The senders are openid-client's own authentication helpers.
 * Documented differences: public clients may not introspect; a resource server's introspection
 * credentials work at introspection only. Then full openid-client flows for every method,
 * revocation of another client's token (200, nothing revoked), and single-use assertions
 * across endpoints under concurrency.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import * as oidc from 'openid-client';
import { httpAuthorizationCodeFlow, httpAuthorize, type HttpFlowClient } from '../helpers/http-flow.js';
import { registerResourceServer } from '../helpers/resource-servers.js';
import { rememberSecret, rememberTokens } from '../helpers/secrets.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

type Created = { client: { client_id: string }; client_secret?: string };
type Endpoint = '/token' | '/token/introspection' | '/token/revocation';
const ENDPOINTS: Endpoint[] = ['/token', '/token/introspection', '/token/revocation'];
type Outcome = 'accepted' | { status: number; error: string };
type ClientName = 'basic' | 'post' | 'jwt' | 'public' | 'rs';

const user = { email: 'parity@example.com', password: 'parity all the way 1' };
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const invalidClient: Outcome = { status: 401, error: 'invalid_client' };
const invalidRequest: Outcome = { status: 400, error: 'invalid_request' };

/** What one case sends: it fills in the body and headers of a request for `endpoint`. */
type Sender = (ctx: { endpoint: Endpoint; body: URLSearchParams; headers: Headers }) => Promise<void>;

interface Case {
  name: string;
  client: ClientName;
  send: Sender;
  expect: Outcome;
  /** Where an endpoint differs by design (documented at the top). */
  except?: Partial<Record<Endpoint, Outcome>>;
}

describe('client authentication: one behaviour at /token, introspection and revocation', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let as: oidc.ServerMetadata;
  const clients = {} as Record<ClientName, { id: string; secret?: string }>;
  let jwtKey: CryptoKey;
  let strangerKey: CryptoKey;
  let web: HttpFlowClient;

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    await veil.admin('POST', '/admin/users', user);
    const create = async (body: Record<string, unknown>) => {
      const c = await veil.admin<Created>('POST', '/admin/clients', body);
      assert.equal(c.status, 201, JSON.stringify(c.body));
      return { id: c.body.client.client_id, secret: c.body.client_secret };
    };
    const rs = await registerResourceServer(veil, { identifier: 'https://parity.example/api' });
    clients.rs = { id: rs.clientId, secret: rs.clientSecret };
    clients.basic = await create({ client_name: 'basic', grant_types: ['client_credentials'], resources: [rs.identifier] });
    clients.post = await create({ client_name: 'post', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_post' });
    const pair = await generateKeyPair('ES256', { extractable: true });
    jwtKey = pair.privateKey;
    strangerKey = (await generateKeyPair('ES256')).privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    clients.jwt = await create({ client_name: 'jwt', grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] } });
    clients.public = await create({ client_name: 'public', public: true, redirect_uris: ['https://spa.example/cb'], scope: 'openid offline_access' });
    web = { issuer: veil.issuer, clientId: clients.public.id, redirectUri: 'https://spa.example/cb' };
    as = { issuer: veil.issuer, token_endpoint: `${veil.issuer}/token` };
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  // Senders built from openid-client's helpers (they read `as` and `client` as openid-client would).
  const helper =
    (name: ClientName, auth: () => oidc.ClientAuth): Sender =>
    async ({ body, headers }) => {
      // openid-client types ClientAuth as returning void, but PrivateKeyJwt's signs the assertion asynchronously and returns a promise.
      const authenticate: (...args: Parameters<oidc.ClientAuth>) => void | Promise<void> = auth();
      await authenticate(as, { client_id: clients[name].id }, body, headers);
    };
  const basic = (name: ClientName, secret?: string) => helper(name, () => oidc.ClientSecretBasic(secret ?? clients[name].secret!));
  const post = (name: ClientName, secret?: string) => helper(name, () => oidc.ClientSecretPost(secret ?? clients[name].secret!));
  const none = (name: ClientName) => helper(name, () => oidc.None());
  const privateKeyJwt = (name: ClientName, key = () => jwtKey, modify?: (h: Record<string, unknown>, p: Record<string, unknown>) => void): Sender =>
    helper(name, () => oidc.PrivateKeyJwt({ key: key(), kid: 'k1' }, modify ? { [oidc.modifyAssertion]: modify } : {}));
  const also =
    (first: Sender, then: Sender): Sender =>
    async (ctx) => {
      await first(ctx);
      await then(ctx);
    };
  const setHeader =
    (name: string, value: string): Sender =>
    async ({ headers }) =>
      void headers.set(name, value);
  const setParam =
    (name: string, value: string): Sender =>
    async ({ body }) =>
      void body.set(name, value);
  const appendParam =
    (name: string, value: string): Sender =>
    async ({ body }) =>
      void body.append(name, value);
  /** A correctly signed assertion from the jwt client, with claims of the case's choosing. */
  const assertion =
    (claims: (now: number) => Record<string, unknown>): Sender =>
    async ({ body }) => {
      const now = Math.floor(Date.now() / 1000);
      body.set('client_assertion', await new SignJWT(claims(now)).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(jwtKey));
      body.set('client_assertion_type', JWT_BEARER);
    };
  const claimsFor =
    (id: () => string, extra: Record<string, unknown> = {}) =>
    (now: number) => ({
      iss: id(),
      sub: id(),
      aud: veil.issuer,
      jti: crypto.randomUUID(),
      iat: now,
      exp: now + 60,
      ...extra,
    });
  /** An assertion that was first used at /token. */
  const usedAssertion: Sender = async (ctx) => {
    const first = { endpoint: '/token' as Endpoint, body: new URLSearchParams({ grant_type: 'client_credentials' }), headers: new Headers() };
    await privateKeyJwt('jwt')(first);
    const res = await send('/token', first.body, first.headers);
    assert.equal(res.status, 200, 'the first use is accepted');
    ctx.body.set('client_assertion', first.body.get('client_assertion')!);
    ctx.body.set('client_assertion_type', JWT_BEARER);
  };

  const cases: Case[] = [
    { name: 'client_secret_basic client, Basic', client: 'basic', send: basic('basic'), expect: 'accepted' },
    { name: 'client_secret_basic client, client_secret_post (interchangeable)', client: 'basic', send: post('basic'), expect: 'accepted' },
    { name: 'client_secret_post client, client_secret_post', client: 'post', send: post('post'), expect: 'accepted' },
    { name: 'client_secret_post client, Basic (interchangeable)', client: 'post', send: basic('post'), expect: 'accepted' },
    { name: 'private_key_jwt client, openid-client assertion', client: 'jwt', send: privateKeyJwt('jwt'), expect: 'accepted' },
    {
      name: 'public client, none',
      client: 'public',
      send: none('public'),
      expect: 'accepted',
      except: { '/token/introspection': invalidClient },
    },
    {
      name: 'resource server introspection credentials, Basic',
      client: 'rs',
      send: basic('rs'),
      expect: invalidClient,
      // At revocation the resource server is recognised and told why it is refused.
      except: { '/token/introspection': 'accepted', '/token/revocation': invalidClient },
    },
    {
      name: 'resource server introspection credentials, client_secret_post',
      client: 'rs',
      send: post('rs'),
      expect: invalidClient,
      // At revocation the resource server is recognised and told why it is refused.
      except: { '/token/introspection': 'accepted', '/token/revocation': invalidClient },
    },
    { name: 'wrong secret, Basic', client: 'basic', send: basic('basic', 'not-the-secret'), expect: invalidClient },
    { name: 'wrong secret, client_secret_post', client: 'post', send: post('post', 'not-the-secret'), expect: invalidClient },
    {
      name: 'unknown client, Basic',
      client: 'basic',
      send: async ({ body, headers }) => oidc.ClientSecretBasic('whatever')(as, { client_id: 'no-such-client' }, body, headers),
      expect: invalidClient,
    },
    { name: 'unknown client, none', client: 'public', send: setParam('client_id', 'no-such-client'), expect: invalidClient },
    { name: 'confidential client presenting none', client: 'basic', send: none('basic'), expect: invalidClient },
    { name: 'private_key_jwt client presenting a secret', client: 'jwt', send: post('jwt', 'guess'), expect: invalidClient },
    { name: 'public client presenting a secret', client: 'public', send: post('public', 'guess'), expect: invalidClient },
    { name: 'client_secret_basic client presenting an assertion', client: 'basic', send: assertion(claimsFor(() => clients.basic.id)), expect: invalidClient },
    { name: 'no client authentication at all', client: 'basic', send: async () => {}, expect: invalidRequest },
    { name: 'two mechanisms: Basic and client_secret', client: 'basic', send: also(basic('basic'), setParam('client_secret', 'x')), expect: invalidRequest },
    { name: 'two mechanisms: Basic and an assertion', client: 'jwt', send: also(privateKeyJwt('jwt'), setHeader('authorization', `Basic ${btoa('a:b')}`)), expect: invalidRequest },
    { name: 'Basic with a different client_id', client: 'basic', send: also(basic('basic'), setParam('client_id', 'someone-else')), expect: invalidRequest },
    {
      name: 'assertion with a different client_id',
      client: 'jwt',
      send: also(privateKeyJwt('jwt'), async ({ body }) => body.set('client_id', clients.basic.id)),
      expect: invalidRequest,
    },
    { name: 'client_id twice', client: 'post', send: also(post('post'), appendParam('client_id', 'other')), expect: invalidRequest },
    { name: 'client_secret twice', client: 'post', send: also(post('post'), appendParam('client_secret', 'other')), expect: invalidRequest },
    { name: 'a Bearer Authorization header', client: 'basic', send: setHeader('authorization', 'Bearer abc'), expect: invalidRequest },
    { name: 'malformed Basic', client: 'basic', send: setHeader('authorization', 'Basic !!!'), expect: invalidRequest },
    {
      name: 'Basic with an empty secret',
      client: 'basic',
      send: async ({ headers }) => void headers.set('authorization', `Basic ${btoa(`${clients.basic.id}:`)}`),
      expect: invalidRequest,
    },
    { name: 'assertion that is not a JWT', client: 'jwt', send: also(setParam('client_assertion', 'abc'), setParam('client_assertion_type', JWT_BEARER)), expect: invalidRequest },
    {
      name: 'assertion without client_assertion_type',
      client: 'jwt',
      send: also(privateKeyJwt('jwt'), async ({ body }) => body.delete('client_assertion_type')),
      expect: invalidRequest,
    },
    {
      name: 'assertion with another client_assertion_type',
      client: 'jwt',
      send: also(privateKeyJwt('jwt'), setParam('client_assertion_type', 'urn:example:other')),
      expect: invalidRequest,
    },
    { name: 'assertion without sub', client: 'jwt', send: assertion((now) => ({ ...claimsFor(() => clients.jwt.id)(now), sub: undefined })), expect: invalidClient },
    {
      name: 'assertion whose iss is not the client',
      client: 'jwt',
      send: assertion((now) => ({ ...claimsFor(() => clients.jwt.id)(now), iss: 'someone' })),
      expect: invalidClient,
    },
    { name: 'assertion without jti', client: 'jwt', send: assertion((now) => ({ ...claimsFor(() => clients.jwt.id)(now), jti: undefined })), expect: invalidClient },
    {
      name: 'assertion with aud as an array holding the issuer',
      client: 'jwt',
      send: privateKeyJwt('jwt', undefined, (_h, p) => void (p.aud = [veil.issuer])),
      expect: invalidClient,
    },
    {
      name: 'assertion with aud the token endpoint',
      client: 'jwt',
      send: privateKeyJwt('jwt', undefined, (_h, p) => void (p.aud = `${veil.issuer}/token`)),
      expect: invalidClient,
    },
    {
      name: 'assertion for another endpoint (aud introspection)',
      client: 'jwt',
      send: privateKeyJwt('jwt', undefined, (_h, p) => void (p.aud = `${veil.issuer}/token/introspection`)),
      expect: invalidClient,
    },
    { name: 'expired assertion', client: 'jwt', send: assertion((now) => ({ ...claimsFor(() => clients.jwt.id)(now), iat: now - 600, exp: now - 120 })), expect: invalidClient },
    { name: 'assertion signed by a key the client did not register', client: 'jwt', send: privateKeyJwt('jwt', () => strangerKey), expect: invalidClient },
    { name: 'assertion already used at /token', client: 'jwt', send: usedAssertion, expect: invalidClient },
  ];

  async function send(endpoint: Endpoint, body: URLSearchParams, headers: Headers) {
    headers.set('content-type', 'application/x-www-form-urlencoded');
    for (const [k, v] of body) if (k === 'client_secret' || k === 'client_assertion') rememberSecret(v, k);
    rememberSecret(headers.get('authorization') ?? undefined, 'authorization');
    const res = await fetch(`${veil.issuer}${endpoint}`, { method: 'POST', headers, body: body.toString() });
    const text = await res.text();
    const parsed = (text ? JSON.parse(text) : {}) as Record<string, unknown>;
    rememberTokens(parsed);
    return { status: res.status, body: parsed };
  }

  /** A live token of the client, and a check whether it is still live (through a good credential). */
  async function tokenOf(client: ClientName): Promise<{ value: string; active(): Promise<boolean> }> {
    if (client === 'public') {
      const tokens = await httpAuthorizationCodeFlow(web, user);
      const value = tokens.refresh_token;
      // Public clients may not introspect: whether the refresh token still works is the test.
      return {
        value,
        active: async () => {
          const b = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: value, client_id: clients.public.id });
          return (await send('/token', b, new Headers())).status === 200;
        },
      };
    }
    const owner: ClientName = client === 'rs' ? 'basic' : client;
    // A resource server sees only tokens for its own audience.
    const grant = { grant_type: 'client_credentials', ...(client === 'rs' ? { resource: 'https://parity.example/api' } : {}) };
    const auth = { endpoint: '/token' as Endpoint, body: new URLSearchParams(grant), headers: new Headers() };
    await (owner === 'jwt' ? privateKeyJwt('jwt') : basic(owner))(auth);
    const res = await send('/token', auth.body, auth.headers);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const value = res.body.access_token as string;
    return {
      value,
      active: async () => {
        const check = { endpoint: '/token/introspection' as Endpoint, body: new URLSearchParams({ token: value }), headers: new Headers() };
        await basic('basic')(check);
        // The basic client may not see other clients' tokens: ask as the owner where it can.
        if (owner !== 'basic') {
          check.headers.delete('authorization');
          if (owner === 'jwt') await privateKeyJwt('jwt')(check);
          else if (owner === 'post') await post('post')(check);
          else await basic(owner)(check);
        }
        const r = await send('/token/introspection', check.body, check.headers);
        assert.equal(r.status, 200);
        return r.body.active === true;
      },
    };
  }

  for (const c of cases) {
    test(c.name, async () => {
      const seen: Record<string, unknown> = {};
      // A refused client is told the same words everywhere: nothing that tells an unknown client
      // id from a wrong secret or the wrong method (no enumeration through Veil's endpoints).
      const invalidClientWords = new Set<string>();
      for (const endpoint of ENDPOINTS) {
        const expected = c.except?.[endpoint] ?? c.expect;
        const body = new URLSearchParams();
        const headers = new Headers();
        let target: Awaited<ReturnType<typeof tokenOf>> | undefined;
        if (endpoint === '/token') {
          if (c.client === 'public') {
            body.set('grant_type', 'refresh_token');
            body.set('refresh_token', 'not-a-refresh-token');
          } else body.set('grant_type', 'client_credentials');
        } else {
          target = await tokenOf(c.client);
          body.set('token', target.value);
        }
        await c.send({ endpoint, body, headers });
        const res = await send(endpoint, body, headers);
        seen[endpoint] = { status: res.status, error: res.body.error };
        const what = `${c.name} at ${endpoint}: ${JSON.stringify(res.body)}`;
        if (expected === 'accepted') {
          if (endpoint === '/token') {
            if (c.client === 'public') assert.deepEqual([res.status, res.body.error], [400, 'invalid_grant'], what);
            else assert.equal(res.status, 200, what);
          } else if (endpoint === '/token/introspection') {
            assert.equal(res.status, 200, what);
            assert.equal(res.body.active, true, what);
          } else {
            assert.equal(res.status, 200, what);
            assert.equal(await target!.active(), false, `${what}: revoked`);
          }
        } else {
          assert.deepEqual({ status: res.status, error: res.body.error }, expected, what);
          if (res.body.error === 'invalid_client' && !c.except?.[endpoint]) invalidClientWords.add(String(res.body.error_description));
          assert.equal(res.body.access_token, undefined, what);
          assert.equal(res.body.active, undefined, what);
          if (target) assert.equal(await target.active(), true, `${what}: the token is untouched`);
        }
      }
      assert.ok(invalidClientWords.size <= 1, `${c.name}: invalid_client described differently per endpoint: ${[...invalidClientWords].join(' | ')}`);
    });
  }

  describe('full flows with openid-client, each authentication method', () => {
    async function discover(clientId: string, auth: oidc.ClientAuth) {
      return oidc.discovery(new URL(veil.issuer), clientId, undefined, auth, { execute: [oidc.allowInsecureRequests] });
    }

    const confidential: Array<[string, ClientName, () => oidc.ClientAuth]> = [
      ['ClientSecretBasic', 'basic', () => oidc.ClientSecretBasic(clients.basic.secret)],
      ['ClientSecretPost for a client_secret_basic client (openid-client default)', 'basic', () => oidc.ClientSecretPost(clients.basic.secret)],
      ['ClientSecretPost', 'post', () => oidc.ClientSecretPost(clients.post.secret)],
      ['ClientSecretBasic for a client_secret_post client', 'post', () => oidc.ClientSecretBasic(clients.post.secret)],
      ['PrivateKeyJwt', 'jwt', () => oidc.PrivateKeyJwt({ key: jwtKey, kid: 'k1' })],
    ];
    for (const [name, client, auth] of confidential) {
      test(`${name}: client credentials, introspection, revocation`, async () => {
        const config = await discover(clients[client].id, auth());
        const tokens = await oidc.clientCredentialsGrant(config);
        rememberTokens(tokens);
        const live = await oidc.tokenIntrospection(config, tokens.access_token);
        assert.equal(live.active, true);
        assert.equal(live.client_id, clients[client].id);
        await oidc.tokenRevocation(config, tokens.access_token);
        assert.equal((await oidc.tokenIntrospection(config, tokens.access_token)).active, false);
      });
    }

    test('None: authorization code, revocation; introspection refused for a public client', async () => {
      const config = await discover(clients.public.id, oidc.None());
      const { code, verifier } = await httpAuthorize(web, user);
      const callback = new URL(`${web.redirectUri}?${new URLSearchParams({ code, iss: veil.issuer }).toString()}`);
      const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier });
      rememberTokens(tokens);
      await assert.rejects(oidc.tokenIntrospection(config, tokens.refresh_token!), (err: oidc.ResponseBodyError) => err.error === 'invalid_client');
      await oidc.tokenRevocation(config, tokens.refresh_token!);
      await assert.rejects(oidc.refreshTokenGrant(config, tokens.refresh_token!), (err: oidc.ResponseBodyError) => err.error === 'invalid_grant');
    });
  });

  test("revoking another client's token answers 200 and revokes nothing", async () => {
    const theirs = await tokenOf('post');
    const attempt = { endpoint: '/token/revocation' as Endpoint, body: new URLSearchParams({ token: theirs.value }), headers: new Headers() };
    await basic('basic')(attempt);
    const res = await send('/token/revocation', attempt.body, attempt.headers);
    assert.equal(res.status, 200);
    assert.equal(await theirs.active(), true);
  });

  test('one assertion used concurrently at /token and introspection: exactly one use wins', async () => {
    const target = await tokenOf('jwt');
    for (let round = 0; round < 5; round++) {
      const signed = { endpoint: '/token' as Endpoint, body: new URLSearchParams(), headers: new Headers() };
      await privateKeyJwt('jwt')(signed);
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) => {
          const endpoint: Endpoint = i % 2 ? '/token/introspection' : '/token';
          const body = new URLSearchParams(signed.body);
          if (endpoint === '/token') body.set('grant_type', 'client_credentials');
          else body.set('token', target.value);
          return send(endpoint, body, new Headers());
        }),
      );
      const winners = results.filter((r) => r.status === 200);
      assert.equal(winners.length, 1, `round ${round}: ${JSON.stringify(results.map((r) => [r.status, r.body.error]))}`);
      for (const r of results.filter((x) => x.status !== 200)) assert.deepEqual([r.status, r.body.error], [401, 'invalid_client']);
    }
  });
});
