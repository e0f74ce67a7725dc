/**
 * Token statuses over the in-process stores (the embedded mode; Redis is covered end to end by
 * status-list-revocation.test.ts): slots filed under their grant, client and account reach their
 * bits when any of them is revoked, and only theirs; an exchanged token inherits its subject's
 * owners and the subject itself; the domain-event subscriber suspends a disabled user's tokens,
 * sweeps again for a token issued in the race, lifts the suspension when the user is enabled,
 * and does not suspend again once the user is back; the configuration checks its bounds.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { TokenStatus, readStatus } from '../../src/status-list/format.js';
import { MemoryStatusListStore } from '../../src/status-list/memory-status-list-store.js';
import { MemoryStatusOwnerIndex } from '../../src/status-list/owner-index.js';
import { decodeSlot, type StatusSlot } from '../../src/status-list/store.js';
import { statusListSubscriber } from '../../src/status-list/subscriber.js';
import { inheritedOwners, ownOwners, statusClaim, STATUS_RECORD, statusOwner, TokenStatuses } from '../../src/status-list/token-statuses.js';

const exp = () => Math.floor(Date.now() / 1000) + 600;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function setup() {
  const store = new MemoryStatusListStore({ size: 4096 });
  const statuses = new TokenStatuses(store, new MemoryStatusOwnerIndex(60));
  const statusOf = async (slot: StatusSlot) => {
    const list = (await store.read(slot.list))!;
    return readStatus(list.bytes, slot.idx, list.bits);
  };
  const issue = async (payload: { clientId: string; accountId?: string; grantId?: string }, inherited: string[] = []) => {
    const record = await statuses.assign(exp(), [...ownOwners(payload), ...inherited]);
    return { record, slot: decodeSlot(record.slot)! };
  };
  return { store, statuses, statusOf, issue };
}

describe('token statuses', () => {
  test('grant, client and account owners reach their tokens only', async () => {
    const { statuses, statusOf, issue } = setup();
    const a = await issue({ clientId: 'c1', accountId: 'u1', grantId: 'g1' });
    const b = await issue({ clientId: 'c1', accountId: 'u2', grantId: 'g2' });
    const c = await issue({ clientId: 'c2', accountId: 'u1', grantId: 'g3' });
    const cc = await issue({ clientId: 'c3' });
    assert.deepEqual(a.record.owners, ['g:g1', 'c:c1', 'a:u1']);

    assert.equal(await statuses.revokeGrant('g1'), 1);
    assert.deepEqual([await statusOf(a.slot), await statusOf(b.slot), await statusOf(c.slot)], [TokenStatus.INVALID, TokenStatus.VALID, TokenStatus.VALID]);
    assert.equal(await statuses.setForOwner(statusOwner.account('u1'), TokenStatus.SUSPENDED), 1); // a is INVALID for good
    assert.deepEqual([await statusOf(a.slot), await statusOf(c.slot)], [TokenStatus.INVALID, TokenStatus.SUSPENDED]);
    assert.equal(await statuses.setForOwner(statusOwner.account('u1'), TokenStatus.VALID), 1);
    assert.deepEqual([await statusOf(a.slot), await statusOf(c.slot)], [TokenStatus.INVALID, TokenStatus.VALID]);
    await statuses.setForOwner(statusOwner.client('c3'), TokenStatus.INVALID);
    assert.equal(await statusOf(cc.slot), TokenStatus.INVALID);
    assert.equal(await statusOf(b.slot), TokenStatus.VALID);
    assert.equal(await statuses.setForOwner(statusOwner.grant('unknown'), TokenStatus.INVALID), 0);
  });

  test('an exchanged token follows its subject, and its subject’s subject', async () => {
    const { statuses, statusOf, issue } = setup();
    const subject = await issue({ clientId: 'web', accountId: 'u1', grantId: 'g1' });
    const subjectPayload = { clientId: 'web', accountId: 'u1', grantId: 'g1', extra: { [STATUS_RECORD]: subject.record } };
    const once = await issue({ clientId: 'gate', accountId: 'u1' }, inheritedOwners({ id: 'jti-1', payload: subjectPayload }));
    const twice = await issue(
      { clientId: 'gate2', accountId: 'u1' },
      inheritedOwners({ id: 'jti-2', payload: { clientId: 'gate', accountId: 'u1', extra: { [STATUS_RECORD]: once.record } } }),
    );
    assert.ok(twice.record.owners.includes('g:g1') && twice.record.owners.includes('t:jti-1') && twice.record.owners.includes('t:jti-2'));
    // The first subject revoked: both exchanged tokens go with it.
    await statuses.revokeToken('jti-1', subjectPayload);
    assert.deepEqual([await statusOf(subject.slot), await statusOf(once.slot), await statusOf(twice.slot)], [TokenStatus.INVALID, TokenStatus.INVALID, TokenStatus.INVALID]);
  });

  test('the status claim: idx and the list uri at the issuer; none without a slot', () => {
    const slot = { list: 'AAAAAAAAAAAAAAAAAAAAAA', idx: 42, exp: exp() };
    const payload = { extra: { [STATUS_RECORD]: { slot: `${slot.list}.${slot.idx}.${slot.exp}`, owners: [] } } };
    assert.deepEqual(statusClaim('https://veil.example', payload), { status_list: { idx: 42, uri: 'https://veil.example/status-lists/AAAAAAAAAAAAAAAAAAAAAA' } });
    assert.equal(statusClaim('https://veil.example', { extra: { [STATUS_RECORD]: { owners: ['c:x'] } } }), undefined);
    assert.equal(statusClaim('https://veil.example', {}), undefined);
  });

  test('subscriber: a deleted client’s tokens INVALID; a disabled user’s SUSPENDED, swept again for the race, lifted when enabled', async () => {
    const { statuses, statusOf, issue } = setup();
    let disabled = true;
    const errors: unknown[] = [];
    const subscriber = statusListSubscriber({ statuses, accountDisabled: async () => disabled, logger: { error: (o: unknown) => errors.push(o) }, resweepMs: 150 });

    const ofClient = await issue({ clientId: 'gone', accountId: 'u9' });
    await subscriber({ type: 'client.deleted', clientId: 'gone' });
    assert.equal(await statusOf(ofClient.slot), TokenStatus.INVALID);

    const before = await issue({ clientId: 'c', accountId: 'u1' });
    await subscriber({ type: 'user.disabled', accountId: 'u1' });
    assert.equal(await statusOf(before.slot), TokenStatus.SUSPENDED);
    const racing = await issue({ clientId: 'c', accountId: 'u1' }); // past its checks before the user was disabled
    assert.equal(await statusOf(racing.slot), TokenStatus.VALID);
    await sleep(300);
    assert.equal(await statusOf(racing.slot), TokenStatus.SUSPENDED);

    disabled = false;
    await subscriber({ type: 'user.enabled', accountId: 'u1' });
    assert.deepEqual([await statusOf(before.slot), await statusOf(racing.slot)], [TokenStatus.VALID, TokenStatus.VALID]);

    // Disabled and enabled again before the second sweep: it finds the user enabled and leaves the tokens alone.
    disabled = true;
    await subscriber({ type: 'user.disabled', accountId: 'u1' });
    disabled = false;
    await subscriber({ type: 'user.enabled', accountId: 'u1' });
    await sleep(300);
    assert.equal(await statusOf(before.slot), TokenStatus.VALID);
    assert.deepEqual(errors, []);
  });

  test('configuration: defaults, STATUS_LIST_ENABLED=false, and the bounds', () => {
    const base = { NODE_ENV: 'test', VEIL_SEED: 'off' };
    assert.deepEqual(loadConfig(base).statusLists, { ttlSeconds: 60, expSeconds: 600, size: 1048576 });
    assert.equal(loadConfig({ ...base, STATUS_LIST_ENABLED: 'false' }).statusLists, undefined);
    assert.throws(() => loadConfig({ ...base, STATUS_LIST_TTL_SECONDS: '400' }), /STATUS_LIST_EXP_SECONDS: must be at least twice STATUS_LIST_TTL_SECONDS/);
    assert.throws(() => loadConfig({ ...base, STATUS_LIST_SIZE: '1025' }), /STATUS_LIST_SIZE: must be a multiple of 8/);
    assert.throws(() => loadConfig({ ...base, STATUS_LIST_SIZE: '512' }), /STATUS_LIST_SIZE/);
    assert.throws(() => loadConfig({ ...base, STATUS_LIST_SIZE: String(2 ** 24 + 8) }), /STATUS_LIST_SIZE/);
  });
});
