/**
 * Pairwise subjects per API (issue 11, acceptance 4): two APIs registered "pairwise" (the default)
 * see different `sub` values for the same user, neither the account id; introspection agrees
 * with the token; a "public" API sees the account id; client-credentials tokens keep the client
 * id; an exchanged token carries the target API's own value; the value is stable across restarts
 * (the deployment's pairwise secret, sealed in KEYS_DIR; across master-key rotations:
 * test/e2e/pairwise-master-rotation.test.ts). Switching an API's mode is refused while it has live tokens, and
 * allowed when forced or once they have expired. Run against real PostgreSQL and Redis, and with
 * the in-process store.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { decodeJwt } from 'jose';
import { main } from '../../src/cli/main.js';
import { Envelope, generateMasterKey, parseMasterKeys } from '../../src/crypto/master-key.js';
import { openDatabase } from '../../src/store/database.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { DEFAULT_MIGRATIONS_DIR, migrate, readMigrations } from '../../src/store/migrator.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { closeRedis, connectRedis } from '../../src/store/redis-connection.js';
import { httpAuthorizationCodeFlow, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { generateEncryptionKey, introspect, openSealed, registerResourceServer, type TestResourceServer } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const ORDERS = 'https://orders.pairwise.test';
const BILLING = 'https://billing.pairwise.test';
const LEGACY = 'https://legacy.pairwise.test';
const BRIEF = 'https://brief.pairwise.test';
const CLI_API = 'https://cli.pairwise.test';
const REDIRECT = 'https://app.pairwise.test/cb';

type Resource = { identifier: string; subject: string };

/** The deployment's pairwise secret: KEYS_DIR/pairwise-secret.json opened with the master key (purpose pairwise-subjects). */
async function storedSecret(keysDir: string, masterKey: string): Promise<Buffer> {
  const { sealed } = JSON.parse(await fs.readFile(path.join(keysDir, 'pairwise-secret.json'), 'utf8')) as { sealed: string };
  return Buffer.from(new Envelope(parseMasterKeys(masterKey, 'test')).open(sealed, 'pairwise-subjects', 'pairwise-secret'), 'base64url');
}

/** The documented derivation, computed here independently: HMAC-SHA-256 under the deployment's pairwise secret. */
function expectedPairwise(secret: Buffer, identifier: string, accountId: string, kind: 'api' | 'sector' = 'api'): string {
  return createHmac('sha256', secret)
    .update(JSON.stringify([kind, identifier, accountId]))
    .digest('base64url');
}

