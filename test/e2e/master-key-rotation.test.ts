/**
 * `veil keys rotate-master`: with VEIL_MASTER_KEY="new,old" everywhere, everything sealed at
 * rest (the signing key ring, client secrets, account names) is re-sealed under the new key,
 * while the service keeps working; afterwards the new key alone is enough.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generateMasterKey, parseMasterKeys } from '../../src/crypto/master-key.js';
import { httpAuthorizationCodeFlow, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { runCli } from '../helpers/process.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

describe('master key rotation', () => {
  let stores: TestStores;
  let veil: TestVeil | undefined;
  let keysDir: string;
  const oldKey = generateMasterKey();
  const newKey = generateMasterKey();
  const newId = parseMasterKeys(newKey, 'test')[0]!.id;
  const user = { email: 'master@example.com', password: 'rotating the master key', name: 'Grace Master' };
  let web: HttpFlowClient;

  const start = async (masterKey: string) => {
    veil = await startTestVeil(stores, { VEIL_MASTER_KEY: masterKey, ...(keysDir ? { KEYS_DIR: keysDir } : {}) });
    keysDir ??= veil.config.keysDir;
    return veil;
  };

  before(async () => {
    stores = await createTestStores();
    const v = await start(oldKey);
    // The keys directory must outlive each Veil below (stop() removes its temporary dir).
    keysDir = await fs.mkdtemp(path.join(path.dirname(v.tmpDir), 'veil-master-keys-'));
    await v.stop();
    await start(oldKey);
    const c = await veil!.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'master-web',
      redirect_uris: ['http://127.0.0.1:9/cb'],
      grant_types: ['authorization_code', 'refresh_token'],
    });
    web = { issuer: veil!.issuer, clientId: c.body.client.client_id, clientSecret: c.body.client_secret, redirectUri: 'http://127.0.0.1:9/cb' };
    await veil!.admin('POST', '/admin/users', user);
  });

  after(async () => {
    await veil?.stop();
    await fs.rm(keysDir, { recursive: true, force: true });
    await stores?.cleanup();
  });

  test('re-seals keys, client secrets and names; the new key alone then suffices', async () => {
    await httpAuthorizationCodeFlow({ ...web, issuer: veil!.issuer }, user, 'openid');
    await veil!.stop();

    // Rolling restart with "new,old": old data still opens.
    await start(`${newKey},${oldKey}`);
    await httpAuthorizationCodeFlow({ ...web, issuer: veil!.issuer }, user, 'openid');

    const env = { DATABASE_URL: stores.databaseUrl, KEYS_DIR: keysDir, VEIL_MASTER_KEY: `${newKey},${oldKey}`, NODE_ENV: 'test' };
    const refused = await runCli(['keys', 'rotate-master', '--json'], { env: { ...env, VEIL_MASTER_KEY: newKey } });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /new,old/);
    const rotated = await runCli(['keys', 'rotate-master', '--json'], { env });
    assert.equal(rotated.code, 0, rotated.stderr);
    const counts = JSON.parse(rotated.stdout) as { signing_keys: number; client_secrets: number; account_names: number };
    assert.ok(counts.signing_keys >= 4, JSON.stringify(counts));
    assert.ok(counts.client_secrets >= 1 && counts.account_names >= 1, JSON.stringify(counts));
    const ring = JSON.parse(await fs.readFile(path.join(keysDir, 'signing-keys.json'), 'utf8')) as { keys: { private: string }[] };
    assert.ok(
      ring.keys.every((k) => k.private.startsWith(`v2.${newId}.`)),
      'every private key is sealed under the new master key',
    );
    const again = await runCli(['keys', 'rotate-master', '--json'], { env });
    assert.deepEqual(JSON.parse(again.stdout), { signing_keys: 0, client_secrets: 0, account_names: 0 }, 'idempotent');
    await veil!.stop();

    // The new key alone: keys load, the client authenticates, the user signs in, the name reads.
    await start(newKey);
    const tokens = await httpAuthorizationCodeFlow({ ...web, issuer: veil!.issuer }, user, 'openid');
    assert.ok(tokens.id_token);
    const users = await veil!.admin<{ users: { email: string; name: string }[] }>('GET', '/admin/users');
    assert.equal(users.body.users[0]!.name, user.name);
    assert.equal((await tokenRequest({ ...web, issuer: veil!.issuer, clientSecret: 'wrong' }, { grant_type: 'refresh_token', refresh_token: 'x' })).status, 401);
  });
});
