/**
 * Issue 9, acceptance 1 and 2: Veil Gate behind a real nginx (Debian's, with auth_request),
 * configured by docs/gateway/nginx.conf itself, in front of an upstream that echoes what it
 * receives; a real Veil on PostgreSQL and Redis issues, revokes, exchanges and introspects.
 *
 * What the API behind nginx sees is exactly what the gate's route configures: the mapped claims
 * as headers, no Authorization (or a token re-sealed to an internal service on an exchange
 * route), nothing the caller forged. Every refusal (no token, garbage, another API's token, a
 * missing scope, no route) answers with its RFC 6750 challenge and never reaches the upstream.
 * Revocation: local verification keeps a revoked token until it expires; introspection without
 * a cache refuses it at once; with `cacheSeconds` it is refused once the cached answer expires.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { compactDecrypt, decodeJwt, exportJWK } from 'jose';
import { startDemoApi } from '../../src/demo-api/app.js';
import { loadGateConfig } from '../../src/gate/config.js';
import { startGate, type RunningGate } from '../../src/gate/server.js';
import { createLogger } from '../../src/observability/logger.js';
import { dpopKey, dpopProof } from '../helpers/dpop.js';
import { startEchoUpstream, type EchoUpstream, type EchoedRequest } from '../helpers/echo-upstream.js';
import { httpAuthorizationCodeFlow, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { freePort } from '../helpers/net.js';
import { startGatewayNginx, type RunningNginx } from '../helpers/nginx.js';
import { REPO_ROOT } from '../helpers/process.js';
import { introspect, openSealed, registerResourceServer, revoke, type TestResourceServer } from '../helpers/resource-servers.js';
import { assertNoSecretsLogged, rememberSecret } from '../helpers/secrets.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const API = 'https://api.example.test';
const INTERNAL = 'https://orders.internal.test';
const HOST = 'api.example.test';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** The introspection cache of the gate whose cached window is measured. */
const CACHE_SECONDS = 2;
const user = { email: 'gated@example.com', password: 'a gate is not a proxy, it decides' };

