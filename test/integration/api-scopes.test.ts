/**
 * Per-client API scope allow-lists (issue 7, finding 1): a token request gets only the
 * intersection of what it asked, what the client is allowed for that resource (and what the
 * resource server registers today), and, for user grants, what the user consented to. Anything
 * asked beyond the allow-list is `invalid_scope`, and nothing is issued.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createHash, randomBytes } from 'node:crypto';
import { CookieJar, exchange, httpAuthorize, httpAuthorizeIn, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { generateEncryptionKey, openSealed, registerResourceServer, type TestResourceServer } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

type PublicClient = {
  client_id: string;
  client_name: string;
  scope?: string;
  resource_scopes?: Record<string, string[]>;
  allowed_resources?: string[];
  redirect_uris: string[];
  grant_types: string[];
};
type Created = { client: PublicClient; client_secret?: string };
type ErrorBody = { error: string; error_description: string };

const API = 'https://api.example';
const OTHER = 'https://other.example/api';
const REDIRECT = 'https://app.example/cb';
const ADMIN_TOKEN = randomBytes(24).toString('base64url');

describe('API scopes are allowed per client and per resource', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let api: TestResourceServer;
  let other: TestResourceServer;
  const user = { email: 'scopes@example.com', password: 'correct horse battery staple' };

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores, { ADMIN_TOKEN });
    api = await registerResourceServer(veil, { identifier: API, scopes: ['read', 'write', 'admin'], claims: ['email', 'name'] });
    other = await registerResourceServer(veil, { identifier: OTHER, scopes: ['read', 'export'] });
    assert.equal((await veil.admin('POST', '/admin/users', { ...user, name: 'Scope Tester' })).status, 201);
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  const countKeys = async (model: string) => (await stores.redis.keys(`${stores.keyPrefix}${model}:*`)).length;

  async function machine(body: Record<string, unknown>): Promise<HttpFlowClient> {
    const c = await veil.admin<Created>('POST', '/admin/clients', { client_name: 'machine', grant_types: ['client_credentials'], ...body });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    return { issuer: veil.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret!, redirectUri: '' };
  }

  async function web(body: Record<string, unknown>): Promise<HttpFlowClient> {
    const c = await veil.admin<Created>('POST', '/admin/clients', {
      client_name: 'Scoped Web',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      ...body,
    });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    return { issuer: veil.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret!, redirectUri: REDIRECT };
  }

  /** Authorizes without prompt=consent in a session's jar: the consent page if one is shown, else the code. */
  async function authorizeQuietly(jar: CookieJar, client: HttpFlowClient, scope = 'openid') {
    const authorize = new URL(`${veil.issuer}/auth`);
    authorize.search = new URLSearchParams({
      client_id: client.clientId,
      response_type: 'code',
      scope,
      resource: API,
      redirect_uri: REDIRECT,
      code_challenge: createHash('sha256').update(randomBytes(32)).digest('base64url'),
      code_challenge_method: 'S256',
    }).toString();
    let url = authorize.toString();
    for (let hop = 0; hop < 6; hop++) {
      if (url.startsWith(REDIRECT)) return { code: new URL(url).searchParams.get('code') };
      const res = await fetch(url, { headers: { cookie: jar.header() }, redirect: 'manual' });
      jar.store(res);
      if (res.status === 303 || res.status === 302) {
        url = new URL(res.headers.get('location')!, veil.issuer).toString();
        continue;
      }
      return { page: await res.text(), url };
    }
    throw new Error('too many redirects');
  }

  test('regression: a client with no API scopes asking scope=admin write gets invalid_scope and no token', async () => {
    const client = await machine({ resources: [API] });
    const before = await countKeys('ClientCredentials');
    const res = await tokenRequest(client, { grant_type: 'client_credentials', resource: API, scope: 'admin write' });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error, 'invalid_scope');
    assert.equal(res.body.access_token, undefined);
    assert.equal(await countKeys('ClientCredentials'), before, 'no token stored');
  });

  test("--scope accepts OIDC scopes and any scope registered by one of the client's resources", async () => {
    const c = await veil.admin<Created>('POST', '/admin/clients', {
      client_name: 'mixed',
      redirect_uris: [REDIRECT],
      scope: 'openid profile read write',
      resources: [API],
    });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    assert.equal(c.body.client.scope, 'openid profile');
    assert.deepEqual(c.body.client.resource_scopes, { [API]: ['read', 'write'] });
  });

  test('client_credentials: the allow-list is granted, anything beyond it is invalid_scope', async () => {
    const client = await machine({ scope: 'read', resources: [API] });
    const ok = await tokenRequest(client, { grant_type: 'client_credentials', resource: API, scope: 'read' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.scope, 'read');
    assert.equal((await openSealed(ok.body.access_token!, api.privateKey, veil.issuer, API)).payload.scope, 'read');

    const before = await countKeys('ClientCredentials');
    for (const scope of ['read write', 'admin', 'read nonsense']) {
      const res = await tokenRequest(client, { grant_type: 'client_credentials', resource: API, scope });
      assert.equal(res.status, 400, `${scope}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error, 'invalid_scope', scope);
      assert.equal(res.body.access_token, undefined);
    }
    assert.equal(await countKeys('ClientCredentials'), before, 'nothing issued');
  });

  test('authorization code: an API scope beyond the allow-list is answered invalid_scope at /auth, nothing issued', async () => {
    const client = await web({ scope: 'openid offline_access read', resources: [API] });
    const before = { codes: await countKeys('AuthorizationCode'), interactions: await countKeys('Interaction') };
    const authorize = new URL(`${veil.issuer}/auth`);
    authorize.search = new URLSearchParams({
      client_id: client.clientId,
      response_type: 'code',
      scope: 'openid read write',
      resource: API,
      redirect_uri: REDIRECT,
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
      state: 'st',
    }).toString();
    const res = await fetch(authorize, { redirect: 'manual' });
    assert.equal(res.status, 303);
    const location = new URL(res.headers.get('location')!);
    assert.equal(location.origin + location.pathname, REDIRECT);
    assert.equal(location.searchParams.get('error'), 'invalid_scope');
    assert.equal(location.searchParams.get('state'), 'st');
    assert.equal(location.searchParams.get('code'), null);
    assert.equal(await countKeys('AuthorizationCode'), before.codes);
    assert.equal(await countKeys('Interaction'), before.interactions, 'no sign-in started');
  });

  test('authorization code: the token carries exactly the consented scopes; refresh beyond them is invalid_scope', async () => {
    const client = await web({ scope: 'openid offline_access read write', resources: [API] });
    const { code, verifier } = await httpAuthorize(client, user, 'openid offline_access read', { resource: API });
    const tokens = await exchange(client, code, verifier);
    const { payload } = await openSealed(tokens.access_token, api.privateKey, veil.issuer, API);
    assert.equal(payload.scope, 'read');

    // `write` is allowed to the client but was not consented: refresh cannot widen the grant.
    const before = await countKeys('AccessToken');
    const wider = await tokenRequest(client, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token, scope: 'openid read write' });
    assert.equal(wider.status, 400, JSON.stringify(wider.body));
    assert.equal(wider.body.error, 'invalid_scope');
    const admin = await tokenRequest(client, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token, scope: 'admin' });
    assert.equal(admin.body.error, 'invalid_scope');
    assert.equal(await countKeys('AccessToken'), before, 'nothing issued');

    // The refresh token still works for what was consented.
    const again = await tokenRequest(client, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal((await openSealed(again.body.access_token!, api.privateKey, veil.issuer, API)).payload.scope, 'read');
  });
  /** The client's row as stored (metadata JSON, secret sealed): compared whole to prove a refusal changed nothing. */
  const storedRow = async (clientId: string) => JSON.stringify(await veil.database.prisma.client.findUnique({ where: { clientId } }));
  const patch = (clientId: string, body: unknown) => veil.admin<{ client: PublicClient } & ErrorBody>('PATCH', `/admin/clients/${encodeURIComponent(clientId)}`, body);

  test('a scope name two resources share must be given per resource; each resource gets only its own', async () => {
    const ambiguous = await veil.admin<ErrorBody>('POST', '/admin/clients', { client_name: 'both', grant_types: ['client_credentials'], scope: 'read', resources: [API, OTHER] });
    assert.equal(ambiguous.status, 400);
    assert.equal(ambiguous.body.error, 'invalid_request');
    assert.match(ambiguous.body.error_description, /several of the client's resources/);
    const unknown = await veil.admin<ErrorBody>('POST', '/admin/clients', { client_name: 'x', grant_types: ['client_credentials'], scope: 'export', resources: [API] });
    assert.equal(unknown.status, 400, 'a scope of an API the client may not call');
    const notRegistered = await veil.admin<ErrorBody>('POST', '/admin/clients', { client_name: 'x', grant_types: ['client_credentials'], resource_scopes: { [API]: ['export'] } });
    assert.equal(notRegistered.status, 400);
    assert.match(notRegistered.body.error_description, /not registered by/);

    const client = await machine({ scope: 'write', resource_scopes: { [OTHER]: ['read'] }, resources: [API] });
    const row = await veil.admin<{ clients: PublicClient[] }>('GET', '/admin/clients');
    const stored = row.body.clients.find((c) => c.client_id === client.clientId)!;
    assert.deepEqual(stored.allowed_resources, [API, OTHER], 'a resource named in resource_scopes is allowed too');
    assert.deepEqual(stored.resource_scopes, { [API]: ['write'], [OTHER]: ['read'] });

    const fromOther = await tokenRequest(client, { grant_type: 'client_credentials', resource: OTHER, scope: 'read' });
    assert.equal(fromOther.status, 200, JSON.stringify(fromOther.body));
    assert.equal((await openSealed(fromOther.body.access_token!, other.privateKey, veil.issuer, OTHER)).payload.scope, 'read');
    const fromApi = await tokenRequest(client, { grant_type: 'client_credentials', resource: API, scope: 'read' });
    assert.equal(fromApi.body.error, 'invalid_scope', 'read is allowed for the other API only');
    // An API scope with no resource at all is refused too, not silently dropped.
    const noResource = await tokenRequest(client, { grant_type: 'client_credentials', scope: 'write' });
    assert.equal(noResource.body.error, 'invalid_scope');
  });

  test('a client registered before allow-lists (no resource_scopes) gets no API scope', async () => {
    const legacy = { clientId: 'legacy-client', secret: 'a-long-legacy-client-secret-0123456789' };
    await veil.database.prisma.client.create({
      data: {
        clientId: legacy.clientId,
        metadata: {
          client_id: legacy.clientId,
          client_secret: legacy.secret,
          client_name: 'legacy',
          grant_types: ['client_credentials'],
          response_types: [],
          redirect_uris: [],
          token_endpoint_auth_method: 'client_secret_basic',
          allowed_resources: [API],
        },
      },
    });
    const client: HttpFlowClient = { issuer: veil.issuer, clientId: legacy.clientId, clientSecret: legacy.secret, redirectUri: '' };
    assert.equal((await tokenRequest(client, { grant_type: 'client_credentials', resource: API, scope: 'read' })).body.error, 'invalid_scope');
    const bare = await tokenRequest(client, { grant_type: 'client_credentials', resource: API });
    assert.equal(bare.status, 200, JSON.stringify(bare.body));
    assert.equal((await openSealed(bare.body.access_token!, api.privateKey, veil.issuer, API)).payload.scope, undefined);
    // An admin grants the scopes with an update; then they can be had.
    assert.equal((await patch(legacy.clientId, { resource_scopes: { [API]: ['read'] } })).status, 200);
    const granted = await tokenRequest(client, { grant_type: 'client_credentials', resource: API, scope: 'read' });
    assert.equal(granted.body.scope, 'read', JSON.stringify(granted.body));
  });

  test('a resource server may not register a scope named like an OpenID Connect scope', async () => {
    const { publicJwk } = await generateEncryptionKey();
    for (const scope of ['openid', 'offline_access', 'profile', 'email']) {
      const res = await veil.admin<ErrorBody>('POST', '/admin/resources', {
        identifier: `https://oidc-named.example/${scope}`,
        name: 'named',
        scopes: ['read', scope],
        jwk: publicJwk,
      });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.match(res.body.error_description, /OpenID Connect/);
    }
    const listed = await veil.admin<{ resources: Array<{ identifier: string }> }>('GET', '/admin/resources');
    assert.ok(!listed.body.resources.some((r) => r.identifier.startsWith('https://oidc-named.example/')), 'nothing registered');
  });

  test('deleting a resource server takes it off every client: re-registering the identifier grants them nothing', async () => {
    const temp = await registerResourceServer(veil, { identifier: 'https://temp.example/api', scopes: ['a', 'b'] });
    const client = await machine({ scope: 'a b', resources: [temp.identifier, API], resource_scopes: { [API]: ['read'] } });
    assert.equal((await tokenRequest(client, { grant_type: 'client_credentials', resource: temp.identifier, scope: 'a b' })).status, 200);
    assert.equal((await veil.admin('DELETE', `/admin/resources/${encodeURIComponent(temp.identifier)}`)).status, 204);
    const gone = await tokenRequest(client, { grant_type: 'client_credentials', resource: temp.identifier, scope: 'a' });
    assert.equal(gone.body.error, 'invalid_target');

    // The client no longer names it, and an unrelated update still works.
    const updated = await veil.admin<{ client: PublicClient }>('PATCH', `/admin/clients/${client.clientId}`, { client_name: 'renamed' });
    assert.equal(updated.status, 200, JSON.stringify(updated.body));
    assert.deepEqual(updated.body.client.allowed_resources, [API]);
    assert.deepEqual(updated.body.client.resource_scopes, { [API]: ['read'] });

    // Whoever registers the identifier next (perhaps another API) starts with no clients.
    await registerResourceServer(veil, { identifier: temp.identifier, scopes: ['a'] });
    const again = await tokenRequest(client, { grant_type: 'client_credentials', resource: temp.identifier, scope: 'a' });
    assert.equal(again.body.error, 'invalid_target');
    assert.equal((await tokenRequest(client, { grant_type: 'client_credentials', resource: API, scope: 'read' })).status, 200);
  });

  test("the consent page groups API scopes under the API's name and lists the user claims it will receive", async () => {
    const client = await web({ scope: 'openid email read write', resources: [API] });
    const jar = new CookieJar();
    const authorize = new URL(`${veil.issuer}/auth`);
    authorize.search = new URLSearchParams({
      client_id: client.clientId,
      response_type: 'code',
      scope: 'openid read',
      resource: API,
      prompt: 'consent',
      redirect_uri: REDIRECT,
      code_challenge: createHash('sha256').update(randomBytes(32)).digest('base64url'),
      code_challenge_method: 'S256',
    }).toString();
    const first = await fetch(authorize, { redirect: 'manual' });
    jar.store(first);
    const loginPath = first.headers.get('location')!;
    const login = await fetch(new URL(`${loginPath}/login`, veil.issuer), {
      method: 'POST',
      headers: { cookie: jar.header(), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(user).toString(),
      redirect: 'manual',
    });
    jar.store(login);
    assert.equal(login.status, 303);
    let url = new URL(login.headers.get('location')!, veil.issuer);
    let page: Response | undefined;
    for (let hop = 0; hop < 5; hop++) {
      page = await fetch(url, { headers: { cookie: jar.header() }, redirect: 'manual' });
      jar.store(page);
      if (page.status !== 303 && page.status !== 302) break;
      url = new URL(page.headers.get('location')!, veil.issuer);
    }
    assert.equal(page!.status, 200);
    assert.match(page!.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    const html = await page!.text();
    const section = html.slice(html.indexOf('<section class="veil-api">'), html.indexOf('</section>'));
    assert.ok(section.includes(`RS ${API}`), 'the API under its registered name');
    assert.ok(section.includes(`<code class="veil-api-id">${API}</code>`));
    assert.match(section, /<code class="veil-scope-name">read<\/code>/);
    assert.doesNotMatch(html, /<code class="veil-scope-name">write<\/code>/, 'only what is asked');
    assert.match(section, /Your email address <code class="veil-scope-name">email<\/code>/);
    assert.match(section, /Your name <code class="veil-scope-name">name<\/code>/);
    assert.doesNotMatch(html, /<script/);
  });

  test('an API that receives user claims needs consent even when no new scope is asked for it', async () => {
    const client = await web({ scope: 'openid read', resources: [API] });
    const jar = new CookieJar();
    // Consent to the client for sign-in only: the grant covers openid, and no API yet.
    await httpAuthorizeIn(jar, client, user, 'openid');

    // The API would receive the user's email and name: the user is asked first.
    const first = await authorizeQuietly(jar, client);
    assert.equal(first.code, undefined, 'no code without consent to the API and its claims');
    assert.ok(first.page, 'the consent page is shown');
    const section = first.page.slice(first.page.indexOf('<section class="veil-api">'));
    assert.ok(section.includes(`<code class="veil-api-id">${API}</code>`));
    assert.match(section, /Your email address <code class="veil-scope-name">email<\/code>/);
    const action = [...first.page.matchAll(/action="([^"]+)"/g)].map((m) => m[1]!).find((a) => a.endsWith('/confirm'))!;
    const confirmed = await fetch(new URL(action, veil.issuer), {
      method: 'POST',
      headers: { cookie: jar.header(), 'content-type': 'application/x-www-form-urlencoded' },
      body: '',
      redirect: 'manual',
    });
    jar.store(confirmed);
    assert.equal(confirmed.status, 303);

    // Once consented, the same request goes straight through.
    const second = await authorizeQuietly(jar, client);
    assert.ok(second.code, `no consent page the second time (${second.url ?? ''})`);
  });

  test('a token carries only the user claims consented for its API; a claim not consented is withheld and asked for', async () => {
    const client = await web({ scope: 'openid offline_access read', resources: [API] });
    const jar = new CookieJar();
    const { code, verifier } = await httpAuthorizeIn(jar, client, user, 'openid offline_access read', { resource: API });
    const tokens = await exchange(client, code, verifier);
    const consented = await openSealed(tokens.access_token, api.privateKey, veil.issuer, API);
    assert.equal(consented.payload.email, user.email, 'consented claims ride in the token');
    assert.equal(consented.payload.name, 'Scope Tester');

    // As if the API had been registered to receive `name` after the user consented to `email` only.
    const grantId = (await veil.database.prisma.grantApiConsent.findFirstOrThrow({ where: { resource: API, grant: { clientId: client.clientId } } })).grantId;
    await veil.database.prisma.grantApiConsent.update({ where: { grantId_resource: { grantId, resource: API } }, data: { claims: ['email'] } });
    const refreshed = await tokenRequest(client, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    const narrowed = await openSealed(refreshed.body.access_token!, api.privateKey, veil.issuer, API);
    assert.equal(narrowed.payload.email, user.email);
    assert.equal(narrowed.payload.name, undefined, 'a claim the user did not consent to is withheld');
    // The next authorization asks again, for the API's claims, though no new scope is asked.
    const again = await authorizeQuietly(jar, client, 'openid read');
    assert.equal(again.code, undefined, 'asked again before the API gets the claim not consented');
    assert.match(again.page ?? '', /Your name <code class="veil-scope-name">name<\/code>/);
  });

  test('clients update changes redirect URIs, scopes, resources and grant types in place, audited', async () => {
    const client = await web({ scope: 'openid read', resources: [API] });
    const res = await patch(client.clientId, {
      redirect_uris: ['https://app.example/new-cb'],
      scope: 'openid email offline_access write',
      resource_scopes: { [OTHER]: ['export'] },
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.client.redirect_uris, ['https://app.example/new-cb']);
    assert.equal(res.body.client.scope, 'openid email offline_access');
    assert.deepEqual(res.body.client.resource_scopes, { [API]: ['write'], [OTHER]: ['export'] });
    assert.deepEqual(res.body.client.grant_types, ['authorization_code', 'refresh_token', 'client_credentials']);
    assert.equal((res.body.client as Record<string, unknown>).client_secret, undefined, 'the secret is never shown');
    // The secret survives the update.
    const cc = await tokenRequest(client, { grant_type: 'client_credentials', resource: OTHER, scope: 'export' });
    assert.equal(cc.status, 200, JSON.stringify(cc.body));
    assert.equal((await tokenRequest(client, { grant_type: 'client_credentials', resource: API, scope: 'read' })).body.error, 'invalid_scope');

    // Dropping a resource drops its scopes; the rest stays as it was.
    const narrowed = await patch(client.clientId, { resources: [API] });
    assert.equal(narrowed.status, 200, JSON.stringify(narrowed.body));
    assert.deepEqual(narrowed.body.client.allowed_resources, [API]);
    assert.deepEqual(narrowed.body.client.resource_scopes, { [API]: ['write'] });
    assert.equal(narrowed.body.client.scope, 'openid email offline_access');
    assert.equal((await tokenRequest(client, { grant_type: 'client_credentials', resource: OTHER })).body.error, 'invalid_target');

    const events = await veil.admin<{ events: { type: string; client_id: string; actor: string; details: Record<string, unknown> }[] }>(
      'GET',
      '/admin/audit?since=1h&type=client.updated',
    );
    const mine = events.body.events.filter((e) => e.client_id === client.clientId);
    assert.equal(mine.length, 2);
    assert.equal(mine[1]!.actor, 'admin');
    assert.deepEqual((mine[1]!.details.fields as string[]).sort(), ['grant_types', 'redirect_uris', 'resource_scopes', 'scope']);
    assert.deepEqual(mine[0]!.details.resource_scopes, { [API]: ['write'] });
    assert.doesNotMatch(JSON.stringify(mine), /app\.example/, 'no URIs in the trail');
  });

  test('a refused update changes nothing: bad input, policy, unknown resource, no admin token, unknown client', async () => {
    const c = await veil.admin<Created>('POST', '/admin/clients', { client_name: 'spa', public: true, redirect_uris: [REDIRECT], scope: 'openid read', resources: [API] });
    const clientId = c.body.client.client_id;
    const before = await storedRow(clientId);
    const refusals: Array<[unknown, number, string]> = [
      [{}, 400, 'invalid_request'],
      [{ token_endpoint_auth_method: 'client_secret_basic' }, 400, 'invalid_request'],
      [{ resources: ['https://nowhere.example'] }, 400, 'invalid_request'],
      [{ scope: 'openid admin:everything' }, 400, 'invalid_request'],
      [{ resource_scopes: { [API]: ['delete'] } }, 400, 'invalid_request'],
      [{ grant_types: ['client_credentials'] }, 400, 'invalid_request'],
      [{ redirect_uris: ['not a url'] }, 400, 'invalid_client_metadata'],
      [{ grant_types: ['authorization_code'], redirect_uris: [] }, 400, 'invalid_client_metadata'],
      [{ scope: 42 }, 400, 'invalid_request'],
    ];
    for (const [body, status, error] of refusals) {
      const res = await patch(clientId, body);
      assert.equal(res.status, status, `${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error, error, JSON.stringify(body));
      assert.equal(await storedRow(clientId), before, `${JSON.stringify(body)} changed nothing`);
    }
    const noToken = await fetch(`${veil.adminUrl}/admin/clients/${clientId}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ scope: 'openid' }),
    });
    assert.equal(noToken.status, 401);
    assert.equal(await storedRow(clientId), before);
    const missing = await patch('no-such-client', { scope: 'openid' });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error, 'not_found');
  });

  test('a scope removed by an update can no longer be obtained, also with a refresh token issued before', async () => {
    const client = await web({ scope: 'openid offline_access read write', resources: [API] });
    const { code, verifier } = await httpAuthorize(client, user, 'openid offline_access read write', { resource: API });
    const tokens = await exchange(client, code, verifier);
    assert.equal((await openSealed(tokens.access_token, api.privateKey, veil.issuer, API)).payload.scope, 'read write');

    assert.equal((await patch(client.clientId, { scope: 'openid offline_access read' })).status, 200);
    const before = await countKeys('AccessToken');
    const asked = await tokenRequest(client, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token, scope: 'openid read write' });
    assert.equal(asked.status, 400, JSON.stringify(asked.body));
    assert.equal(asked.body.error, 'invalid_scope');
    assert.equal(await countKeys('AccessToken'), before, 'nothing issued');
    // Without a scope parameter the refresh goes through, and the token no longer carries `write`.
    const refreshed = await tokenRequest(client, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    assert.equal((await openSealed(refreshed.body.access_token!, api.privateKey, veil.issuer, API)).payload.scope, 'read');
  });

  test('an update reaches every process at once (cache invalidated over the bus)', async () => {
    // Same stores and keys directory (so the same master key): another process of one deployment.
    const second = await startTestVeil(stores, { ADMIN_TOKEN, KEYS_DIR: veil.config.keysDir });
    try {
      const client = await machine({ scope: 'read write', resources: [API] });
      const there: HttpFlowClient = { ...client, issuer: second.issuer };
      assert.equal((await tokenRequest(there, { grant_type: 'client_credentials', resource: API, scope: 'read write' })).status, 200, 'cached in the second process');
      assert.equal((await patch(client.clientId, { scope: 'read' })).status, 200);
      let error: string | undefined;
      for (let i = 0; i < 40 && error !== 'invalid_scope'; i++) {
        error = (await tokenRequest(there, { grant_type: 'client_credentials', resource: API, scope: 'read write' })).body.error;
        if (error !== 'invalid_scope') await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(error, 'invalid_scope');
    } finally {
      await second.stop();
    }
  });
});

