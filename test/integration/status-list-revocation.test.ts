/**
 * Token Status Lists end to end (issue 11, acceptance 1): an API that verifies ONLY locally with
 * @veil/resource-server (no introspection) refuses a token within STATUS_LIST_TTL_SECONDS (plus
 * the SDK's one-second minimum cache) after each of: the token revoked, its grant revoked by
 * refresh-token reuse, consent withdrawn, client deleted, user disabled (lifted when enabled
 * again); and a token exchanged from a user's token follows its subject. Each latency is
 * measured from the moment Veil answered the revoking call, and printed at the end. Twice: with
 * PostgreSQL and Redis (the Redis status-list store and owner index), and embedded (PGlite and
 * the in-process ones).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createVerifier, VeilTokenError, type AccessTokenVerifier } from '@veil/resource-server';
import { decodeJwt } from 'jose';
import { httpAuthorizationCodeFlow, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { openSealed, registerResourceServer, revoke, type TestResourceServer } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const TTL_SECONDS = 1;
/** The SDK caches a list at least a second (MIN_CACHE_MS), and polling and HTTP take a little. */
const CACHE_TOLERANCE_MS = 1000 + 400;
const BOUND_MS = TTL_SECONDS * 1000 + CACHE_TOLERANCE_MS;
const API = 'https://status.example/api';
const INTERNAL = 'https://status.internal';
const REDIRECT = 'https://app.example.com/cb';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Created = { client: { client_id: string }; client_secret?: string };

const latencies: Array<{ case: string; ms: number; code: string }> = [];

/** Polls until the verifier refuses `token`; resolves to the error code and the milliseconds since `since`. */
async function refusal(verifier: AccessTokenVerifier, token: string, since: number): Promise<{ code: string; ms: number }> {
  for (;;) {
    try {
      await verifier.verify(token);
    } catch (err) {
      assert.ok(err instanceof VeilTokenError, String(err));
      return { code: err.code, ms: Date.now() - since };
    }
    if (Date.now() - since > BOUND_MS + 5000) assert.fail(`still accepted ${Date.now() - since} ms after the revocation`);
    await sleep(25);
  }
}

