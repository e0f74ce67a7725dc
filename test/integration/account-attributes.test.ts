/**
 * Account attributes (issue 10): typed integers with a declared range, set and read by the
 * operator (CLI and admin API), sealed at rest, refused without changing anything when the input
 * is not an integer, out of range, unknown or derived, and reachable only with the admin token.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { main } from '../../src/cli/main.js';
import { rememberSecret } from '../helpers/secrets.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

interface User {
  id: string;
  email: string;
}
interface Attributes {
  attributes: Record<string, number>;
  derived: Record<string, number>;
}

// Distinctive values (long enough to be remembered as secrets: Veil's logs must never show them).
const LIMIT = 73_199_264_11;
const SPENT = 1_234_567_89;

describe('account attributes', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let ada: User;
  let grace: User;

  async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const io = { stdout: (t: string) => void (stdout += t), stderr: (t: string) => void (stderr += t), readStdin: async () => '' };
    const code = await main(['node', 'veil', '--admin-url', veil.adminUrl, '--admin-token', veil.adminToken, ...args], io);
    return { code, stdout, stderr };
  }

  const attributesOf = async (id: string) => (await veil.admin<Attributes>('GET', `/admin/users/${id}/attributes`)).body;

  interface Row {
    account_id: string;
    name: string;
    value: string;
    updated_at: Date;
  }
  async function rawRows(): Promise<Row[]> {
    const client = new pg.Client(stores.databaseUrl);
    await client.connect();
    try {
      return (await client.query<Row>('SELECT * FROM account_attributes ORDER BY account_id, name')).rows;
    } finally {
      await client.end();
    }
  }

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    for (const v of [LIMIT, SPENT, LIMIT - SPENT]) rememberSecret(String(v), 'attribute value');
    ada = (await veil.admin<{ user: User }>('POST', '/admin/users', { email: 'ada@example.com', password: 'an analytical engine' })).body.user;
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  test('the CLI creates a user with attributes and sets, shows and deletes them; spend_headroom is derived', async () => {
    const created = await cli('users', 'create', '--email', 'grace@example.com', '--password', 'a compiler of one', '--attribute', 'age=34', '--attribute', `spend_limit=${LIMIT}`);
    assert.equal(created.code, 0, created.stderr);
    grace = (await veil.admin<{ users: User[] }>('GET', '/admin/users?email=grace%40example.com')).body.users[0]!;
    assert.deepEqual(await attributesOf(grace.id), { attributes: { age: 34, spend_limit: LIMIT }, derived: { spend_headroom: LIMIT } });

    const set = await cli('users', 'set-attribute', '--email', 'grace@example.com', '--name', 'spend_this_month', '--value', String(SPENT));
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /set spend_this_month for grace@example\.com/);
    assert.ok(!set.stdout.includes(String(SPENT)), 'the confirmation does not echo the value');
    assert.deepEqual(await attributesOf(grace.id), {
      attributes: { age: 34, spend_limit: LIMIT, spend_this_month: SPENT },
      derived: { spend_headroom: LIMIT - SPENT },
    });

    const shown = await cli('--json', 'users', 'attributes', '--email', 'grace@example.com');
    assert.equal(shown.code, 0, shown.stderr);
    assert.deepEqual(JSON.parse(shown.stdout), await attributesOf(grace.id));
    const human = await cli('users', 'attributes', '--email', 'grace@example.com');
    assert.match(human.stdout, /age = 34/);
    assert.match(human.stdout, new RegExp(`spend_headroom = ${LIMIT - SPENT} \\(derived\\)`));

    assert.equal((await cli('users', 'delete-attribute', '--email', 'grace@example.com', '--name', 'age')).code, 0);
    assert.deepEqual((await attributesOf(grace.id)).attributes, { spend_limit: LIMIT, spend_this_month: SPENT });
    const again = await cli('users', 'delete-attribute', '--email', 'grace@example.com', '--name', 'age');
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /no such attribute/);
    // Unknown user: said so, nothing touched.
    const nobody = await cli('users', 'set-attribute', '--email', 'nobody@example.com', '--name', 'age', '--value', '3');
    assert.notEqual(nobody.code, 0);
    assert.match(nobody.stderr, /no user with this email/);
  });

  test('the admin API sets, reads and deletes; the derived headroom follows spend_this_month and may go negative', async () => {
    const put = await veil.admin<Attributes>('PUT', `/admin/users/${ada.id}/attributes/spend_limit`, { value: 5000 });
    assert.equal(put.status, 200);
    assert.deepEqual(put.body, { attributes: { spend_limit: 5000 }, derived: { spend_headroom: 5000 } });
    // A decimal string is taken too (what the CLI sends).
    assert.equal((await veil.admin('PUT', `/admin/users/${ada.id}/attributes/spend_this_month`, { value: '7000' })).status, 200);
    assert.deepEqual(await attributesOf(ada.id), { attributes: { spend_limit: 5000, spend_this_month: 7000 }, derived: { spend_headroom: -2000 } });
    // The bounds themselves are allowed.
    for (const value of [0, 150]) assert.equal((await veil.admin('PUT', `/admin/users/${ada.id}/attributes/age`, { value })).status, 200);
    assert.equal((await veil.admin('PUT', `/admin/users/${ada.id}/attributes/spend_limit`, { value: Number.MAX_SAFE_INTEGER })).status, 200);
    assert.equal((await veil.admin('PUT', `/admin/users/${ada.id}/attributes/spend_limit`, { value: 5000 })).status, 200);
    assert.equal((await veil.admin('DELETE', `/admin/users/${ada.id}/attributes/age`)).status, 204);
    assert.deepEqual(await veil.admin('DELETE', `/admin/users/${ada.id}/attributes/age`), {
      status: 404,
      body: { error: 'not_found', error_description: 'the user has no such attribute' },
    });
    // Without spend_limit there is no headroom; spend_this_month alone derives nothing.
    assert.equal((await veil.admin('DELETE', `/admin/users/${ada.id}/attributes/spend_limit`)).status, 204);
    assert.deepEqual(await attributesOf(ada.id), { attributes: { spend_this_month: 7000 }, derived: {} });
    for (const [method, body] of [
      ['GET', undefined],
      ['PUT', { value: 3 }],
      ['DELETE', undefined],
    ] as const) {
      const unknown = await veil.admin(method, `/admin/users/00000000-0000-4000-8000-000000000000/attributes${method === 'GET' ? '' : '/age'}`, body);
      assert.deepEqual(unknown, { status: 404, body: { error: 'not_found', error_description: 'no such user' } }, method);
    }
  });

  test('values are sealed at rest: no row, column or table holds one in the clear', async () => {
    const rows = await rawRows();
    assert.ok(rows.length >= 3);
    for (const row of rows) {
      assert.match(row.value, /^v2\.[\w-]{8}\./, `${row.name} is sealed`);
      assert.ok(!/^-?\d+$/.test(row.value));
    }
    const client = new pg.Client(stores.databaseUrl);
    await client.connect();
    try {
      const tables = await client.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public'");
      let dump = '';
      for (const { tablename } of tables.rows) dump += JSON.stringify((await client.query(`SELECT * FROM "${tablename}"`)).rows);
      for (const value of [LIMIT, SPENT, LIMIT - SPENT]) assert.ok(!dump.includes(String(value)), `${value} found in the clear`);
    } finally {
      await client.end();
    }
    // A sealed value moved to another account (or attribute) does not open there.
    const graceLimit = rows.find((r) => r.account_id === grace.id && r.name === 'spend_limit')!;
    await veil.database.prisma.accountAttribute.upsert({
      where: { accountId_name: { accountId: ada.id, name: 'spend_limit' } },
      create: { accountId: ada.id, name: 'spend_limit', value: graceLimit.value },
      update: { value: graceLimit.value },
    });
    assert.equal((await veil.admin('GET', `/admin/users/${ada.id}/attributes`)).status, 500);
    await veil.database.prisma.accountAttribute.delete({ where: { accountId_name: { accountId: ada.id, name: 'spend_limit' } } });
    assert.equal((await veil.admin('GET', `/admin/users/${ada.id}/attributes`)).status, 200);
  });

  test('bad input is refused with a clear error and changes nothing', async () => {
    const before = { attributes: await attributesOf(grace.id), rows: await rawRows() };
    const refusals: Array<[name: string, value: unknown, message: RegExp]> = [
      ['age', 34.5, /age must be an integer/],
      ['age', '34.5', /age must be an integer/],
      ['age', 'thirty', /age must be an integer/],
      ['age', '', /age must be an integer/],
      ['age', '1e3', /age must be an integer/],
      ['spend_limit', Number.MAX_SAFE_INTEGER + 1, /spend_limit must be between 0 and 9007199254740991/],
      ['age', 1e21, /age must be between 0 and 150/],
      ['age', 151, /age must be between 0 and 150/],
      ['age', -1, /age must be between 0 and 150/],
      ['spend_this_month', '-5', /spend_this_month must be between 0 and 9007199254740991/],
      ['spend_limit', '9007199254740992', /spend_limit must be between 0 and 9007199254740991/],
      ['height', 180, /unknown attribute "height"; known: age, spend_limit, spend_this_month/],
      ['spend_headroom', 10, /spend_headroom is derived at issuance and cannot be set/],
    ];
    for (const [name, value, message] of refusals) {
      const res = await veil.admin<{ error: string; error_description: string }>('PUT', `/admin/users/${grace.id}/attributes/${name}`, { value });
      assert.equal(res.status, 400, `${name}=${String(value)}`);
      assert.equal(res.body.error, 'invalid_request');
      assert.match(res.body.error_description, message, `${name}=${String(value)}`);
    }
    for (const body of [{ value: true }, { value: null }, {}, { value: 3, extra: 1 }, { value: [3] }]) {
      const res = await veil.admin<{ error: string }>('PUT', `/admin/users/${grace.id}/attributes/age`, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.error, 'invalid_request');
    }
    // The CLI says the same, and exits non-zero.
    for (const [args, message] of [
      [['--name', 'age', '--value', '200'], /age must be between 0 and 150/],
      [['--name', 'age', '--value', 'x'], /age must be an integer/],
      [['--name', 'weight', '--value', '3'], /unknown attribute "weight"/],
    ] as const) {
      const res = await cli('users', 'set-attribute', '--email', 'grace@example.com', ...args);
      assert.notEqual(res.code, 0);
      assert.match(res.stderr, message);
    }
    // users create with one bad attribute creates nothing at all.
    const bad = await cli('users', 'create', '--email', 'hopper@example.com', '--password', 'a compiler of one', '--attribute', 'age=34', '--attribute', 'age2=3');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /unknown attribute "age2"/);
    const badApi = await veil.admin<{ error: string }>('POST', '/admin/users', { email: 'hopper@example.com', password: 'a compiler of one', attributes: { age: 400 } });
    assert.equal(badApi.status, 400);
    const malformed = await cli('users', 'create', '--email', 'hopper@example.com', '--password', 'a compiler of one', '--attribute', 'age');
    assert.notEqual(malformed.code, 0);
    assert.match(malformed.stderr, /must be name=value/);
    assert.deepEqual((await veil.admin<{ users: User[] }>('GET', '/admin/users?email=hopper%40example.com')).body.users, []);

    assert.deepEqual(await attributesOf(grace.id), before.attributes);
    assert.deepEqual(await rawRows(), before.rows, 'not a row rewritten');
  });

  test('only the operator reaches attributes: no token, a wrong token or a browser are refused, and nothing changes', async () => {
    const before = await rawRows();
    const json = { 'content-type': 'application/json' };
    const token = { authorization: `Bearer ${veil.adminToken}` };
    const routes: Array<[method: string, path: string, body?: string]> = [
      ['GET', `/admin/users/${grace.id}/attributes`],
      ['PUT', `/admin/users/${grace.id}/attributes/age`, '{"value":99}'],
      ['DELETE', `/admin/users/${grace.id}/attributes/spend_limit`],
      ['POST', '/admin/users', JSON.stringify({ email: 'eve@example.com', password: 'eve wants in', attributes: { age: 20 } })],
    ];
    const refusals: Array<[who: string, headers: Record<string, string>, status: number]> = [
      ['no credentials', { ...json }, 401],
      ['a wrong token', { ...json, authorization: 'Bearer not-the-admin-token-at-all' }, 401],
      ['a foreign origin', { ...json, ...token, origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }, 403],
    ];
    for (const [method, path, body] of routes) {
      for (const [who, headers, status] of refusals) {
        const res = await fetch(`${veil.adminUrl}${path}`, { method, headers, body });
        assert.equal(res.status, status, `${method} ${path} by ${who}`);
        const text = await res.text();
        assert.ok(!text.includes('attributes') && !text.includes(String(LIMIT)), `${method} ${path} by ${who} leaked attributes`);
      }
    }
    assert.deepEqual(await rawRows(), before);
    assert.deepEqual((await veil.admin<{ users: User[] }>('GET', '/admin/users?email=eve%40example.com')).body.users, []);
  });

  test('the audit trail names each change and the attribute, never the value', async () => {
    const { body } = await veil.admin<{ events: Array<{ type: string; account_id: string; details: Record<string, unknown> }> }>('GET', '/admin/audit?since=1h&type=user');
    const changes = body.events.filter((e) => e.type.startsWith('user.attribute_') && e.account_id === grace.id).map((e) => [e.type, e.details]);
    assert.deepEqual(changes.reverse(), [
      ['user.attribute_set', { name: 'spend_this_month' }],
      ['user.attribute_deleted', { name: 'age' }],
    ]);
    const text = JSON.stringify(body);
    for (const value of [LIMIT, SPENT]) assert.ok(!text.includes(String(value)));
  });

  test('an account deleted takes its attributes with it', async () => {
    // (No admin route deletes accounts; the rows go with the account by the foreign key.)
    assert.ok((await rawRows()).some((r) => r.account_id === grace.id));
    await veil.database.prisma.account.delete({ where: { id: grace.id } });
    assert.ok(!(await rawRows()).some((r) => r.account_id === grace.id));
  });
});