describe('redirect URIs in production (RFC 9700 §2.1)', () => {
  let stores: TestStores;
  let veil: TestVeil;

  before(async () => {
    stores = await createTestStores();
    const { generateMasterKey } = await import('../../src/crypto/master-key.js');
    veil = await startTestVeil(stores, {
      NODE_ENV: 'production',
      ISSUER: 'https://id.example.com',
      TRUST_PROXY: 'true',
      COOKIE_KEYS: randomBytes(32).toString('base64url'),
      VEIL_MASTER_KEY: generateMasterKey(),
      ADMIN_TOKEN,
    });
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  test('http redirect URIs are refused unless they are loopback, on create and on update', async () => {
    for (const uri of ['http://app.example/cb', 'http://10.0.0.5/cb', 'http://127.example.com/cb']) {
      const before = (await veil.admin<{ clients: unknown[] }>('GET', '/admin/clients')).body.clients.length;
      const res = await veil.admin<ErrorBody>('POST', '/admin/clients', { client_name: 'web', redirect_uris: [uri] });
      assert.equal(res.status, 400, uri);
      assert.equal(res.body.error, 'invalid_request');
      assert.match(res.body.error_description, /loopback/);
      assert.equal((await veil.admin<{ clients: unknown[] }>('GET', '/admin/clients')).body.clients.length, before, 'nothing created');
    }
    for (const uri of ['http://127.0.0.1:8080/cb', 'http://[::1]:8080/cb', 'http://localhost/cb', 'https://app.example/cb']) {
      const res = await veil.admin<Created>('POST', '/admin/clients', { client_name: 'native', public: true, redirect_uris: [uri] });
      assert.equal(res.status, 201, `${uri}: ${JSON.stringify(res.body)}`);
    }
    const c = await veil.admin<Created>('POST', '/admin/clients', { client_name: 'web', redirect_uris: ['https://app.example/cb'] });
    const row = async () => JSON.stringify(await veil.database.prisma.client.findUnique({ where: { clientId: c.body.client.client_id } }));
    const before = await row();
    const res = await veil.admin<ErrorBody>('PATCH', `/admin/clients/${c.body.client.client_id}`, { redirect_uris: ['http://app.example/cb'] });
    assert.equal(res.status, 400);
    assert.match(res.body.error_description, /loopback/);
    assert.equal(await row(), before, 'nothing changed');
  });
});
