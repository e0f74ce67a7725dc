/**
 * Confidential-claim policies (issue 10): an administrator lets a node (a confidential client)
 * ask for a decision (gte/lte/gt/lt) or an aggregate (sum) over one encrypted claim, through the
 * admin API and `veil policies create|list|delete`. Every refusal (public or unknown node, a
 * claim that is not a confidential one, an op that does not fit the kind, a bad or taken id, no
 * admin token) creates nothing; a policy goes with its client; each change is audited.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

type Policy = { id: string; node: string; claim: string; kind: string; op: string; purpose: string; created_at: string };
type Created = { client: { client_id: string }; client_secret?: string };

describe('confidential-claim policies (admin API and CLI, PostgreSQL)', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let node: string;
  let publicClient: string;

  async function cli(...args: string[]) {
    let stdout = '';
    let stderr = '';
    const io = { stdout: (t: string) => void (stdout += t), stderr: (t: string) => void (stderr += t), readStdin: async () => '' };
    const code = await main(['node', 'veil', '--admin-url', veil.adminUrl, '--admin-token', veil.adminToken, '--json', ...args], io);
    return { code, stdout, stderr };
  }

  const list = async () => (await veil.admin<{ policies: Policy[] }>('GET', '/admin/policies')).body.policies;

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    const confidential = await veil.admin<Created>('POST', '/admin/clients', { client_name: 'age gate', grant_types: ['client_credentials'] });
    assert.equal(confidential.status, 201);
    node = confidential.body.client.client_id;
    const pub = await veil.admin<Created>('POST', '/admin/clients', { client_name: 'spa', public: true, redirect_uris: ['https://spa.example/cb'] });
    assert.equal(pub.status, 201, JSON.stringify(pub.body));
    publicClient = pub.body.client.client_id;
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  test('the CLI creates, lists and deletes a decision policy; the admin API shows the same record', async () => {
    const created = await cli('policies', 'create', '--node', node, '--claim', 'age', '--op', 'gte', '--purpose', 'age gate', '--id', 'age-gate');
    assert.equal(created.code, 0, created.stderr);
    const { policy } = JSON.parse(created.stdout) as { policy: Policy };
    assert.deepEqual({ ...policy, created_at: undefined }, { id: 'age-gate', node, claim: 'age', kind: 'decision', op: 'gte', purpose: 'age gate', created_at: undefined });
    assert.ok(!Number.isNaN(Date.parse(policy.created_at)));

    const listed = await cli('policies', 'list', '--node', node);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual((JSON.parse(listed.stdout) as { policies: Policy[] }).policies, [policy]);
    assert.deepEqual(await list(), [policy]);

    const deleted = await cli('policies', 'delete', 'age-gate');
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.deepEqual(await list(), []);
    const again = await cli('policies', 'delete', 'age-gate');
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /not_found/);
  });

  test('an aggregate policy through the admin API; a random id when none is chosen', async () => {
    const res = await veil.admin<{ policy: Policy }>('POST', '/admin/policies', { node, claim: 'spend_headroom', kind: 'aggregate', op: 'sum', purpose: 'monthly report' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.match(res.body.policy.id, /^pol_[A-Za-z0-9_-]{16}$/);
    assert.equal(res.body.policy.kind, 'aggregate');
    assert.equal((await veil.admin('DELETE', `/admin/policies/${res.body.policy.id}`)).status, 204);
  });

  test('every refusal names the problem and creates nothing', async () => {
    const base = { node, claim: 'age', op: 'gte', purpose: 'age gate' };
    const cases: Array<[string, Record<string, unknown>, number, RegExp]> = [
      ['a public client as node', { ...base, node: publicClient }, 400, /confidential client/],
      ['an unknown node', { ...base, node: 'no-such-client' }, 400, /no such client/],
      ['a claim that is not a confidential claim', { ...base, claim: 'email' }, 400, /not a confidential claim/],
      ['sum for a decision', { ...base, op: 'sum' }, 400, /decision policy takes gte, lte, gt, lt/],
      ['gte for an aggregate', { ...base, kind: 'aggregate' }, 400, /aggregate policy takes sum/],
      ['an unknown op', { ...base, op: 'eq' }, 400, /op/],
      ['a bad id', { ...base, id: 'Age Gate' }, 400, /id:/],
      ['no purpose', { node, claim: 'age', op: 'gte' }, 400, /purpose/],
    ];
    for (const [what, body, status, message] of cases) {
      const res = await veil.admin<{ error: string; error_description: string }>('POST', '/admin/policies', body);
      assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
      assert.match(res.body.error_description, message, what);
    }
    assert.deepEqual(await list(), []);

    // Taken id: 409, the first one stays as it was.
    const first = await veil.admin<{ policy: Policy }>('POST', '/admin/policies', { ...base, id: 'taken' });
    assert.equal(first.status, 201);
    const second = await veil.admin<{ error: string }>('POST', '/admin/policies', { ...base, id: 'taken', claim: 'spend_headroom' });
    assert.equal(second.status, 409);
    assert.deepEqual(await list(), [first.body.policy]);

    // Without the admin token: refused, nothing changes.
    const anonymous = await fetch(`${veil.adminUrl}/admin/policies`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...base, id: 'anon' }),
    });
    assert.equal(anonymous.status, 401);
    const anonymousDelete = await fetch(`${veil.adminUrl}/admin/policies/taken`, { method: 'DELETE' });
    assert.equal(anonymousDelete.status, 401);
    assert.deepEqual(await list(), [first.body.policy]);
    assert.equal((await veil.admin('DELETE', '/admin/policies/taken')).status, 204);
  });

  test('a policy goes with its client, and creation and deletion are audited (identifiers only)', async () => {
    const other = await veil.admin<Created>('POST', '/admin/clients', { client_name: 'short-lived node', grant_types: ['client_credentials'] });
    const otherId = other.body.client.client_id;
    assert.equal((await veil.admin('POST', '/admin/policies', { node: otherId, claim: 'age', op: 'lt', purpose: 'youth fare', id: 'youth' })).status, 201);
    assert.equal((await veil.admin('POST', '/admin/policies', { node, claim: 'age', op: 'gte', purpose: 'kept', id: 'kept' })).status, 201);
    assert.equal((await veil.admin('DELETE', `/admin/clients/${otherId}`)).status, 204);
    assert.deepEqual(
      (await list()).map((p) => p.id),
      ['kept'],
    );

    const audit = await veil.admin<{ events: Array<{ type: string; client_id: string | null; details: Record<string, unknown> }> }>('GET', '/admin/audit?since=1h&type=policy');
    const types = audit.body.events.map((e) => `${e.type}:${String(e.details.policy)}`);
    assert.ok(types.includes('policy.created:age-gate'), JSON.stringify(types));
    assert.ok(types.includes('policy.deleted:age-gate'), JSON.stringify(types));
    const created = audit.body.events.find((e) => e.type === 'policy.created' && e.details.policy === 'kept')!;
    assert.equal(created.client_id, node);
    assert.deepEqual(created.details, { policy: 'kept', claim: 'age', kind: 'decision', op: 'gte' });
  });
});
