/**
 * Confidential claims at issuance (issue 10): a resource server registered with `he_claims`
 * gets, in each of its tokens, `hec: { kid, <claim>: <Paillier ciphertext> }` inside the signed
 * inner JWT, and the token response carries a companion `hec+jwt` with the same ciphertexts,
 * bound to the access token's jti and without a subject. Plain values appear nowhere; other
 * audiences are untouched.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { registerResourceServer, type TestResourceServer } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

interface Resource {
  identifier: string;
  he_claims: string[];
}

describe('confidential claims at issuance', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let plain: TestResourceServer;

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
    veil = await startTestVeil(stores);
    plain = await registerResourceServer(veil, { identifier: 'https://plain.example/api' });
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
      for (const headers of [{ 'content-type': 'application/json' }, { 'content-type': 'application/json', authorization: 'Bearer wrong-token-wrong-token' }]) {
        const res = await fetch(`${veil.adminUrl}${path}`, { method: 'PATCH', headers, body: JSON.stringify({ he_claims: ['spend_limit'] }) });
        assert.equal(res.status, 401);
      }
      assert.deepEqual(await heClaimsOf('https://reg.example/api'), ['age']);
    });
  });
});