for (const mode of ['redis', 'memory'] as const) {
  describe(`pairwise subjects per API (PostgreSQL, ${mode === 'redis' ? 'Redis' : 'in-process store'})`, () => {
    const masterKey = generateMasterKey();
    let stores: TestStores;
    let veil: TestVeil;
    const rs: Record<string, TestResourceServer> = {};
    let web: HttpFlowClient;
    let worker: HttpFlowClient;
    let gate: HttpFlowClient;
    let users = 0;
    // One KEYS_DIR for both Veils of the restart test: the pairwise secret lives there.
    let keysDir: string;
    let secret: Buffer;
    const env = () => ({ VEIL_MASTER_KEY: masterKey, KEYS_DIR: keysDir, ...(mode === 'memory' ? { REDIS_URL: '' } : {}) });
    const creds = (id: string) => ({ id: rs[id]!.clientId, secret: rs[id]!.clientSecret });

    async function client(body: Record<string, unknown>): Promise<HttpFlowClient> {
      const res = await veil.admin<{ client: { client_id: string }; client_secret?: string }>('POST', '/admin/clients', body);
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return { issuer: veil.issuer, clientId: res.body.client.client_id, clientSecret: res.body.client_secret, redirectUri: REDIRECT };
    }

    async function newUser() {
      const user = { email: `pairwise-${mode}-${++users}@example.com`, password: 'pairwise subjects are private' };
      const created = await veil.admin<{ user: { id: string } }>('POST', '/admin/users', { ...user, name: 'Pair Wise' });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return { ...user, accountId: created.body.user.id };
    }

    async function tokenFor(user: { email: string; password: string }, resource: string) {
      const tokens = await httpAuthorizationCodeFlow(web, user, 'openid orders:read', { resource });
      const opened = await openSealed(tokens.access_token, rs[resource]!.privateKey, veil.issuer, resource);
      return { token: tokens.access_token, sub: opened.payload.sub! };
    }

    const resource = async (identifier: string) =>
      (await veil.admin<{ resources: Resource[] }>('GET', '/admin/resources')).body.resources.find((r) => r.identifier === identifier)!;
    async function cli(args: string[]) {
      let stdout = '';
      let stderr = '';
      const io = { stdout: (t: string) => void (stdout += t), stderr: (t: string) => void (stderr += t), readStdin: async () => '' };
      const code = await main(['node', 'veil', '--admin-url', veil.adminUrl, '--admin-token', veil.adminToken, ...args], io);
      return { code, stdout, stderr };
    }
    const auditRows = () => veil.database.prisma.auditEvent.count({ where: { type: 'resource.updated' } });

    before(async () => {
      stores = await createTestStores();
      keysDir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-pairwise-keys-'));
      veil = await startTestVeil(stores, env());
      secret = await storedSecret(keysDir, masterKey);
      rs[ORDERS] = await registerResourceServer(veil, { identifier: ORDERS, scopes: ['orders:read'] });
      rs[BILLING] = await registerResourceServer(veil, { identifier: BILLING, scopes: ['orders:read'], extra: { subject: 'pairwise' } });
      rs[LEGACY] = await registerResourceServer(veil, { identifier: LEGACY, scopes: ['orders:read'], extra: { subject: 'public' } });
      rs[BRIEF] = await registerResourceServer(veil, { identifier: BRIEF, scopes: ['orders:read'], ttl: 3 });
      const all = { [ORDERS]: ['orders:read'], [BILLING]: ['orders:read'], [LEGACY]: ['orders:read'], [BRIEF]: ['orders:read'] };
      web = await client({
        client_name: 'pairwise web',
        redirect_uris: [REDIRECT],
        grant_types: ['authorization_code', 'refresh_token'],
        scope: 'openid offline_access',
        resource_scopes: all,
      });
      worker = await client({ client_name: 'pairwise worker', grant_types: ['client_credentials'], resource_scopes: { [ORDERS]: ['orders:read'] } });
      gate = await client({ client_name: 'pairwise gate', grant_types: [TOKEN_EXCHANGE], resource_scopes: { [BILLING]: ['orders:read'] }, exchange_from: [ORDERS] });
    });

    after(async () => {
      await veil?.stop();
      await stores?.cleanup();
      if (keysDir) await fs.rm(keysDir, { recursive: true, force: true });
    });

    test('new APIs default to pairwise; the mode is listed', async () => {
      assert.deepEqual([(await resource(ORDERS)).subject, (await resource(BILLING)).subject, (await resource(LEGACY)).subject], ['pairwise', 'pairwise', 'public']);
    });

    test('two pairwise APIs see different subjects for one user, a public API the account id; introspection agrees', async () => {
      const user = await newUser();
      const orders = await tokenFor(user, ORDERS);
      const billing = await tokenFor(user, BILLING);
      const legacy = await tokenFor(user, LEGACY);
      assert.notEqual(orders.sub, billing.sub);
      assert.notEqual(orders.sub, user.accountId);
      assert.notEqual(billing.sub, user.accountId);
      assert.equal(legacy.sub, user.accountId);
      // Exactly the documented derivation (master key, API identifier, account id).
      assert.equal(orders.sub, expectedPairwise(secret, ORDERS, user.accountId));
      assert.equal(billing.sub, expectedPairwise(secret, BILLING, user.accountId));

      // Stable for the pair: a second sign-in gets the same value.
      assert.equal((await tokenFor(user, ORDERS)).sub, orders.sub);
      // Another user gets another value at the same API.
      assert.notEqual((await tokenFor(await newUser(), ORDERS)).sub, orders.sub);

      // The API and the client introspecting the token see the token's own `sub`.
      for (const [id, t] of [
        [ORDERS, orders],
        [BILLING, billing],
        [LEGACY, legacy],
      ] as const) {
        const byApi = await introspect(veil.issuer, creds(id), t.token);
        assert.deepEqual([byApi.body.active, byApi.body.sub], [true, t.sub], id);
        const byClient = await introspect(veil.issuer, { id: web.clientId, secret: web.clientSecret! }, t.token);
        assert.deepEqual([byClient.body.active, byClient.body.sub], [true, t.sub], id);
      }
      // Another API learns nothing of the token (not even its subject).
      assert.deepEqual((await introspect(veil.issuer, creds(BILLING), orders.token)).body, { active: false });
    });

    test('a client-credentials token keeps the client id as sub at a pairwise API', async () => {
      const res = await tokenRequest(worker, { grant_type: 'client_credentials', scope: 'orders:read', resource: ORDERS });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const { payload } = await openSealed(String(res.body.access_token), rs[ORDERS]!.privateKey, veil.issuer, ORDERS);
      assert.equal(payload.sub, worker.clientId);
      assert.equal((await introspect(veil.issuer, creds(ORDERS), String(res.body.access_token))).body.sub, worker.clientId);
    });

    test("an exchanged token carries the target API's own subject for the same user", async () => {
      const user = await newUser();
      const orders = await tokenFor(user, ORDERS);
      const billing = await tokenFor(user, BILLING);
      const res = await tokenRequest(gate, { grant_type: TOKEN_EXCHANGE, subject_token: orders.token, subject_token_type: ACCESS_TOKEN_TYPE, resource: BILLING });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const exchanged = String(res.body.access_token);
      const { payload } = await openSealed(exchanged, rs[BILLING]!.privateKey, veil.issuer, BILLING);
      assert.equal(payload.sub, billing.sub);
      assert.notEqual(payload.sub, orders.sub);
      const seen = await introspect(veil.issuer, creds(BILLING), exchanged);
      assert.deepEqual([seen.body.active, seen.body.sub], [true, billing.sub]);
      // Derived from the account id the exchanged record kept, not from the subject token's value.
      assert.equal(payload.sub, expectedPairwise(secret, BILLING, user.accountId));
    });

    test('switching the mode is refused while the API has live tokens, and changes nothing', async () => {
      const user = await newUser();
      const orders = await tokenFor(user, ORDERS);
      const rows = await auditRows();
      const refused = await veil.admin<{ error: string; error_description: string }>('PATCH', `/admin/resources/${encodeURIComponent(ORDERS)}`, { subject: 'public' });
      assert.equal(refused.status, 409, JSON.stringify(refused.body));
      assert.match(refused.body.error_description, /live access tokens/);
      assert.equal((await resource(ORDERS)).subject, 'pairwise');
      assert.equal(await auditRows(), rows);
      // Tokens keep being issued with the pairwise value.
      assert.equal((await tokenFor(user, ORDERS)).sub, orders.sub);
    });

    test('an API that existed before tokens were noted: the switch is refused for one token lifetime after noting began', async () => {
      const upgraded = 'https://upgraded.pairwise.test';
      await registerResourceServer(veil, { identifier: upgraded, scopes: ['orders:read'], extra: { subject: 'public' } });
      const path = `/admin/resources/${encodeURIComponent(upgraded)}`;
      // As the migration leaves a row that existed before it (no token for it is noted).
      await veil.database.prisma.resourceServer.update({ where: { identifier: upgraded }, data: { tokensNotedSince: new Date() } });
      const refused = await veil.admin<{ error_description: string }>('PATCH', path, { subject: 'pairwise' });
      assert.equal(refused.status, 409);
      assert.match(refused.body.error_description, /live access tokens/);
      assert.equal((await resource(upgraded)).subject, 'public');
      // One access-token lifetime (600 s) later, nothing unnoted can be live.
      await veil.database.prisma.resourceServer.update({ where: { identifier: upgraded }, data: { tokensNotedSince: new Date(Date.now() - 601_000) } });
      assert.equal((await veil.admin('PATCH', path, { subject: 'pairwise' })).status, 200);
      assert.equal((await resource(upgraded)).subject, 'pairwise');
    });

    test('bad updates get the admin API errors', async () => {
      const unknown = await veil.admin('PATCH', `/admin/resources/${encodeURIComponent('https://nowhere.pairwise.test')}`, { subject: 'public' });
      assert.equal(unknown.status, 404);
      const bad = await veil.admin('PATCH', `/admin/resources/${encodeURIComponent(ORDERS)}`, { subject: 'secret' });
      assert.equal(bad.status, 400);
      const onlyForce = await veil.admin('PATCH', `/admin/resources/${encodeURIComponent(ORDERS)}`, { force: true });
      assert.equal(onlyForce.status, 400);
      const noToken = await fetch(`${veil.adminUrl}/admin/resources/${encodeURIComponent(ORDERS)}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json' },
        body: '{"subject":"public"}',
      });
      assert.equal(noToken.status, 401);
      assert.equal((await resource(ORDERS)).subject, 'pairwise');
    });

    test('a forced switch applies at once to new tokens and is audited as forced', async () => {
      const user = await newUser();
      await tokenFor(user, BILLING);
      const forced = await veil.admin<{ resource: Resource }>('PATCH', `/admin/resources/${encodeURIComponent(BILLING)}`, { subject: 'public', force: true });
      assert.equal(forced.status, 200, JSON.stringify(forced.body));
      assert.equal(forced.body.resource.subject, 'public');
      const row = await veil.database.prisma.auditEvent.findFirst({ where: { type: 'resource.updated' }, orderBy: { id: 'desc' } });
      assert.deepEqual(row?.details, { identifier: BILLING, subject_mode: 'public', forced: true });
      assert.equal((await tokenFor(user, BILLING)).sub, user.accountId);
      // And back (forced again: the public token just issued is live).
      const back = await veil.admin<{ resource: Resource }>('PATCH', `/admin/resources/${encodeURIComponent(BILLING)}`, { subject: 'pairwise', force: true });
      assert.equal(back.status, 200);
      assert.equal((await tokenFor(user, BILLING)).sub, expectedPairwise(secret, BILLING, user.accountId));
    });

    test('once the live tokens have expired, the switch is allowed without force', async () => {
      const user = await newUser();
      const brief = await tokenFor(user, BRIEF);
      assert.equal(brief.sub, expectedPairwise(secret, BRIEF, user.accountId));
      const path = `/admin/resources/${encodeURIComponent(BRIEF)}`;
      assert.equal((await veil.admin('PATCH', path, { subject: 'public' })).status, 409);
      // The marker covers the token's expiry rounded up to a 10-second slot.
      const deadline = Date.now() + 30_000;
      let status = 409;
      while (status === 409 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 1000));
        status = (await veil.admin('PATCH', path, { subject: 'public' })).status;
      }
      assert.equal(status, 200);
      const row = await veil.database.prisma.auditEvent.findFirst({ where: { type: 'resource.updated' }, orderBy: { id: 'desc' } });
      assert.deepEqual(row?.details, { identifier: BRIEF, subject_mode: 'public', forced: false });
      assert.equal((await tokenFor(user, BRIEF)).sub, user.accountId);
    });

    test("ID tokens: a pairwise client sees its sector's own sub (OIDC Core §8), userinfo agrees, a public client sees the account id", async () => {
      const user = await newUser();
      const pairwiseClient = async (host: string) => ({
        ...(await client({ client_name: `pairwise ${host}`, redirect_uris: [`https://${host}/cb`], subject_type: 'pairwise', scope: 'openid' })),
        redirectUri: `https://${host}/cb`,
      });
      const [a, a2, b] = [await pairwiseClient('a.sector.test'), await pairwiseClient('a.sector.test'), await pairwiseClient('b.sector.test')];
      const seen = async (c: HttpFlowClient) => {
        const tokens = await httpAuthorizationCodeFlow(c, user, 'openid');
        const sub = decodeJwt(tokens.id_token).sub!;
        const userinfo = (await (await fetch(`${veil.issuer}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } })).json()) as { sub: string };
        assert.equal(userinfo.sub, sub, 'userinfo agrees with the ID token');
        // So does introspection by the client of its token of no API (here the userinfo token).
        const seenByClient = await introspect(veil.issuer, { id: c.clientId, secret: c.clientSecret! }, tokens.access_token);
        assert.deepEqual([seenByClient.body.active, seenByClient.body.sub], [true, sub]);
        return sub;
      };
      const [subA, subA2, subB, subWeb] = [await seen(a), await seen(a2), await seen(b), await seen(web)];
      assert.equal(subA, expectedPairwise(secret, 'a.sector.test', user.accountId, 'sector'));
      assert.equal(subA2, subA, 'one sector, one sub');
      assert.equal(subB, expectedPairwise(secret, 'b.sector.test', user.accountId, 'sector'));
      assert.notEqual(subA, subB);
      assert.equal(subWeb, user.accountId);
      // A sector's value is not any API's value for the same user.
      assert.notEqual(subA, expectedPairwise(secret, 'a.sector.test', user.accountId));
      // subject_type is checked: anything else is refused, and nothing is created.
      const before = (await veil.admin<{ clients: unknown[] }>('GET', '/admin/clients')).body.clients.length;
      const bad = await veil.admin('POST', '/admin/clients', { client_name: 'bad', redirect_uris: ['https://c.sector.test/cb'], subject_type: 'secret' });
      assert.equal(bad.status, 400);
      // A sector is one host: redirect URIs on two hosts cannot share one pairwise sub.
      const twoHosts = await veil.admin('POST', '/admin/clients', {
        client_name: 'two hosts',
        redirect_uris: ['https://c.sector.test/cb', 'https://d.sector.test/cb'],
        subject_type: 'pairwise',
      });
      assert.equal(twoHosts.status, 400, JSON.stringify(twoHosts.body));
      assert.equal((await veil.admin<{ clients: unknown[] }>('GET', '/admin/clients')).body.clients.length, before);
    });

    test('veil resources create --subject and update --subject [--force]', async () => {
      const jwkFile = path.join(veil.tmpDir, 'cli-api.jwk.json');
      await fs.writeFile(jwkFile, JSON.stringify((await generateEncryptionKey()).publicJwk));
      const created = await cli([
        'resources',
        'create',
        '--identifier',
        CLI_API,
        '--name',
        'CLI API',
        '--scope',
        'orders:read',
        '--jwk-file',
        jwkFile,
        '--subject',
        'public',
        '--json',
      ]);
      assert.equal(created.code, 0, created.stderr);
      assert.equal((JSON.parse(created.stdout) as { resource: Resource }).resource.subject, 'public');
      const wrong = await cli(['resources', 'create', '--identifier', 'https://wrong.pairwise.test', '--name', 'x', '--scope', 'a', '--jwk-file', jwkFile, '--subject', 'secret']);
      assert.notEqual(wrong.code, 0);
      assert.equal(await resource('https://wrong.pairwise.test'), undefined);

      // No token was issued for it: the switch needs no force.
      const switched = await cli(['resources', 'update', CLI_API, '--subject', 'pairwise', '--json']);
      assert.equal(switched.code, 0, switched.stderr);
      assert.equal((await resource(CLI_API)).subject, 'pairwise');

      // With a live token: refused, then forced.
      await cli(['resources', 'update', ORDERS, '--subject', 'pairwise']);
      await tokenFor(await newUser(), ORDERS);
      const refused = await cli(['resources', 'update', ORDERS, '--subject', 'public']);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /live access tokens/);
      assert.equal((await resource(ORDERS)).subject, 'pairwise');
      const listed = await cli(['resources', 'list']);
      assert.match(listed.stdout, /SUBJECT/);
      assert.match(listed.stdout, /pairwise/);
      const forced = await cli(['resources', 'update', ORDERS, '--subject', 'public', '--force', '--json']);
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal((await resource(ORDERS)).subject, 'public');
      assert.equal((await cli(['resources', 'update', ORDERS, '--subject', 'pairwise', '--force'])).code, 0);
    });

    test('the pairwise value is the same after a restart', async () => {
      const user = await newUser();
      const before = await tokenFor(user, ORDERS);
      await veil.stop();
      veil = await startTestVeil(stores, env());
      web = { ...web, issuer: veil.issuer };
      const again = await tokenFor(user, ORDERS);
      assert.equal(again.sub, before.sub);
      assert.equal(again.sub, expectedPairwise(secret, ORDERS, user.accountId));
    });
  });
}

describe('the subject mode migration', () => {
  test('resource servers that existed before it stay public and are guarded for one token lifetime; new ones default to pairwise', async () => {
    const stores = await createTestStores();
    const db = await openDatabase({ kind: 'postgres', url: stores.databaseUrl });
    const runner = await db.openSqlRunner();
    try {
      const all = await readMigrations(DEFAULT_MIGRATIONS_DIR);
      const mine = all.findIndex((m) => m.name === '20261206100000_resource_subject_mode');
      assert.ok(mine > 0);
      await migrate(runner, all.slice(0, mine));
      await runner.exec(
        `INSERT INTO resource_servers (identifier, name, scopes, access_token_ttl, jwks_uri, updated_at) VALUES ('https://old.pairwise.test', 'old', '{}', 600, 'https://old.pairwise.test/jwks', now())`,
      );
      await migrate(runner, all);
      await runner.exec(
        `INSERT INTO resource_servers (identifier, name, scopes, access_token_ttl, jwks_uri, updated_at) VALUES ('https://new.pairwise.test', 'new', '{}', 600, 'https://new.pairwise.test/jwks', now())`,
      );
      const rows = await runner.query<{ identifier: string; subject_mode: string; tokens_noted_since: Date | null }>(
        'SELECT identifier, subject_mode, tokens_noted_since FROM resource_servers ORDER BY identifier',
      );
      assert.deepEqual(
        rows.map((r) => [r.identifier, r.subject_mode, r.tokens_noted_since !== null]),
        [
          ['https://new.pairwise.test', 'pairwise', false],
          ['https://old.pairwise.test', 'public', true],
        ],
      );
      await assert.rejects(runner.exec(`UPDATE resource_servers SET subject_mode = 'secret'`));
    } finally {
      await runner.close();
      await db.close();
      await stores.cleanup();
    }
  });
});

describe('audience expiry markers only ever move later', () => {
  let stores: TestStores;
  let redisStore: RedisStore;
  before(async () => {
    stores = await createTestStores();
    const client = await connectRedis(stores.redisUrl);
    redisStore = new RedisStore(client, { keyPrefix: stores.keyPrefix });
    redisStore.close = () => closeRedis(client);
  });
  after(async () => {
    await redisStore?.close();
    await stores?.cleanup();
  });

  for (const name of ['redis', 'memory'] as const) {
    test(name, async () => {
      const store = name === 'redis' ? redisStore : new MemoryStore();
      const now = Math.floor(Date.now() / 1000);
      assert.equal(await store.audienceExpiry('https://a.test'), undefined);
      await store.noteAudienceExpiry('https://a.test', now + 100);
      await store.noteAudienceExpiry('https://a.test', now + 50);
      assert.equal(await store.audienceExpiry('https://a.test'), now + 100);
      await store.noteAudienceExpiry('https://a.test', now + 200);
      assert.equal(await store.audienceExpiry('https://a.test'), now + 200);
      assert.equal(await store.audienceExpiry('https://b.test'), undefined);
      // Already past: nothing noted.
      await store.noteAudienceExpiry('https://c.test', now - 1);
      assert.equal(await store.audienceExpiry('https://c.test'), undefined);
      await store.noteAudienceExpiry('https://d.test', now + 1);
      await new Promise((r) => setTimeout(r, 2100));
      assert.equal(await store.audienceExpiry('https://d.test'), undefined);
      if (name === 'memory') await store.close();
    });
  }
});
