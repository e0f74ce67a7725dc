/**
 * Pairwise subjects survive `veil keys rotate-master` (issue 11): the secret behind them is random,
 * stored sealed where the key ring lives (KEYS_DIR/pairwise-secret.json, or key_ring_state in
 * PostgreSQL with KEYS_STORE=database), and re-sealed, never replaced, by the rotation. Each API
 * and each pairwise client sector sees the same `sub` for a user before the rotation, during the
 * rolling restart with "new,old", and with the new key alone; two APIs still see different ones.
 * The stored secret is never readable in plain, and is not derived from the master key.
 */
import assert from 'node:assert/strict';
import { createHmac, hkdfSync } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import { Envelope, generateMasterKey, parseMasterKeys } from '../../src/crypto/master-key.js';
import { httpAuthorizationCodeFlow, type HttpFlowClient } from '../helpers/http-flow.js';
import { runCli } from '../helpers/process.js';
import { introspect, openSealed, registerResourceServer, type TestResourceServer } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const ORDERS = 'https://orders.rotation.test';
const BILLING = 'https://billing.rotation.test';
const REDIRECT = 'https://app.rotation.test/cb';
const SECTOR_REDIRECT = 'https://sector.rotation.test/cb';

for (const keysStore of ['file', 'database'] as const) {
  describe(`pairwise subjects across a master-key rotation (KEYS_STORE=${keysStore})`, () => {
    let stores: TestStores;
    let veil: TestVeil | undefined;
    let keysDir: string;
    const oldKey = generateMasterKey();
    const newKey = generateMasterKey();
    const [oldId, newId] = [oldKey, newKey].map((k) => parseMasterKeys(k, 'test')[0]!.id);
    const rs: Record<string, TestResourceServer> = {};
    let web: HttpFlowClient;
    let sectorClient: HttpFlowClient;
    const user = { email: `rotation-${keysStore}@example.com`, password: 'pairwise subjects outlive the master key' };
    let accountId: string;

    const start = async (masterKey: string) => {
      veil = await startTestVeil(stores, { VEIL_MASTER_KEY: masterKey, KEYS_DIR: keysDir, KEYS_STORE: keysStore });
      web = { ...web, issuer: veil.issuer };
      sectorClient = { ...sectorClient, issuer: veil.issuer };
      return veil;
    };

    /** The sealed secret exactly as stored. */
    const storedSealed = async (): Promise<string> => {
      if (keysStore === 'file') return (JSON.parse(await fs.readFile(path.join(keysDir, 'pairwise-secret.json'), 'utf8')) as { sealed: string }).sealed;
      const rows = await veil!.database.prisma.$queryRaw<{ pairwise_secret: string }[]>`SELECT pairwise_secret FROM key_ring_state`;
      return rows[0]!.pairwise_secret;
    };
    /** Everything stored about the secret, as text: the file, or the whole key_ring_state row. */
    const storedText = async (): Promise<string> => {
      if (keysStore === 'file') return fs.readFile(path.join(keysDir, 'pairwise-secret.json'), 'utf8');
      return JSON.stringify(await veil!.database.prisma.$queryRaw`SELECT * FROM key_ring_state`);
    };
    const openSecret = (sealed: string, masterKey: string) =>
      Buffer.from(new Envelope(parseMasterKeys(masterKey, 'test')).open(sealed, 'pairwise-subjects', 'pairwise-secret'), 'base64url');

    /** What each party sees: both APIs' access-token `sub` (and introspection's), the sector client's ID-token `sub`. */
    async function seen(): Promise<{ orders: string; billing: string; sector: string }> {
      const subs: Record<string, string> = {};
      for (const identifier of [ORDERS, BILLING]) {
        const tokens = await httpAuthorizationCodeFlow(web, user, 'openid orders:read', { resource: identifier });
        const sub = (await openSealed(tokens.access_token, rs[identifier]!.privateKey, veil!.issuer, identifier)).payload.sub!;
        const answer = await introspect(veil!.issuer, { id: rs[identifier]!.clientId, secret: rs[identifier]!.clientSecret }, tokens.access_token);
        assert.deepEqual([answer.body.active, answer.body.sub], [true, sub], 'introspection agrees with the token');
        subs[identifier] = sub;
      }
      const sector = decodeJwt((await httpAuthorizationCodeFlow(sectorClient, user, 'openid')).id_token).sub!;
      return { orders: subs[ORDERS]!, billing: subs[BILLING]!, sector };
    }

    before(async () => {
      stores = await createTestStores();
      // One KEYS_DIR for every Veil below (each test Veil's own temporary dir goes when it stops).
      keysDir = await fs.mkdtemp(path.join(os.tmpdir(), `veil-pairwise-rotation-${keysStore}-`));
      await start(oldKey);
      for (const identifier of [ORDERS, BILLING]) rs[identifier] = await registerResourceServer(veil!, { identifier, scopes: ['orders:read'] });
      const c = await veil!.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
        client_name: 'rotation web',
        redirect_uris: [REDIRECT],
        grant_types: ['authorization_code'],
        scope: 'openid',
        resource_scopes: { [ORDERS]: ['orders:read'], [BILLING]: ['orders:read'] },
      });
      assert.equal(c.status, 201, JSON.stringify(c.body));
      web = { issuer: veil!.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret, redirectUri: REDIRECT };
      const p = await veil!.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
        client_name: 'rotation sector',
        redirect_uris: [SECTOR_REDIRECT],
        subject_type: 'pairwise',
        scope: 'openid',
      });
      assert.equal(p.status, 201, JSON.stringify(p.body));
      sectorClient = { issuer: veil!.issuer, clientId: p.body.client.client_id, clientSecret: p.body.client_secret, redirectUri: SECTOR_REDIRECT };
      const created = await veil!.admin<{ user: { id: string } }>('POST', '/admin/users', user);
      assert.equal(created.status, 201, JSON.stringify(created.body));
      accountId = created.body.user.id;
    });

    after(async () => {
      await veil?.stop();
      if (keysDir) await fs.rm(keysDir, { recursive: true, force: true });
      await stores?.cleanup();
    });

    test('every pairwise sub is the same after rotate-master; the secret is stored only sealed', async () => {
      const before = await seen();
      assert.notEqual(before.orders, before.billing, 'two APIs see different subjects');
      for (const sub of Object.values(before)) assert.notEqual(sub, accountId);

      // Stored sealed under the old master key, where KEYS_STORE says, never in plain.
      const sealedBefore = await storedSealed();
      assert.match(sealedBefore, new RegExp(`^v2\\.${oldId}\\.`));
      const secret = openSecret(sealedBefore, oldKey);
      assert.equal(secret.length, 32);
      for (const form of [secret.toString('base64url'), secret.toString('hex'), secret.toString('base64')]) {
        assert.ok(!(await storedText()).includes(form), 'the secret is not stored in plain');
      }
      const dirFiles = await fs.readdir(keysDir);
      assert.equal(dirFiles.includes('pairwise-secret.json'), keysStore === 'file', `the secret lives in one store only: ${dirFiles.join(', ')}`);
      // Random, not derived from the master key (which a rotation is meant to retire).
      const derived = Buffer.from(hkdfSync('sha256', Buffer.from(oldKey, 'base64url'), Buffer.alloc(0), 'veil pairwise-subjects', 32));
      assert.ok(!secret.equals(derived));
      // The subjects are the documented HMAC under this secret.
      const hmac = (kind: string, party: string) =>
        createHmac('sha256', secret)
          .update(JSON.stringify([kind, party, accountId]))
          .digest('base64url');
      assert.deepEqual(before, { orders: hmac('api', ORDERS), billing: hmac('api', BILLING), sector: hmac('sector', 'sector.rotation.test') });
      await veil!.stop();

      // Rolling restart with "new,old", then the rotation.
      await start(`${newKey},${oldKey}`);
      assert.deepEqual(await seen(), before, 'the same subjects during the rolling restart');
      const env = { DATABASE_URL: stores.databaseUrl, KEYS_DIR: keysDir, KEYS_STORE: keysStore, VEIL_MASTER_KEY: `${newKey},${oldKey}`, NODE_ENV: 'test' };
      const rotated = await runCli(['keys', 'rotate-master', '--json'], { env });
      assert.equal(rotated.code, 0, rotated.stderr);
      const sealedAfter = await storedSealed();
      assert.match(sealedAfter, new RegExp(`^v2\\.${newId}\\.`), 're-sealed under the new master key');
      assert.ok(openSecret(sealedAfter, newKey).equals(secret), 'the same secret, re-sealed');
      assert.ok(!(await storedText()).includes(secret.toString('base64url')));
      const again = await runCli(['keys', 'rotate-master', '--json'], { env });
      assert.equal(again.code, 0, again.stderr);
      assert.equal((JSON.parse(again.stdout) as { signing_keys: number }).signing_keys, 0, 'nothing left to re-seal');
      assert.equal(await storedSealed(), sealedAfter, 'a second rotation writes nothing');
      await veil!.stop();

      // The new key alone: every API and the client sector still see the subjects they saw.
      await start(newKey);
      const after = await seen();
      assert.deepEqual(after, before);
      assert.notEqual(after.orders, after.billing);
    });
  });
}
