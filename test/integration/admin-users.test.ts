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
});