interface CreatedClient {
  client: { client_id: string };
  client_secret?: string;
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request to nginx with exactly these headers (node:http, so Host and forged headers go as written). */
function call(base: string, target: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${target}`, { method, agent: false, headers: { host: HOST, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The headers nginx itself adds to every proxied request (docs/gateway/nginx.conf): Host only. */
const NGINX_HEADERS = ['host'];

describe('Veil Gate behind a real nginx (docs/gateway/nginx.conf)', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let api: TestResourceServer;
  let internal: TestResourceServer;
  let worker: HttpFlowClient;
  let web: HttpFlowClient;
  let gateClientId: string;
  let upstream: EchoUpstream;
  let dir: string;
  const gateLogs: string[] = [];
  const gates: RunningGate[] = [];
  const proxies: RunningNginx[] = [];
  /** Local verification only. */
  let local: RunningNginx;
  let localGate: RunningGate;
  /** Introspection on every request. */
  let uncached: RunningNginx;
  /** Introspection answers kept CACHE_SECONDS. */
  let cached: RunningNginx;
  /** Introspection at an address where nothing listens: Veil unreachable. */
  let unreachable: RunningNginx;

  const ROUTES = [
    {
      name: 'reports',
      host: HOST,
      path: '/reports',
      methods: ['GET'],
      audience: API,
      scopes: { all: ['orders:read'] },
      headers: { sub: 'X-User' },
      exchange: { resource: INTERNAL, scope: 'orders:read' },
    },
    {
      name: 'orders',
      host: HOST,
      path: '/orders',
      methods: ['GET', 'POST'],
      audience: API,
      scopes: { all: ['orders:read'] },
      headers: { sub: 'X-User', scope: 'X-Scope', client_id: 'X-Client' },
    },
    { name: 'profile', host: HOST, path: '/profile', audience: API, scopes: { all: ['profile:read'] }, headers: { sub: 'X-User' } },
  ];

  /** A gate from a configuration file (loaded as `veil gate --config` loads it), with nginx in front. */
  async function gateWithNginx(name: string, extra: Record<string, unknown>): Promise<{ gate: RunningGate; nginx: RunningNginx }> {
    const file = path.join(dir, `${name}.json`);
    await fs.writeFile(
      file,
      JSON.stringify({
        issuer: veil.issuer,
        listen: { host: '127.0.0.1', port: 0 },
        audiences: [{ identifier: API, decryptionKeys: ['api-enc.private.jwk.json'], introspection: { clientId: api.clientId, secretFile: 'api-introspection.secret' } }],
        client: { id: gateClientId, secretFile: 'gate-client.secret' },
        routes: ROUTES,
        ...extra,
      }),
    );
    const config = await loadGateConfig(file, {});
    const sink = new Writable({
      write(chunk, _enc, cb) {
        gateLogs.push(String(chunk));
        cb();
      },
    });
    const gate = await startGate(config, { logger: createLogger('debug', sink) });
    gates.push(gate);
    const nginx = await startGatewayNginx({ gatePort: gate.port, upstreamPort: upstream.port });
    proxies.push(nginx);
    return { gate, nginx };
  }

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    api = await registerResourceServer(veil, { identifier: API, scopes: ['orders:read', 'orders:write', 'profile:read'], claims: ['email'] });
    internal = await registerResourceServer(veil, { identifier: INTERNAL, scopes: ['orders:read'] });
    const w = await veil.admin<CreatedClient>('POST', '/admin/clients', {
      client_name: 'worker',
      grant_types: ['client_credentials'],
      resources: [API, INTERNAL],
      resource_scopes: { [API]: ['orders:read', 'orders:write', 'profile:read'], [INTERNAL]: ['orders:read'] },
    });
    assert.equal(w.status, 201, JSON.stringify(w.body));
    worker = { issuer: veil.issuer, clientId: w.body.client.client_id, clientSecret: w.body.client_secret!, redirectUri: 'http://127.0.0.1/unused' };
    const redirectUri = 'http://127.0.0.1:9/cb';
    const c = await veil.admin<CreatedClient>('POST', '/admin/clients', {
      client_name: 'web',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      resources: [API],
      resource_scopes: { [API]: ['orders:read', 'orders:write'] },
    });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    web = { issuer: veil.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret!, redirectUri };
    assert.equal((await veil.admin('POST', '/admin/users', { ...user, name: 'Gated User', email_verified: true })).status, 201);
    // The gate's own client: exchanges tokens for API into tokens for INTERNAL, nothing else.
    const g = await veil.admin<CreatedClient>('POST', '/admin/clients', {
      client_name: 'veil gate',
      grant_types: [TOKEN_EXCHANGE],
      resources: [INTERNAL],
      resource_scopes: { [INTERNAL]: ['orders:read'] },
      exchange_from: [API],
    });
    assert.equal(g.status, 201, JSON.stringify(g.body));
    gateClientId = g.body.client.client_id;

    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-gate-e2e-'));
    const privateJwk = { ...(await exportJWK(api.privateKey)), kid: api.publicJwk.kid, use: 'enc' };
    rememberSecret(privateJwk.d, 'API private key');
    await fs.writeFile(path.join(dir, 'api-enc.private.jwk.json'), JSON.stringify(privateJwk), { mode: 0o600 });
    await fs.writeFile(path.join(dir, 'api-introspection.secret'), `${api.clientSecret}\n`, { mode: 0o600 });
    await fs.writeFile(path.join(dir, 'gate-client.secret'), `${g.body.client_secret!}\n`, { mode: 0o600 });

    upstream = await startEchoUpstream();
    ({ gate: localGate, nginx: local } = await gateWithNginx('local', { introspect: { enabled: false } }));
    ({ nginx: uncached } = await gateWithNginx('uncached', { introspect: { enabled: true, cacheSeconds: 0 } }));
    ({ nginx: cached } = await gateWithNginx('cached', { introspect: { enabled: true, cacheSeconds: CACHE_SECONDS } }));
    const closedPort = await freePort();
    ({ nginx: unreachable } = await gateWithNginx('unreachable', {
      introspect: { enabled: true, cacheSeconds: 0 },
      introspectionEndpoint: `http://127.0.0.1:${closedPort}/token/introspection`,
    }));
  });

  after(async () => {
    for (const nginx of proxies) await nginx.close();
    for (const gate of gates) await gate.close();
    await upstream?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
    await veil?.stop();
    await stores?.cleanup();
  });

  const clientCredentials = async (scope: string, resource = API) => {
    const res = await tokenRequest(worker, { grant_type: 'client_credentials', resource, scope });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.access_token!;
  };

  /** The one request the upstream received since `before` requests had been counted. */
  const onlyUpstreamRequestSince = (before: number): EchoedRequest => {
    assert.equal(upstream.requests.length, before + 1, 'exactly one request reached the upstream');
    return upstream.requests.at(-1)!;
  };

  /** Caller headers that ride along and are no business of the gate's. */
  const FORGED = { 'x-user': 'forged-admin', 'x-scope': 'orders:write admin', 'x-client': 'forged-client', 'x-veil-authorization': 'Bearer forged' };

  test('a token with the scope reaches the upstream with only the configured headers: no Authorization, no other claim, nothing forged', async () => {
    const tokens = await httpAuthorizationCodeFlow(web, user, 'openid offline_access', { resource: API, scope: 'openid offline_access orders:read orders:write' });
    const { payload } = await openSealed(tokens.access_token, api.privateKey, veil.issuer, API);
    // The token does carry more than the route forwards: the user's email, its id, times.
    assert.equal(payload.email, user.email);

    const before = upstream.requests.length;
    const res = await call(local.url, '/orders/42?view=full', { ...bearer(tokens.access_token), ...FORGED });
    assert.equal(res.status, 200, res.body);
    const seen = onlyUpstreamRequestSince(before);
    assert.deepEqual(JSON.parse(res.body), seen, 'the echo came through nginx unchanged');
    assert.equal(seen.method, 'GET');
    assert.equal(seen.path, '/orders/42?view=full');
    assert.deepEqual(Object.keys(seen.headers).sort(), [...NGINX_HEADERS, 'x-client', 'x-scope', 'x-user'].sort());
    assert.equal(seen.headers.host, HOST);
    assert.equal(seen.headers['x-user'], payload.sub);
    assert.equal(seen.headers['x-scope'], 'orders:read orders:write');
    assert.equal(seen.headers['x-client'], web.clientId);
    const everything = JSON.stringify(seen);
    for (const [what, value] of Object.entries({ token: tokens.access_token, email: user.email, jti: String(payload.jti), forged: 'forged' })) {
      assert.ok(!everything.includes(value), `the upstream saw the ${what}`);
    }

    // A route that maps only sub: the caller's X-Scope and X-Client are dropped, not passed on.
    const profileToken = await clientCredentials('orders:read profile:read');
    const count = upstream.requests.length;
    const order = '{"item":"tea"}';
    const profile = await call(local.url, '/profile', { ...bearer(profileToken), ...FORGED, 'content-type': 'application/json' }, 'POST', order);
    assert.equal(profile.status, 200, profile.body);
    const forwarded = onlyUpstreamRequestSince(count);
    assert.equal(forwarded.method, 'POST');
    // The caller's own content headers go on with the body; of the gate's, only X-User.
    assert.deepEqual(Object.keys(forwarded.headers).sort(), [...NGINX_HEADERS, 'content-length', 'content-type', 'x-user'].sort());
    assert.equal(forwarded.headers['content-length'], String(order.length));
    assert.equal(forwarded.headers['x-user'], worker.clientId, "a client's token: sub is the client");
  });

  test('DPoP through nginx: a bound token with its proof of the original request reaches the upstream once; as Bearer or replayed it is refused at the gate', async () => {
    const key = await dpopKey('ES256');
    const res = await fetch(`${veil.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${worker.clientId}:${worker.clientSecret}`).toString('base64')}`,
        dpop: await dpopProof(key, { htm: 'POST', htu: `${veil.issuer}/token` }),
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: API, scope: 'orders:read' }).toString(),
    });
    const issued = (await res.json()) as { access_token: string; token_type: string };
    rememberSecret(issued.access_token, 'DPoP-bound token');
    assert.equal(issued.token_type, 'DPoP');
    const token = issued.access_token;
    // nginx says the scheme (X-Original-Proto $scheme): this nginx serves plain http.
    const proof = await dpopProof(key, { htm: 'GET', htu: `http://${HOST}/orders/7`, accessToken: token });

    const before = upstream.requests.length;
    const ok = await call(local.url, '/orders/7?x=1', { authorization: `DPoP ${token}`, dpop: proof });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(onlyUpstreamRequestSince(before).headers['x-user'], worker.clientId);

    const replayed = await call(local.url, '/orders/7?x=1', { authorization: `DPoP ${token}`, dpop: proof });
    assert.equal(replayed.status, 401);
    assert.equal(replayed.headers['www-authenticate'], `DPoP realm="${API}", error="invalid_dpop_proof", error_description="dpop_replay"`);
    const asBearer = await call(local.url, '/orders/7', bearer(token));
    assert.equal(asBearer.status, 401);
    assert.match(String(asBearer.headers['www-authenticate']), /^DPoP realm="[^"]+", error="invalid_token"/);
    const httpsProof = await dpopProof(key, { htm: 'GET', htu: `https://${HOST}/orders/7`, accessToken: token });
    const wrongScheme = await call(local.url, '/orders/7', { authorization: `DPoP ${token}`, dpop: httpsProof });
    assert.match(String(wrongScheme.headers['www-authenticate']), /error_description="dpop_htu_mismatch"/);
    assert.equal(upstream.requests.length, before + 1, 'only the good request reached the upstream');
  });

  test('refused at the gate, never at the upstream: no token, garbage, another API, a missing scope, no route', async () => {
    const ordersOnly = await clientCredentials('orders:read');
    const otherApi = await clientCredentials('orders:read', INTERNAL);
    const before = upstream.requests.length;

    const none = await call(local.url, '/orders');
    assert.equal(none.status, 401);
    // RFC 6750 §3.1: no credentials, no error code; nginx passes the gate's challenge on.
    assert.equal(none.headers['www-authenticate'], `Bearer realm="${API}"`);

    for (const [what, authorization] of [
      ['garbage', 'Bearer not-a-token'],
      ['five random parts', 'Bearer aaaa.bbbb.cccc.dddd.eeee'],
      ['a token for another API', `Bearer ${otherApi}`],
      ['a token cut short', `Bearer ${ordersOnly.slice(0, -10)}`],
    ] as const) {
      const res = await call(local.url, '/orders', { authorization });
      assert.equal(res.status, 401, `${what}: ${res.status}`);
      assert.match(String(res.headers['www-authenticate']), /^Bearer realm="[^"]+", error="invalid_token", error_description="[^"]+"$/, what);
      assert.ok(!String(res.headers['www-authenticate']).includes(otherApi.slice(0, 20)), `${what}: the challenge quotes no token`);
    }

    const scope = await call(local.url, '/profile', bearer(ordersOnly));
    assert.equal(scope.status, 403);
    // The 403's challenge reaches the client too (docs/gateway/nginx.conf, @veil_forbidden).
    assert.match(String(scope.headers['www-authenticate']), /^Bearer realm="https:\/\/api\.example\.test", error="insufficient_scope", .*scope="profile:read"$/);

    for (const [what, target, headers, method] of [
      ['a path no route names', '/admin/users', {}, 'GET'],
      ['another host', '/orders', { host: 'other.example.test' }, 'GET'],
      ['a method the route does not allow', '/orders/42', {}, 'DELETE'],
      ['a path that climbs out of the route', '/orders/../admin', {}, 'GET'],
    ] as const) {
      const res = await call(local.url, target, { ...bearer(ordersOnly), ...headers }, method);
      assert.equal(res.status, 403, `${what}: ${res.status}`);
    }
    // nginx's internal check location is not reachable from outside.
    assert.equal((await call(local.url, '/_veil_check', bearer(ordersOnly))).status, 404);
    assert.equal(upstream.requests.length, before, 'no refused request reached the upstream');

    // The same token on its own route still works: the refusals changed nothing.
    assert.equal((await call(local.url, '/orders', bearer(ordersOnly))).status, 200);
  });

  test('revocation: local verification keeps the token, introspection without cache refuses it at once', async () => {
    const token = await clientCredentials('orders:read');
    for (const nginx of [local, uncached]) assert.equal((await call(nginx.url, '/orders', bearer(token))).status, 200);
    const revoked = await revoke(veil.issuer, { id: worker.clientId, secret: worker.clientSecret! }, token);
    assert.equal(revoked.status, 200, revoked.text);

    const refused = await call(uncached.url, '/orders', bearer(token));
    assert.equal(refused.status, 401);
    assert.match(String(refused.headers['www-authenticate']), /error="invalid_token"/);
    // Local verification only (introspect.enabled false): the documented trade-off, the token
    // stays good until it expires.
    assert.equal((await call(local.url, '/orders', bearer(token))).status, 200);
  });

  test(`revocation with the introspection cache: refused once the ${CACHE_SECONDS} s cached answer expires, not before`, async (t) => {
    const cacheMs = CACHE_SECONDS * 1000;
    // The window is proven only when the first check after the revocation returns before the
    // cache can have expired; on a machine too busy for that, the run starts over with a new token.
    for (let attempt = 1; ; attempt++) {
      const token = await clientCredentials('orders:read');
      const t0 = Date.now();
      assert.equal((await call(cached.url, '/orders', bearer(token))).status, 200);
      const t1 = Date.now();
      const revoked = await revoke(veil.issuer, { id: worker.clientId, secret: worker.clientSecret! }, token);
      assert.equal(revoked.status, 200, revoked.text);

      // The introspection answer was cached at some instant in [t0, t1] for cacheMs: a check that
      // answered before t0 + cacheMs must have used it; every 401 must come after t0 + cacheMs.
      let allowedAfterRevocation = 0;
      let inWindow = false;
      let refusedAt: number | undefined;
      while (Date.now() < t1 + cacheMs + 3000) {
        const res = await call(cached.url, '/orders', bearer(token));
        const answeredAt = Date.now();
        if (res.status === 401) {
          refusedAt = answeredAt;
          break;
        }
        assert.equal(res.status, 200, res.body);
        allowedAfterRevocation += 1;
        if (answeredAt < t0 + cacheMs) inWindow = true;
        await sleep(100);
      }
      assert.ok(refusedAt !== undefined, `still allowed ${Date.now() - t1} ms after the first check (cache ${cacheMs} ms)`);
      assert.ok(refusedAt >= t0 + cacheMs, `refused ${refusedAt - t0} ms after the first check, inside the ${cacheMs} ms cache`);
      t.diagnostic(`attempt ${attempt}: ${allowedAfterRevocation} allowed from the cache after the revocation, refused ${refusedAt - t1} ms after the first answer`);
      if (inWindow) {
        assert.ok(allowedAfterRevocation > 0);
        break;
      }
      assert.ok(attempt < 3, 'three runs without a check inside the cache window: the machine is too busy to show it');
    }
  });

  test('exchange route: the upstream gets a token only the internal service opens, with act, the narrowed scope, no longer life; revoking the original ends it', async () => {
    const original = await clientCredentials('orders:read orders:write');
    const opened = await openSealed(original, api.privateKey, veil.issuer, API);
    const before = upstream.requests.length;
    const res = await call(local.url, '/reports/daily', { ...bearer(original), ...FORGED });
    assert.equal(res.status, 200, res.body);
    const seen = onlyUpstreamRequestSince(before);
    assert.deepEqual(Object.keys(seen.headers).sort(), [...NGINX_HEADERS, 'authorization', 'x-user'].sort(), 'X-Scope, X-Client and X-Veil-Authorization are not passed');
    assert.equal(seen.headers['x-user'], worker.clientId);
    const match = /^Bearer ([\w.-]+)$/.exec(String(seen.headers.authorization));
    assert.ok(match, 'the upstream got a Bearer token');
    const exchanged = match[1]!;
    rememberSecret(exchanged, 'exchanged token');
    assert.notEqual(exchanged, original);
    assert.equal(exchanged.split('.').length, 5, 'sealed (a JWE)');

    // Sealed to the internal service: the public API's key does not open it.
    await assert.rejects(compactDecrypt(exchanged, api.privateKey));
    const { payload } = await openSealed(exchanged, internal.privateKey, veil.issuer, INTERNAL);
    assert.equal(payload.aud, INTERNAL);
    assert.deepEqual(payload.act, { sub: gateClientId });
    assert.equal(payload.scope, 'orders:read');
    assert.equal(payload.sub, opened.payload.sub);
    assert.ok(payload.exp! <= opened.payload.exp!, `exchanged exp ${payload.exp} past the original's ${opened.payload.exp}`);
    assert.notEqual(payload.jti, opened.payload.jti);
    assert.equal(decodeJwt(opened.inner).act, undefined, 'the original has no act');

    const rs = { id: internal.clientId, secret: internal.clientSecret };
    const active = await introspect(veil.issuer, rs, exchanged);
    assert.equal(active.body.active, true, JSON.stringify(active.body));
    assert.deepEqual(active.body.act, { sub: gateClientId });
    assert.equal(active.body.scope, 'orders:read');
    // The public API cannot see the internal token at all.
    assert.deepEqual((await introspect(veil.issuer, { id: api.clientId, secret: api.clientSecret }, exchanged)).body, { active: false });

    const revoked = await revoke(veil.issuer, { id: worker.clientId, secret: worker.clientSecret! }, original);
    assert.equal(revoked.status, 200, revoked.text);
    assert.deepEqual((await introspect(veil.issuer, rs, exchanged)).body, { active: false }, 'the exchanged token died with its subject');
  });

  test('fail closed: Veil unreachable for introspection, or the gate down, is a 503 at nginx and nothing reaches the upstream', async () => {
    const token = await clientCredentials('orders:read');
    const before = upstream.requests.length;
    const res = await call(unreachable.url, '/orders', bearer(token));
    assert.equal(res.status, 503);
    assert.ok(
      gateLogs.some((l) => /"level":50/.test(l) && /Veil unreachable/.test(l)),
      'the gate says in its log that it refused because Veil could not be asked',
    );

    await localGate.close();
    assert.equal((await call(local.url, '/orders', bearer(token))).status, 503);
    assert.equal(upstream.requests.length, before);
    assert.match(await local.errorLog(), /connect\(\) failed/, "nginx's log says the gate could not be reached");
  });

  test('deploy/compose/gate.json in front of the demo API, as docker-compose.yml runs them (addresses local)', async () => {
    // The demo API makes its key file; the gate reads it, as the two containers share a volume.
    const keyFile = path.join(dir, 'demo-api-key.json');
    const compose = JSON.parse(await fs.readFile(path.join(REPO_ROOT, 'deploy/compose/gate.json'), 'utf8')) as {
      audiences: Array<{ identifier: string; decryptionKeys: string[] }>;
    };
    const identifier = compose.audiences[0]!.identifier;
    const demo = await startDemoApi({ port: 0, host: '127.0.0.1', issuer: veil.issuer, identifier, keyFile, scope: 'read', log: () => {} });
    try {
      const registered = await veil.admin('POST', '/admin/resources', { identifier, name: 'Demo API', scopes: ['read'], jwks_uri: demo.jwksUri });
      assert.equal(registered.status, 201, JSON.stringify(registered.body));
      const c = await veil.admin<CreatedClient>('POST', '/admin/clients', {
        client_name: 'demo worker',
        grant_types: ['client_credentials'],
        resources: [identifier],
        scope: 'read',
      });
      const client: HttpFlowClient = { issuer: veil.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret!, redirectUri: 'http://127.0.0.1/unused' };
      const issued = await tokenRequest(client, { grant_type: 'client_credentials', resource: identifier, scope: 'read' });
      assert.equal(issued.status, 200, JSON.stringify(issued.body));

      // Only what compose sets differently from a local run: where Veil, the key and the gate are.
      const local = {
        ...compose,
        issuer: veil.issuer,
        jwksUri: `${veil.issuer}/jwks`,
        listen: { host: '127.0.0.1', port: 0 },
        audiences: [{ ...compose.audiences[0]!, decryptionKeys: [keyFile] }],
      };
      await fs.writeFile(path.join(dir, 'compose-gate.json'), JSON.stringify(local));
      const gate = await startGate(await loadGateConfig(path.join(dir, 'compose-gate.json'), {}), { logger: createLogger('warn', new Writable({ write: (_c, _e, cb) => cb() })) });
      gates.push(gate);
      const nginx = await startGatewayNginx({ gatePort: gate.port, upstreamPort: Number(new URL(demo.url).port) });
      proxies.push(nginx);

      // The route keeps Authorization, so the demo API checks the token again with the SDK.
      const hello = await call(nginx.url, '/api/hello', bearer(issued.body.access_token!));
      assert.equal(hello.status, 200, hello.body);
      assert.equal((JSON.parse(hello.body) as { sub: string }).sub, client.clientId);
      assert.equal((await call(nginx.url, '/api/hello')).status, 401);
      assert.equal((await call(nginx.url, '/api/hello', bearer(await clientCredentials('orders:read')))).status, 401, "the public API's token is not the demo API's");
    } finally {
      await demo.close();
    }
  });

  test("the gate's logs hold no token, secret, key or claim value", () => {
    assert.ok(gateLogs.length > 0);
    assertNoSecretsLogged(gateLogs);
    const all = gateLogs.join('');
    assert.ok(!all.includes(user.email), 'an email in the gate logs');
  });
});
