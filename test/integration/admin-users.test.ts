/**
 * Admin API users, addressed by id (issue 8, "One place for each list"): look an address up with
 * `GET /admin/users?email=`, read one with `GET /admin/users/:id`, and disable or enable it with
 * `POST /admin/users/:id/disable|enable`. The body-addressed routes are gone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

interface User {
  id: string;
  email: string;
  disabled: boolean;
}

describe('admin API: users by id', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let ada: User;

  before(async () => {
    stores = await createTestStores();
    veil = await startTestVeil(stores);
    ada = (await veil.admin<{ user: User }>('POST', '/admin/users', { email: 'ada@example.com', password: 'an analytical engine' })).body.user;
    await veil.admin('POST', '/admin/users', { email: 'grace@example.com', password: 'a compiler of one' });
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  test('GET /admin/users?email= finds the one account with that address (case-insensitive), or none', async () => {
    const found = await veil.admin<{ users: User[] }>('GET', `/admin/users?email=${encodeURIComponent('ADA@example.com')}`);
    assert.equal(found.status, 200);
    assert.deepEqual(
      found.body.users.map((u) => u.id),
      [ada.id],
    );
    const none = await veil.admin<{ users: User[] }>('GET', '/admin/users?email=nobody%40example.com');
    assert.deepEqual(none, { status: 200, body: { users: [] } });
    assert.equal((await veil.admin<{ users: User[] }>('GET', '/admin/users')).body.users.length, 2);
  });

  test('GET /admin/users/:id reads one account; an unknown or malformed id is 404', async () => {
    const one = await veil.admin<{ user: User }>('GET', `/admin/users/${ada.id}`);
    assert.equal(one.status, 200);
    assert.equal(one.body.user.email, 'ada@example.com');
    assert.deepEqual(await veil.admin('GET', '/admin/users/00000000-0000-4000-8000-000000000000'), {
      status: 404,
      body: { error: 'not_found', error_description: 'no such user' },
    });
    assert.equal((await veil.admin('GET', '/admin/users/not-a-uuid')).status, 404);
  });

  test('POST /admin/users/:id/disable and /enable change that account only', async () => {
    const disabled = await veil.admin<{ user: User }>('POST', `/admin/users/${ada.id}/disable`, {});
    assert.equal(disabled.status, 200);
    assert.equal(disabled.body.user.disabled, true);
    const all = (await veil.admin<{ users: User[] }>('GET', '/admin/users')).body.users;
    assert.deepEqual(
      all.map((u) => [u.email, u.disabled]),
      [
        ['ada@example.com', true],
        ['grace@example.com', false],
      ],
    );
    assert.equal((await veil.database.prisma.account.findUnique({ where: { id: ada.id } }))?.disabled, true);

    const enabled = await veil.admin<{ user: User }>('POST', `/admin/users/${ada.id}/enable`, {});
    assert.equal(enabled.body.user.disabled, false);
    assert.equal((await veil.database.prisma.account.findUnique({ where: { id: ada.id } }))?.disabled, false);
  });

  test('an unknown id is 404, a body with fields is refused, and the email-in-body routes are gone', async () => {
    assert.deepEqual(await veil.admin('POST', '/admin/users/00000000-0000-4000-8000-000000000000/disable', {}), {
      status: 404,
      body: { error: 'not_found', error_description: 'no such user' },
    });
    const withBody = await veil.admin<{ error: string }>('POST', `/admin/users/${ada.id}/disable`, { email: 'ada@example.com' });
    assert.equal(withBody.status, 400);
    assert.equal(withBody.body.error, 'invalid_request');
    for (const action of ['disable', 'enable']) {
      const old = await veil.admin<{ error: string }>('POST', `/admin/users/${action}`, { email: 'ada@example.com' });
      assert.ok(old.status === 404 || old.status === 405, `${action}: ${old.status}`);
    }
    assert.equal((await veil.admin<{ user: User }>('GET', `/admin/users/${ada.id}`)).body.user.disabled, false);
  });

  test('the new routes refuse every party but the operator, and a refusal changes nothing', async () => {
    const json = { 'content-type': 'application/json' };
    const token = { authorization: `Bearer ${veil.adminToken}` };
    const routes: Array<[method: string, path: string]> = [
      ['GET', `/admin/users?email=${encodeURIComponent('ada@example.com')}`],
      ['GET', `/admin/users/${ada.id}`],
      ['POST', `/admin/users/${ada.id}/disable`],
      ['POST', `/admin/users/${ada.id}/enable`],
    ];
    // (A foreign Host is refused by the same guard: fetch cannot set Host, admin-guard.test.ts does.)
    const refusals: Array<[who: string, headers: Record<string, string>, status: number]> = [
      ['no credentials', { ...json }, 401],
      ['a wrong token', { ...json, authorization: 'Bearer not-the-admin-token-at-all' }, 401],
      ['a foreign origin', { ...json, ...token, origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }, 403],
    ];
    for (const [method, path] of routes) {
      for (const [who, headers, status] of refusals) {
        const res = await fetch(`${veil.adminUrl}${path}`, { method, headers, body: method === 'POST' ? '{}' : undefined });
        assert.equal(res.status, status, `${method} ${path} by ${who}`);
        const body = (await res.json()) as Record<string, unknown>;
        assert.equal(body.user, undefined, `${method} ${path} by ${who} leaked the account`);
        assert.equal(body.users, undefined, `${method} ${path} by ${who} leaked accounts`);
      }
    }
    // A form post (what a cross-site page can send without a preflight) is refused too.
    const form = await fetch(`${veil.adminUrl}/admin/users/${ada.id}/disable`, {
      method: 'POST',
      headers: { ...token, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'x=1',
    });
    assert.equal(form.status, 415);
    assert.equal((await veil.database.prisma.account.findUnique({ where: { id: ada.id } }))?.disabled, false, 'a refused request changed the account');
  });
});
