/**
 * RFC 8693 token exchange at /token (issue 9): a client that fronts an API (a gateway) trades an
 * access token sealed for that API for one sealed to an internal service: only that service's
 * key opens it, it names the gateway as actor (`act`), its scope is at most subject ∩ allow-list
 * ∩ the target's scopes, and it lives no longer than the subject. Every refusal issues nothing
 * (no token saved, no index entry, no audit row), and revoking the subject token or its grant (or
 * deleting a client, disabling the user) ends the exchanged token at introspection. Run against
 * real PostgreSQL with Redis, and with the in-process store.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { compactDecrypt, decodeJwt } from 'jose';
import { main } from '../../src/cli/main.js';
import { httpAuthorizationCodeFlow, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { introspect, openSealed, registerResourceServer, revoke, type TestResourceServer } from '../helpers/resource-servers.js';
import { rememberSecret } from '../helpers/secrets.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

const EDGE = 'https://api.exchange.test';
const SHORT = 'https://short.exchange.test';
const OTHER = 'https://other.exchange.test';
const EXPIRING = 'https://expiring.exchange.test';
const INTERNAL = 'https://orders.internal.test';
const DEEPER = 'https://deeper.internal.test';
const THIRD = 'https://third.internal.test';
const REDIRECT = 'https://app.exchange.test/cb';

type Created = { client: { client_id: string; grant_types: string[]; exchange_from?: string[] }; client_secret?: string };
type Body = Record<string, unknown>;

const isSealed = (value: unknown) => typeof value === 'string' && value.split('.').length === 5;

for (const mode of ['redis', 'memory'] as const) {
  describe(`token exchange (PostgreSQL, ${mode === 'redis' ? 'Redis' : 'in-process store'})`, () => {
    let stores: TestStores;
    let veil: TestVeil;
    const rs: Record<string, TestResourceServer> = {};
    let web: HttpFlowClient;
    let worker: HttpFlowClient;
    let gate: HttpFlowClient;
    let narrowGate: HttpFlowClient;
    let otherGate: HttpFlowClient;
    let innerGate: HttpFlowClient;
    let thirdGate: HttpFlowClient;
    let fourthGate: HttpFlowClient;
    let users = 0;

    const creds = (id: string) => ({ id: rs[id]!.clientId, secret: rs[id]!.clientSecret });

    async function client(body: Body): Promise<HttpFlowClient> {
      const res = await veil.admin<Created>('POST', '/admin/clients', body);
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return { issuer: veil.issuer, clientId: res.body.client.client_id, clientSecret: res.body.client_secret, redirectUri: REDIRECT };
    }

    const webClientBody = {
      client_name: 'exchange web app',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      scope: 'openid offline_access',
      resource_scopes: { [EDGE]: ['orders:read', 'orders:write', 'profile:read'], [SHORT]: ['orders:read'], [OTHER]: ['orders:read'], [EXPIRING]: ['orders:read'] },
    };

    const gateBody = (name: string, extra: Body) => ({ client_name: name, grant_types: [TOKEN_EXCHANGE], ...extra });

    /** A new user (so each subject has its own grant) signs in to `via` for `resource`. */
    async function userToken(resource: string, scope = 'offline_access orders:read orders:write', via = web) {
      const user = { email: `exchange-${mode}-${++users}@example.com`, password: 'exchange tokens safely 123' };
      const created = await veil.admin<{ user: { id: string } }>('POST', '/admin/users', { ...user, name: 'Ex Changer' });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const tokens = await httpAuthorizationCodeFlow(via, user, `openid ${scope}`, { resource });
      assert.ok(isSealed(tokens.access_token));
      return { ...tokens, accountId: created.body.user.id };
    }

    function exchangeRequest(caller: HttpFlowClient, subjectToken: string, params: Record<string, string> = {}) {
      return tokenRequest(caller, { grant_type: TOKEN_EXCHANGE, subject_token: subjectToken, subject_token_type: ACCESS_TOKEN_TYPE, resource: INTERNAL, ...params });
    }

    /** What an exchange leaves behind: the issuance counter, the audit rows and (Redis) the token records and index. */
    async function issued() {
      const metrics = await (await fetch(`${veil.adminUrl}/metrics`)).text();
      const saved = metrics
        .split('\n')
        .filter((line) => line.startsWith('veil_tokens_issued_total{') && line.includes(`grant_type="${TOKEN_EXCHANGE}"`))
        .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
      const audited = await veil.database.prisma.auditEvent.count({ where: { type: 'token.exchanged' } });
      const keys = mode === 'redis' ? (await stores.redis.keys(`${stores.keyPrefix}issued:*`)).length + (await stores.redis.keys(`${stores.keyPrefix}AccessToken:*`)).length : 0;
      return { saved, audited, keys };
    }

    /** Runs `request`, requires the OAuth error, and that nothing was issued. */
    async function refused(label: string, request: () => Promise<{ status: number; body: Record<string, string> }>, status: number, error: string, description?: RegExp) {
      const before = await issued();
      const res = await request();
      assert.deepEqual([res.status, res.body.error], [status, error], `${label}: ${JSON.stringify(res.body)}`);
      if (description) assert.match(String(res.body.error_description), description, label);
      assert.equal(res.body.access_token, undefined, `${label}: a token came back`);
      assert.deepEqual(await issued(), before, `${label}: something was issued`);
    }

    before(async () => {
      stores = await createTestStores();
      // memory: real PostgreSQL, the in-process short-lived store.
      veil = await startTestVeil(stores, mode === 'memory' ? { REDIS_URL: '' } : {});
      rs[EDGE] = await registerResourceServer(veil, { identifier: EDGE, scopes: ['orders:read', 'orders:write', 'profile:read'], claims: ['email'], ttl: 600 });
      rs[SHORT] = await registerResourceServer(veil, { identifier: SHORT, scopes: ['orders:read'], ttl: 30 });
      rs[OTHER] = await registerResourceServer(veil, { identifier: OTHER, scopes: ['orders:read'] });
      rs[EXPIRING] = await registerResourceServer(veil, { identifier: EXPIRING, scopes: ['orders:read'], ttl: 2 });
      // Public subjects at the targets: these tests follow the subject's account id through the
      // exchange (pairwise subjects across an exchange: test/integration/pairwise-subjects.test.ts).
      rs[INTERNAL] = await registerResourceServer(veil, {
        identifier: INTERNAL,
        scopes: ['orders:read', 'orders:write'],
        claims: ['email'],
        ttl: 120,
        extra: { subject: 'public' },
      });
      rs[DEEPER] = await registerResourceServer(veil, { identifier: DEEPER, scopes: ['orders:read'], ttl: 60, extra: { subject: 'public' } });
      rs[THIRD] = await registerResourceServer(veil, { identifier: THIRD, scopes: ['orders:read'], ttl: 60 });
      web = await client(webClientBody);
      worker = await client({ client_name: 'exchange worker', grant_types: ['client_credentials'], resource_scopes: { [EDGE]: ['orders:read'] } });
      gate = await client(gateBody('gate', { resource_scopes: { [INTERNAL]: ['orders:read', 'orders:write'] }, exchange_from: [EDGE, SHORT, EXPIRING] }));
      narrowGate = await client(gateBody('narrow gate', { resource_scopes: { [INTERNAL]: ['orders:read'] }, exchange_from: [EDGE] }));
      otherGate = await client(gateBody('other gate', { resource_scopes: { [INTERNAL]: ['orders:read'] }, exchange_from: [OTHER] }));
      innerGate = await client(gateBody('inner gate', { resource_scopes: { [DEEPER]: ['orders:read'] }, exchange_from: [INTERNAL] }));
      thirdGate = await client(gateBody('third gate', { resource_scopes: { [THIRD]: ['orders:read'] }, exchange_from: [DEEPER] }));
      fourthGate = await client(gateBody('fourth gate', { resource_scopes: { [DEEPER]: ['orders:read'] }, exchange_from: [THIRD] }));
    });

    after(async () => {
      await veil?.stop();
      await stores?.cleanup();
    });

    test('a user token becomes a token only the target opens: act, narrowed scope, the subject, no user claims, audited', async () => {
      const subject = await userToken(EDGE);
      const seenSubject = await openSealed(subject.access_token, rs[EDGE]!.privateKey, veil.issuer, EDGE);
      assert.ok(seenSubject.payload.email, 'the subject token carries the consented email for its own API');
      const before = await issued();

      const res = await exchangeRequest(gate, subject.access_token, { scope: 'orders:read' });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.issued_token_type, ACCESS_TOKEN_TYPE);
      assert.equal(res.body.token_type, 'Bearer');
      assert.equal(res.body.scope, 'orders:read');
      assert.equal(res.body.refresh_token, undefined);
      const token = res.body.access_token!;
      assert.ok(isSealed(token), 'sealed');

      // Only the target's key opens it; the subject API's key does not.
      await assert.rejects(compactDecrypt(token, rs[EDGE]!.privateKey));
      const { payload, jwsHeader } = await openSealed(token, rs[INTERNAL]!.privateKey, veil.issuer, INTERNAL);
      assert.equal(jwsHeader.typ, 'at+jwt');
      assert.equal(payload.aud, INTERNAL);
      assert.equal(payload.sub, subject.accountId);
      assert.equal(payload.client_id, gate.clientId);
      assert.deepEqual(payload.act, { sub: gate.clientId });
      assert.equal(payload.scope, 'orders:read');
      assert.equal(payload.auth_time, seenSubject.payload.auth_time, 'the authentication event carries over');
      assert.equal(payload.email, undefined, 'user claims are not carried to the target');
      assert.notEqual(payload.jti, seenSubject.payload.jti);
      assert.ok(payload.exp! <= seenSubject.payload.exp!, 'no longer-lived than the subject');
      // min(the target's 120 s, the subject's remaining ~600 s)
      assert.ok(Math.abs(payload.exp! - payload.iat! - 120) <= 1, `lifetime ${payload.exp! - payload.iat!}`);
      assert.equal(Number(res.body.expires_in), payload.exp! - payload.iat!);
      assert.equal(Object.keys(payload).filter((k) => k.startsWith('veil')).length, 0, 'nothing private in the token');

      // The target API sees it active, with act; the subject API may not see it.
      const seen = await introspect(veil.issuer, creds(INTERNAL), token);
      assert.equal(seen.body.active, true, JSON.stringify(seen.body));
      assert.deepEqual(seen.body.act, { sub: gate.clientId });
      assert.deepEqual(
        [seen.body.sub, seen.body.client_id, seen.body.aud, seen.body.scope, seen.body.jti],
        [subject.accountId, gate.clientId, INTERNAL, 'orders:read', payload.jti],
      );
      assert.deepEqual([seen.body.iat, seen.body.exp], [payload.iat, payload.exp]);
      assert.equal(Object.keys(seen.body).filter((k) => k.startsWith('veil')).length, 0);
      assert.deepEqual((await introspect(veil.issuer, creds(EDGE), token)).body, { active: false });
      // The gate may introspect the tokens of the API it fronts, and its own.
      assert.equal((await introspect(veil.issuer, { id: gate.clientId, secret: gate.clientSecret! }, subject.access_token)).body.active, true);
      assert.equal((await introspect(veil.issuer, { id: gate.clientId, secret: gate.clientSecret! }, token)).body.active, true);
      // ... but not another API's tokens.
      const elsewhere = await userToken(OTHER, 'orders:read');
      assert.deepEqual((await introspect(veil.issuer, { id: gate.clientId, secret: gate.clientSecret! }, elsewhere.access_token)).body, { active: false });

      const after = await issued();
      assert.equal(after.saved, before.saved + 1);
      assert.equal(after.audited, before.audited + 1);
      const row = await veil.database.prisma.auditEvent.findFirst({ where: { type: 'token.exchanged' }, orderBy: { id: 'desc' } });
      assert.equal(row?.clientId, gate.clientId);
      assert.equal(row?.accountId, subject.accountId);
      assert.equal(row?.actor, 'client');
      const details = row?.details as Record<string, unknown>;
      assert.deepEqual(
        { ...details, grant_id: undefined },
        { subject_client_id: web.clientId, grant_id: undefined, subject_audience: EDGE, audience: INTERNAL, scope: 'orders:read' },
      );
      assert.equal(typeof details.grant_id, 'string');
      assert.ok(veil.logs.some((l) => l.includes('"event":"token.exchanged"')));
    });

    test('without a scope the whole intersection is granted; the inner JWS works as the subject too; a short-lived subject bounds the lifetime', async () => {
      const subject = await userToken(EDGE);
      const all = await exchangeRequest(gate, subject.access_token);
      assert.equal(all.status, 200, JSON.stringify(all.body));
      assert.equal(all.body.scope, 'orders:read orders:write');
      // The narrow gate's allow-list for the target is orders:read only.
      const narrow = await exchangeRequest(narrowGate, subject.access_token);
      assert.equal(narrow.body.scope, 'orders:read', JSON.stringify(narrow.body));

      // What the gate holds after decrypting: the inner JWS, found by its verified jti.
      const { inner } = await openSealed(subject.access_token, rs[EDGE]!.privateKey, veil.issuer, EDGE);
      rememberSecret(inner, 'inner JWS');
      const fromJws = await exchangeRequest(gate, inner, { scope: 'orders:write' });
      assert.equal(fromJws.status, 200, JSON.stringify(fromJws.body));
      assert.equal((await openSealed(fromJws.body.access_token!, rs[INTERNAL]!.privateKey, veil.issuer, INTERNAL)).payload.scope, 'orders:write');

      // A subject with 30 s left: the new token ends with it, not after the target's 120 s.
      const short = await userToken(SHORT, 'orders:read');
      const shortExp = decodeJwt((await openSealed(short.access_token, rs[SHORT]!.privateKey, veil.issuer, SHORT)).inner).exp!;
      const bounded = await exchangeRequest(gate, short.access_token);
      assert.equal(bounded.status, 200, JSON.stringify(bounded.body));
      const { payload } = await openSealed(bounded.body.access_token!, rs[INTERNAL]!.privateKey, veil.issuer, INTERNAL);
      assert.equal(payload.exp, shortExp);
      assert.ok(Number(bounded.body.expires_in) <= 30);
    });

    test('a client-credentials subject: sub is that client, client_id the gate', async () => {
      const cc = await tokenRequest(worker, { grant_type: 'client_credentials', resource: EDGE, scope: 'orders:read' });
      assert.equal(cc.status, 200, JSON.stringify(cc.body));
      const res = await exchangeRequest(gate, cc.body.access_token!);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const { payload } = await openSealed(res.body.access_token!, rs[INTERNAL]!.privateKey, veil.issuer, INTERNAL);
      assert.deepEqual([payload.sub, payload.client_id, payload.scope], [worker.clientId, gate.clientId, 'orders:read']);
      assert.deepEqual(payload.act, { sub: gate.clientId });
      const seen = await introspect(veil.issuer, creds(INTERNAL), res.body.access_token!);
      assert.deepEqual([seen.body.active, seen.body.sub], [true, worker.clientId]);
      // Revoking the client-credentials token ends the exchanged one.
      assert.equal((await revoke(veil.issuer, { id: worker.clientId, secret: worker.clientSecret! }, cc.body.access_token!)).status, 200);
      assert.deepEqual((await introspect(veil.issuer, creds(INTERNAL), res.body.access_token!)).body, { active: false });
    });

    test('an exchanged token exchanged again nests the actors, and dies with the original', async () => {
      const subject = await userToken(EDGE);
      const first = await exchangeRequest(gate, subject.access_token, { scope: 'orders:read' });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const second = await exchangeRequest(innerGate, first.body.access_token!, { resource: DEEPER });
      assert.equal(second.status, 200, JSON.stringify(second.body));
      const { payload } = await openSealed(second.body.access_token!, rs[DEEPER]!.privateKey, veil.issuer, DEEPER);
      assert.deepEqual(payload.act, { sub: innerGate.clientId, act: { sub: gate.clientId } });
      assert.deepEqual([payload.sub, payload.client_id, payload.scope], [subject.accountId, innerGate.clientId, 'orders:read']);
      assert.equal((await introspect(veil.issuer, creds(DEEPER), second.body.access_token!)).body.active, true);
      assert.deepEqual((await introspect(veil.issuer, creds(DEEPER), second.body.access_token!)).body.act, payload.act);

      // A third exchange is allowed (and followed back to the original at introspection); a fourth is not.
      const third = await exchangeRequest(thirdGate, second.body.access_token!, { resource: THIRD });
      assert.equal(third.status, 200, JSON.stringify(third.body));
      const seenThird = await introspect(veil.issuer, creds(THIRD), third.body.access_token!);
      assert.equal(seenThird.body.active, true, JSON.stringify(seenThird.body));
      assert.deepEqual(seenThird.body.act, { sub: thirdGate.clientId, act: { sub: innerGate.clientId, act: { sub: gate.clientId } } });
      await refused(
        'a fourth exchange in a row',
        () => exchangeRequest(fourthGate, third.body.access_token!, { resource: DEEPER }),
        400,
        'invalid_request',
        /already exchanged 3 times/,
      );

      assert.equal((await revoke(veil.issuer, { id: web.clientId, secret: web.clientSecret! }, subject.access_token)).status, 200);
      assert.deepEqual((await introspect(veil.issuer, creds(INTERNAL), first.body.access_token!)).body, { active: false });
      assert.deepEqual((await introspect(veil.issuer, creds(DEEPER), second.body.access_token!)).body, { active: false });
      assert.deepEqual((await introspect(veil.issuer, creds(THIRD), third.body.access_token!)).body, { active: false });
    });

    test('callers that may not exchange are refused and nothing is issued', async () => {
      const subject = await userToken(EDGE);
      const token = subject.access_token;
      await refused('no credentials', () => exchangeRequest({ ...gate, clientSecret: undefined }, token), 401, 'invalid_client');
      await refused('a wrong secret', () => exchangeRequest({ ...gate, clientSecret: randomBytes(32).toString('base64url') }, token), 401, 'invalid_client');
      await refused('a client without the grant type', () => exchangeRequest(web, token), 400, 'unauthorized_client');
      await refused('a client-credentials client without it', () => exchangeRequest(worker, token), 400, 'unauthorized_client');

      // A public client: refused at registration, and a hand-made row loses the grant type on load.
      const publicClient = await veil.admin<{ error: string; error_description: string }>('POST', '/admin/clients', {
        ...gateBody('public gate', { resources: [INTERNAL], exchange_from: [EDGE] }),
        public: true,
      });
      assert.deepEqual([publicClient.status, publicClient.body.error], [400, 'invalid_request']);
      assert.match(publicClient.body.error_description, /confidential/);
      await veil.database.prisma.client.create({
        data: {
          clientId: `public-gate-${mode}`,
          metadata: {
            client_id: `public-gate-${mode}`,
            client_name: 'hand-made public gate',
            grant_types: [TOKEN_EXCHANGE],
            response_types: [],
            redirect_uris: [],
            token_endpoint_auth_method: 'none',
            allowed_resources: [INTERNAL],
            resource_scopes: { [INTERNAL]: ['orders:read'] },
            exchange_from: [EDGE],
          },
        },
      });
      await refused('a public client', () => exchangeRequest({ issuer: veil.issuer, clientId: `public-gate-${mode}`, redirectUri: '' }, token), 400, 'unauthorized_client');

      // The gate itself may not exchange for a target outside its allowed resources.
      await refused('a target not allowed to the client', () => exchangeRequest(gate, token, { resource: DEEPER }), 400, 'invalid_target');
      await refused('an unknown target', () => exchangeRequest(gate, token, { resource: 'https://unknown.internal.test' }), 400, 'invalid_target');
      await refused('the subject audience as target', () => exchangeRequest(gate, token, { resource: EDGE }), 400, 'invalid_target');
      await refused(
        'no target',
        () => tokenRequest(gate, { grant_type: TOKEN_EXCHANGE, subject_token: token, subject_token_type: ACCESS_TOKEN_TYPE }),
        400,
        'invalid_target',
        /resource is required/,
      );
      await refused(
        'two targets',
        async () => {
          const body = new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: token, subject_token_type: ACCESS_TOKEN_TYPE });
          body.append('resource', INTERNAL);
          body.append('resource', DEEPER);
          const res = await fetch(`${veil.issuer}/token`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${gate.clientId}:${gate.clientSecret}`).toString('base64')}` },
            body,
          });
          return { status: res.status, body: (await res.json()) as Record<string, string> };
        },
        400,
        'invalid_target',
      );
      // A gate that fronts another API may not exchange this API's tokens.
      await refused('a client not fronting the subject audience', () => exchangeRequest(otherGate, token), 400, 'invalid_grant', /exchange_from/);
      // The subject is untouched by all that.
      assert.equal((await exchangeRequest(gate, token)).status, 200);
    });

    test('malformed requests and unusable subject tokens are refused and nothing is issued', async () => {
      const subject = await userToken(EDGE);
      const token = subject.access_token;
      await refused(
        'a wrong subject_token_type',
        () => exchangeRequest(gate, token, { subject_token_type: 'urn:ietf:params:oauth:token-type:id_token' }),
        400,
        'invalid_request',
        /subject_token_type/,
      );
      await refused(
        'no subject_token_type',
        () => tokenRequest(gate, { grant_type: TOKEN_EXCHANGE, subject_token: token, resource: INTERNAL }),
        400,
        'invalid_request',
        /subject_token_type/,
      );
      await refused(
        'no subject_token',
        () => tokenRequest(gate, { grant_type: TOKEN_EXCHANGE, subject_token_type: ACCESS_TOKEN_TYPE, resource: INTERNAL }),
        400,
        'invalid_request',
        /subject_token/,
      );
      await refused('an actor_token', () => exchangeRequest(gate, token, { actor_token: token, actor_token_type: ACCESS_TOKEN_TYPE }), 400, 'invalid_request', /actor_token/);
      await refused('an audience', () => exchangeRequest(gate, token, { audience: INTERNAL }), 400, 'invalid_request', /audience/);
      await refused(
        'another requested_token_type',
        () => exchangeRequest(gate, token, { requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }),
        400,
        'invalid_request',
        /requested_token_type/,
      );
      await refused('the refresh token as subject', () => exchangeRequest(gate, subject.refresh_token), 400, 'invalid_request', /refresh tokens/);
      const userinfoOnly = await httpAuthorizationCodeFlow(web, { email: `exchange-${mode}-${users}@example.com`, password: 'exchange tokens safely 123' }, 'openid');
      assert.equal(userinfoOnly.access_token.split('.').length, 1, 'an opaque userinfo token');
      await refused('a userinfo-only token as subject', () => exchangeRequest(gate, userinfoOnly.access_token), 400, 'invalid_request', /userinfo/);
      const forged = token
        .split('.')
        .map((part, i) => (i === 3 ? randomBytes(48).toString('base64url') : part))
        .join('.');
      await refused('an unknown sealed token', () => exchangeRequest(gate, forged), 400, 'invalid_grant');
      await refused('garbage', () => exchangeRequest(gate, 'a.b.c.d.e'), 400, 'invalid_grant');
      await refused('an oversized token', () => exchangeRequest(gate, `${'a'.repeat(9000)}.b.c.d.e`), 400, 'invalid_grant');
      // Scopes beyond subject ∩ allow-list ∩ target, or none left.
      await refused('a scope the client is not allowed for the target', () => exchangeRequest(narrowGate, token, { scope: 'orders:write' }), 400, 'invalid_scope');
      await refused('a scope the target does not register', () => exchangeRequest(gate, token, { scope: 'orders:read profile:read' }), 400, 'invalid_scope');
      await refused('an OIDC scope', () => exchangeRequest(gate, token, { scope: 'openid' }), 400, 'invalid_scope');
      const readOnly = await userToken(EDGE, 'orders:read');
      await refused("a scope beyond the subject's", () => exchangeRequest(gate, readOnly.access_token, { scope: 'orders:write' }), 400, 'invalid_scope');
      const profileOnly = await userToken(EDGE, 'profile:read');
      await refused('no scope in common', () => exchangeRequest(gate, profileOnly.access_token), 400, 'invalid_scope', /no scope is left/);
      // A token from another audience than the client fronts.
      const elsewhere = await userToken(OTHER, 'orders:read');
      await refused('a subject for another audience', () => exchangeRequest(gate, elsewhere.access_token), 400, 'invalid_grant', /exchange_from/);
    });

    test('dead subjects are refused: expired, revoked, grant revoked, user disabled, client deleted', async () => {
      const revokedToken = await userToken(EDGE);
      assert.equal((await revoke(veil.issuer, { id: web.clientId, secret: web.clientSecret! }, revokedToken.access_token)).status, 200);
      await refused('a revoked subject', () => exchangeRequest(gate, revokedToken.access_token), 400, 'invalid_grant', /invalid, expired or revoked/);

      const grantRevoked = await userToken(EDGE);
      assert.equal((await revoke(veil.issuer, { id: web.clientId, secret: web.clientSecret! }, grantRevoked.refresh_token)).status, 200);
      await refused('a subject whose grant was revoked', () => exchangeRequest(gate, grantRevoked.access_token), 400, 'invalid_grant');

      const disabled = await userToken(EDGE);
      assert.equal((await veil.admin('POST', `/admin/users/${disabled.accountId}/disable`, {})).status, 200);
      await refused('a disabled user', () => exchangeRequest(gate, disabled.access_token), 400, 'invalid_grant');
      // A client that does not front the token's API learns nothing of whether it is live (its record is still there): the audience is judged first.
      await refused(
        'the subject of a disabled user, for an API the client does not front',
        () => exchangeRequest(otherGate, disabled.access_token),
        400,
        'invalid_grant',
        /exchange_from/,
      );

      const ownClient = await client({ ...webClientBody, client_name: 'short-lived app' });
      const orphan = await userToken(EDGE, 'orders:read', ownClient);
      assert.equal((await veil.admin('DELETE', `/admin/clients/${ownClient.clientId}`)).status, 204);
      await refused("a deleted client's subject", () => exchangeRequest(gate, orphan.access_token), 400, 'invalid_grant');

      const expiring = await userToken(EXPIRING, 'orders:read');
      const { payload } = await openSealed(expiring.access_token, rs[EXPIRING]!.privateKey, veil.issuer, EXPIRING);
      await new Promise((r) => setTimeout(r, Math.max(0, payload.exp! * 1000 - Date.now()) + 1100));
      await refused('an expired subject', () => exchangeRequest(gate, expiring.access_token), 400, 'invalid_grant');
    });

    test('revoking the subject token or its grant, withdrawing consent, disabling the user or deleting a client ends the exchanged token', async () => {
      const scenarios: Array<[string, (subject: Awaited<ReturnType<typeof userToken>>, via: HttpFlowClient, gateClient: HttpFlowClient) => Promise<void>]> = [
        [
          'the subject token revoked',
          async (s, via) => void assert.equal((await revoke(veil.issuer, { id: via.clientId, secret: via.clientSecret! }, s.access_token)).status, 200),
        ],
        [
          'its refresh token revoked (the grant)',
          async (s, via) => void assert.equal((await revoke(veil.issuer, { id: via.clientId, secret: via.clientSecret! }, s.refresh_token)).status, 200),
        ],
        [
          'the refresh token reused (the grant revoked)',
          async (s, via) => {
            assert.equal((await tokenRequest(via, { grant_type: 'refresh_token', refresh_token: s.refresh_token })).status, 200);
            assert.equal((await tokenRequest(via, { grant_type: 'refresh_token', refresh_token: s.refresh_token })).body.error, 'invalid_grant');
          },
        ],
        ['consent withdrawn', async (s, via) => void assert.equal((await veil.admin('DELETE', `/admin/users/${s.accountId}/consents/${via.clientId}`)).status, 204)],
        ['the user disabled', async (s) => void assert.equal((await veil.admin('POST', `/admin/users/${s.accountId}/disable`, {})).status, 200)],
        ["the subject's client deleted", async (_s, via) => void assert.equal((await veil.admin('DELETE', `/admin/clients/${via.clientId}`)).status, 204)],
        ['the gate client deleted', async (_s, _via, g) => void assert.equal((await veil.admin('DELETE', `/admin/clients/${g.clientId}`)).status, 204)],
      ];
      for (const [label, end] of scenarios) {
        const via = await client({ ...webClientBody, client_name: `app for ${label}` });
        const gateClient = await client(gateBody(`gate for ${label}`, { resource_scopes: { [INTERNAL]: ['orders:read'] }, exchange_from: [EDGE] }));
        const subject = await userToken(EDGE, 'offline_access orders:read', via);
        const res = await exchangeRequest(gateClient, subject.access_token);
        assert.equal(res.status, 200, `${label}: ${JSON.stringify(res.body)}`);
        const token = res.body.access_token!;
        assert.equal((await introspect(veil.issuer, creds(INTERNAL), token)).body.active, true, `${label}: active before`);
        await end(subject, via, gateClient);
        assert.deepEqual((await introspect(veil.issuer, creds(INTERNAL), token)).body, { active: false }, `${label}: still active`);
      }
    });

    if (mode === 'redis') {
      test('admin API: exchange_from needs the grant type and registered APIs; updates and resource deletion keep it true', async () => {
        const bad = async (label: string, body: Body, pattern: RegExp) => {
          const before = (await veil.admin<{ clients: unknown[] }>('GET', '/admin/clients')).body.clients.length;
          const res = await veil.admin<{ error: string; error_description: string }>('POST', '/admin/clients', { client_name: label, ...body });
          assert.equal(res.status, 400, `${label}: ${JSON.stringify(res.body)}`);
          assert.match(res.body.error_description, pattern, label);
          assert.equal((await veil.admin<{ clients: unknown[] }>('GET', '/admin/clients')).body.clients.length, before, `${label}: a client was created`);
        };
        await bad('unknown audience', gateBody('x', { resources: [INTERNAL], exchange_from: ['https://nowhere.test'] }), /exchange_from names an unknown resource server/);
        await bad('without the grant type', { grant_types: ['client_credentials'], resources: [INTERNAL], exchange_from: [EDGE] }, /exchange_from is only for clients with/);
        await bad('not a URI', gateBody('x', { exchange_from: ['not a uri'] }), /exchange_from/);
        await bad('a public client', { ...gateBody('x', { exchange_from: [EDGE] }), public: true }, /confidential/);
        await bad('the short name in the API', { grant_types: ['token-exchange'] }, /grant_types/);

        const created = await veil.admin<Created>('POST', '/admin/clients', gateBody('admin gate', { resources: [INTERNAL], exchange_from: [EDGE, EDGE, SHORT] }));
        assert.equal(created.status, 201, JSON.stringify(created.body));
        const id = created.body.client.client_id;
        assert.deepEqual(created.body.client.grant_types, [TOKEN_EXCHANGE]);
        assert.deepEqual(created.body.client.exchange_from, [EDGE, SHORT]);
        assert.equal(typeof created.body.client_secret, 'string');

        const patch = (body: Body) => veil.admin<{ client: Created['client']; error_description?: string }>('PATCH', `/admin/clients/${id}`, body);
        assert.deepEqual((await patch({ exchange_from: [OTHER] })).body.client.exchange_from, [OTHER]);
        const refusedPatch = await patch({ exchange_from: ['https://nowhere.test'] });
        assert.equal(refusedPatch.status, 400);
        assert.deepEqual((await patch({ client_name: 'renamed gate' })).body.client.exchange_from, [OTHER], 'kept when not named');
        // Taking the grant type away takes the list with it; naming both is refused.
        assert.equal((await patch({ grant_types: ['client_credentials'], exchange_from: [EDGE] })).status, 400);
        const dropped = await patch({ grant_types: ['client_credentials'] });
        assert.equal(dropped.status, 200, JSON.stringify(dropped.body));
        assert.equal(dropped.body.client.exchange_from, undefined);
        assert.deepEqual((await patch({ grant_types: [TOKEN_EXCHANGE], exchange_from: [SHORT, OTHER] })).body.client.exchange_from, [SHORT, OTHER]);

        // Deleting a resource server takes it off every exchange_from.
        const doomed = await registerResourceServer(veil, { identifier: 'https://doomed.exchange.test', scopes: ['orders:read'] });
        assert.deepEqual((await patch({ exchange_from: [SHORT, doomed.identifier] })).body.client.exchange_from, [SHORT, doomed.identifier]);
        assert.equal((await veil.admin('DELETE', `/admin/resources/${encodeURIComponent(doomed.identifier)}`)).status, 204);
        const listed = (await veil.admin<{ clients: Array<Created['client']> }>('GET', '/admin/clients')).body.clients.find((c) => c.client_id === id);
        assert.deepEqual(listed?.exchange_from, [SHORT]);
      });

      test('CLI: --grant-type token-exchange and --exchange-from on create and update', async () => {
        const run = async (...args: string[]) => {
          let stdout = '';
          let stderr = '';
          const io = { stdout: (t: string) => void (stdout += t), stderr: (t: string) => void (stderr += t), readStdin: async () => '' };
          const code = await main(['node', 'veil', '--admin-url', veil.adminUrl, '--admin-token', veil.adminToken, '--json', ...args], io);
          return { code, stdout, stderr };
        };
        const created = await run(
          'clients',
          'create',
          '--name',
          'cli gate',
          '--grant-type',
          'token-exchange',
          '--resource',
          INTERNAL,
          '--scope',
          'orders:read',
          '--exchange-from',
          EDGE,
          '--exchange-from',
          SHORT,
        );
        assert.equal(created.code, 0, created.stderr);
        const out = JSON.parse(created.stdout) as { client: Created['client'] & { resource_scopes: Record<string, string[]> }; client_id: string; client_secret: string };
        rememberSecret(out.client_secret, 'client secret');
        assert.deepEqual(out.client.grant_types, [TOKEN_EXCHANGE]);
        assert.deepEqual(out.client.exchange_from, [EDGE, SHORT]);
        assert.deepEqual(out.client.resource_scopes, { [INTERNAL]: ['orders:read'] });

        // The client the CLI made exchanges.
        const cliGate = { issuer: veil.issuer, clientId: out.client_id, clientSecret: out.client_secret, redirectUri: '' };
        const subject = await userToken(EDGE);
        const res = await exchangeRequest(cliGate, subject.access_token);
        assert.deepEqual([res.status, res.body.scope], [200, 'orders:read'], JSON.stringify(res.body));

        const updated = await run('clients', 'update', out.client_id, '--exchange-from', OTHER);
        assert.equal(updated.code, 0, updated.stderr);
        assert.deepEqual((JSON.parse(updated.stdout) as { client: Created['client'] }).client.exchange_from, [OTHER]);
        await refused('after the update, EDGE is no longer fronted', () => exchangeRequest(cliGate, subject.access_token), 400, 'invalid_grant');

        const wrong = await run('clients', 'create', '--name', 'cli bad', '--grant-type', 'client_credentials', '--exchange-from', EDGE);
        assert.equal(wrong.code, 1);
        assert.match(wrong.stderr, /exchange_from is only for clients with/);
      });
    }
  });
}