for (const backend of ['Redis', 'embedded'] as const)
  describe(`token status lists (${backend}): revocation reaches an API that verifies only locally`, () => {
    let stores: TestStores | undefined;
    let veil: TestVeil;
    let api: TestResourceServer;
    let internal: TestResourceServer;
    let web: HttpFlowClient;
    let worker: HttpFlowClient;
    let exchanger: HttpFlowClient;
    let local: AccessTokenVerifier;
    let internalLocal: AccessTokenVerifier;
    let users = 0;

    const client = async (body: Record<string, unknown>): Promise<HttpFlowClient> => {
      const res = await veil.admin<Created>('POST', '/admin/clients', body);
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return { issuer: veil.issuer, clientId: res.body.client.client_id, clientSecret: res.body.client_secret!, redirectUri: REDIRECT };
    };
    const webClient = () =>
      client({
        client_name: 'web app',
        redirect_uris: [REDIRECT],
        grant_types: ['authorization_code', 'refresh_token'],
        scope: 'openid offline_access',
        resource_scopes: { [API]: ['read'] },
      });
    const signIn = async (via: HttpFlowClient) => {
      const user = { email: `status-${++users}@example.com`, password: 'status lists for all 123' };
      const created = await veil.admin<{ user: { id: string } }>('POST', '/admin/users', { ...user, name: 'Status User' });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const tokens = await httpAuthorizationCodeFlow(via, user, 'openid offline_access read', { resource: API });
      return { accessToken: tokens.access_token, refreshToken: tokens.refresh_token, accountId: created.body.user.id };
    };
    const verifierFor = (rs: TestResourceServer) =>
      createVerifier({ issuer: veil.issuer, audience: rs.identifier, decryptionKeys: [{ kid: rs.publicJwk.kid!, key: rs.privateKey }] });
    const accepted = async (token: string, verifier = local) => (await verifier.verify(token)).claims;
    const record = (name: string, outcome: { code: string; ms: number }, expected: string) => {
      latencies.push({ case: `${name} (${backend})`, ms: outcome.ms, code: outcome.code });
      assert.equal(outcome.code, expected);
      assert.ok(outcome.ms <= BOUND_MS, `${name}: refused after ${outcome.ms} ms, more than ${BOUND_MS}`);
    };

    before(async () => {
      stores = backend === 'Redis' ? await createTestStores() : undefined;
      veil = await startTestVeil(stores, { STATUS_LIST_TTL_SECONDS: String(TTL_SECONDS), STATUS_LIST_EXP_SECONDS: '30', STATUS_LIST_SIZE: '8192' });
      api = await registerResourceServer(veil, { identifier: API, scopes: ['read'] });
      internal = await registerResourceServer(veil, { identifier: INTERNAL, scopes: ['read'] });
      web = await webClient();
      worker = await client({ client_name: 'worker', grant_types: ['client_credentials'], resources: [API], resource_scopes: { [API]: ['read'] } });
      exchanger = await client({ client_name: 'exchanger', grant_types: [TOKEN_EXCHANGE], resources: [INTERNAL], resource_scopes: { [INTERNAL]: ['read'] }, exchange_from: [API] });
      // No `introspect` option: these APIs only ever verify locally.
      local = verifierFor(api);
      internalLocal = verifierFor(internal);
    });

    after(async () => {
      await veil?.stop();
      await stores?.cleanup();
      const mine = latencies.filter((l) => l.case.endsWith(`(${backend})`));
      if (mine.length) {
        console.log(`revocation latency with STATUS_LIST_TTL_SECONDS=${TTL_SECONDS} (bound ${BOUND_MS} ms):`);
        for (const l of mine) console.log(`  ${l.case.padEnd(50)} ${String(l.ms).padStart(5)} ms  ${l.code}`);
      }
    });

    test('every sealed token carries a status inside the signed JWT, naming a list at the issuer', async () => {
      const { accessToken } = await signIn(web);
      const { payload } = await openSealed(accessToken, api.privateKey, veil.issuer, API);
      const status = payload.status as { status_list: { idx: number; uri: string } };
      assert.ok(Number.isInteger(status.status_list.idx) && status.status_list.idx >= 0 && status.status_list.idx < 8192);
      assert.match(status.status_list.uri, new RegExp(`^${veil.issuer.replace(/[.]/g, '\\.')}/status-lists/[A-Za-z0-9_-]{22}$`));
      // The record keeps the slot for revocation; it never becomes a claim of its own.
      assert.equal(payload.veil_status, undefined);
      const res = await fetch(status.status_list.uri);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/statuslist+jwt');
      const maxAge = Number(/max-age=(\d+)/.exec(res.headers.get('cache-control') ?? '')?.[1]);
      assert.ok(maxAge >= 0 && maxAge <= TTL_SECONDS, res.headers.get('cache-control') ?? '');
      const list = decodeJwt(await res.text());
      assert.equal(list.sub, status.status_list.uri);
      assert.equal(list.ttl, TTL_SECONDS);
      assert.equal((await accepted(accessToken)).status?.status_list.idx, status.status_list.idx);
    });

    test('the token revoked: refused, while another client revoking it changed nothing', async () => {
      const issue = async () => {
        const res = await tokenRequest(worker, { grant_type: 'client_credentials', resource: API, scope: 'read' });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        return res.body.access_token!;
      };
      const token = await issue();
      const other = await issue();
      await accepted(token);
      // Another client's revocation is a 200 that changes nothing (RFC 7009): still accepted a full ttl later.
      assert.equal((await revoke(veil.issuer, { id: web.clientId, secret: web.clientSecret! }, token)).status, 200);
      await sleep(BOUND_MS + 200);
      await accepted(token);

      assert.equal((await revoke(veil.issuer, { id: worker.clientId, secret: worker.clientSecret! }, token)).status, 200);
      record('token revoked', await refusal(local, token, Date.now()), 'token_revoked');
      await accepted(other);
    });

    test('the grant revoked by refresh-token reuse: every access token of the grant is refused', async () => {
      const first = await signIn(web);
      await accepted(first.accessToken);
      const refreshed = await tokenRequest(web, { grant_type: 'refresh_token', refresh_token: first.refreshToken });
      assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
      await accepted(refreshed.body.access_token!);
      const bystander = await signIn(web); // another user's grant with the same client

      const reused = await tokenRequest(web, { grant_type: 'refresh_token', refresh_token: first.refreshToken });
      const at = Date.now();
      assert.equal(reused.status, 400);
      assert.equal(reused.body.error, 'invalid_grant');
      record('grant revoked (refresh-token reuse)', await refusal(local, refreshed.body.access_token!, at), 'token_revoked');
      assert.equal((await refusal(local, first.accessToken, at)).code, 'token_revoked');
      await accepted(bystander.accessToken);
    });

    test('consent withdrawn: refused', async () => {
      const user = await signIn(web);
      await accepted(user.accessToken);
      const res = await veil.admin('DELETE', `/admin/users/${user.accountId}/consents/${web.clientId}`);
      assert.ok(res.status === 200 || res.status === 204, JSON.stringify(res));
      record('consent withdrawn', await refusal(local, user.accessToken, Date.now()), 'token_revoked');
    });

    test('client deleted: its tokens are refused, other clients\u2019 are not', async () => {
      const doomed = await webClient();
      const user = await signIn(doomed);
      const bystander = await signIn(web);
      await accepted(user.accessToken);
      const res = await veil.admin('DELETE', `/admin/clients/${doomed.clientId}`);
      assert.ok(res.status === 200 || res.status === 204, JSON.stringify(res));
      record('client deleted', await refusal(local, user.accessToken, Date.now()), 'token_revoked');
      await accepted(bystander.accessToken);
    });

    test('user disabled: suspended, and accepted again once the user is enabled', async () => {
      const user = await signIn(web);
      await accepted(user.accessToken);
      assert.equal((await veil.admin('POST', `/admin/users/${user.accountId}/disable`, {})).status, 200);
      record('user disabled', await refusal(local, user.accessToken, Date.now()), 'token_suspended');

      assert.equal((await veil.admin('POST', `/admin/users/${user.accountId}/enable`, {})).status, 200);
      const enabledAt = Date.now();
      for (;;) {
        try {
          await accepted(user.accessToken);
          break;
        } catch (err) {
          assert.equal((err as VeilTokenError).code, 'token_suspended');
          assert.ok(Date.now() - enabledAt <= BOUND_MS, 'still suspended after the user was enabled');
          await sleep(25);
        }
      }
    });

    test('an exchanged token follows its subject: refused once the subject token is revoked', async () => {
      const user = await signIn(web);
      const res = await tokenRequest(exchanger, {
        grant_type: TOKEN_EXCHANGE,
        subject_token: user.accessToken,
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        resource: INTERNAL,
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const exchanged = res.body.access_token!;
      await accepted(exchanged, internalLocal);
      assert.equal((await revoke(veil.issuer, { id: web.clientId, secret: web.clientSecret! }, user.accessToken)).status, 200);
      const at = Date.now();
      record('exchanged token, subject revoked', await refusal(internalLocal, exchanged, at), 'token_revoked');
    });

    test('unknown and malformed list ids: 404 in OAuth JSON', async () => {
      for (const id of ['AAAAAAAAAAAAAAAAAAAAAA', 'not-a-list', 'A'.repeat(23)]) {
        const res = await fetch(`${veil.issuer}/status-lists/${id}`);
        assert.equal(res.status, 404, id);
        assert.equal(((await res.json()) as { error: string }).error.length > 0, true);
      }
    });
  });
