/**
 * PasswordHasher (argon2id) on its own, and AccountService on a real AccountRepository
 * backed by a fresh, migrated PostgreSQL database.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { Envelope } from '../../src/crypto/master-key.js';
import { AccountService, InvalidAccountInput, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from '../../src/accounts/account-service.js';
import { PasswordHasher, type Argon2Params } from '../../src/accounts/passwords.js';
import { AccountRepository, DuplicateAccountError } from '../../src/store/accounts.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { migrate, readMigrations } from '../../src/store/migrator.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';

/**
 * Parses the `$argon2id$v=19$m=...,t=...,p=...$salt$hash` PHC string. The parameters are read by
 * name: node-argon2 writes them as `m=,p=,t=`, other producers as `m=,t=,p=`.
 */
function argon2Params(hash: string): { type: string; version: number } & Argon2Params {
  const match = /^\$(argon2(?:id|i|d))\$v=(\d+)\$([a-z]=\d+(?:,[a-z]=\d+)*)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/.exec(hash);
  assert.ok(match, `not an argon2 PHC string: ${hash}`);
  const params = Object.fromEntries(match[3]!.split(',').map((kv) => kv.split('=') as [string, string]));
  assert.deepEqual(Object.keys(params).sort(), ['m', 'p', 't'], `unexpected argon2 parameters in ${hash}`);
  return {
    type: match[1]!,
    version: Number(match[2]),
    memoryCost: Number(params.m),
    timeCost: Number(params.t),
    parallelism: Number(params.p),
  };
}

const PARAMS: Argon2Params = { memoryCost: 19456, timeCost: 2, parallelism: 1 };

describe('PasswordHasher', () => {
  const custom: Argon2Params = { memoryCost: 12288, timeCost: 3, parallelism: 2 };
  const hasher = new PasswordHasher(custom);

  test('hashes with argon2id and exactly the configured memory, time and parallelism', async () => {
    const hash = await hasher.hash('correct horse battery staple');
    assert.deepEqual(argon2Params(hash), { type: 'argon2id', version: 19, ...custom });
  });

  test('salts every hash', async () => {
    assert.notEqual(await hasher.hash('same password'), await hasher.hash('same password'));
  });

  test('verify is true for the right password and false for a wrong one', async () => {
    const hash = await hasher.hash('correct horse battery staple');
    assert.equal(await hasher.verify(hash, 'correct horse battery staple'), true);
    assert.equal(await hasher.verify(hash, 'Correct horse battery staple'), false);
    assert.equal(await hasher.verify(hash, ''), false);
  });

  test('verify is false, never a throw, for a malformed stored hash', async () => {
    for (const stored of ['', 'plaintext', '$argon2id$v=19$m=abc', '$bcrypt$10$whatever', '$argon2id$v=19$m=19456,t=2,p=1$!!!$!!!']) {
      assert.equal(await hasher.verify(stored, 'anything'), false, JSON.stringify(stored));
    }
  });

  test('needsRehash is false for a hash made with the configured parameters', async () => {
    assert.equal(hasher.needsRehash(await hasher.hash('pw-123456')), false);
  });

  test('needsRehash is true when memory, time or parallelism differ', async () => {
    for (const other of [
      { ...custom, memoryCost: 19456 },
      { ...custom, timeCost: 2 },
      { ...custom, parallelism: 1 },
    ]) {
      const hash = await new PasswordHasher(other).hash('pw-123456');
      assert.equal(hasher.needsRehash(hash), true, JSON.stringify(other));
    }
  });

  test('verifyAgainstDummy always resolves false', async () => {
    assert.equal(await hasher.verifyAgainstDummy('veil-timing-equaliser'), false);
    assert.equal(await hasher.verifyAgainstDummy('anything'), false);
  });
});

describe('AccountService on PostgreSQL', () => {
  let stores: TestStores;
  let db: Database;
  let repository: AccountRepository;
  let service: AccountService;

  before(async () => {
    stores = await createTestStores();
    db = await openDatabase({ kind: 'postgres', url: stores.databaseUrl });
    const runner = await db.openSqlRunner();
    try {
      await migrate(runner, await readMigrations());
    } finally {
      await runner.close();
    }
    repository = new AccountRepository(db.prisma, new Envelope([{ id: 'testkey1', secret: randomBytes(32) }]));
    service = new AccountService(repository, new PasswordHasher(PARAMS));
  });

  after(async () => {
    await db?.close();
    await stores?.cleanup();
  });

  const storedHash = async (email: string) => (await repository.findByEmail(email))!.passwordHash;
  const findAccount = (sub: string) => service.findAccount({} as never, sub);

  describe('create', () => {
    test('stores the email in lower case, trimmed, with an argon2id hash of the password', async () => {
      const account = await service.create({ email: '  Grace.Hopper@Example.COM ', password: 'cobol-forever-1959', name: 'Grace Hopper' });
      assert.equal(account.email, 'grace.hopper@example.com');
      assert.equal(account.name, 'Grace Hopper');
      assert.equal(account.disabled, false);
      assert.equal(account.emailVerified, false);
      assert.notEqual(account.passwordHash, 'cobol-forever-1959');
      assert.deepEqual(argon2Params(account.passwordHash), { type: 'argon2id', version: 19, ...PARAMS });
      assert.equal((await repository.findByEmail('GRACE.HOPPER@example.com'))?.id, account.id);
    });

    test('rejects an invalid email with InvalidAccountInput', async () => {
      for (const email of ['', 'not-an-email', 'a@b', 'two@@example.com', 'spaces in@example.com', `${'x'.repeat(320)}@example.com`]) {
        await assert.rejects(service.create({ email, password: 'long-enough-password' }), InvalidAccountInput, JSON.stringify(email));
      }
    });

    test(`rejects a password shorter than ${MIN_PASSWORD_LENGTH} characters with InvalidAccountInput`, async () => {
      await assert.rejects(service.create({ email: 'short@example.com', password: 'x'.repeat(MIN_PASSWORD_LENGTH - 1) }), InvalidAccountInput);
      await assert.rejects(service.create({ email: 'short@example.com', password: '' }), InvalidAccountInput);
      assert.equal(await repository.findByEmail('short@example.com'), null);
      await service.create({ email: 'short@example.com', password: 'x'.repeat(MIN_PASSWORD_LENGTH) });
    });

    test(`rejects a password longer than ${MAX_PASSWORD_LENGTH} characters with InvalidAccountInput`, async () => {
      await assert.rejects(service.create({ email: 'long@example.com', password: 'x'.repeat(MAX_PASSWORD_LENGTH + 1) }), InvalidAccountInput);
      assert.equal(await repository.findByEmail('long@example.com'), null);
      await service.create({ email: 'long@example.com', password: 'x'.repeat(MAX_PASSWORD_LENGTH) });
    });

    test('a second account with the same email, in any case, is a DuplicateAccountError', async () => {
      await service.create({ email: 'dup@example.com', password: 'first-password' });
      await assert.rejects(service.create({ email: 'dup@example.com', password: 'second-password' }), DuplicateAccountError);
      await assert.rejects(service.create({ email: 'DUP@Example.com', password: 'third-password' }), DuplicateAccountError);
      assert.equal((await service.list()).filter((a) => a.email === 'dup@example.com').length, 1);
    });
  });

  describe('authenticate', () => {
    const ada = { email: 'ada@example.com', password: 'analytical engine 1843', name: 'Ada Lovelace' };
    let adaId: string;

    before(async () => {
      adaId = (await service.create(ada)).id;
    });

    test('returns the account id for the right password, with the email in any case', async () => {
      assert.equal(await service.authenticate(ada.email, ada.password), adaId);
      assert.equal(await service.authenticate('  ADA@Example.Com ', ada.password), adaId);
    });

    test('returns undefined for a wrong password', async () => {
      assert.equal(await service.authenticate(ada.email, 'analytical engine 1842'), undefined);
      assert.equal(await service.authenticate(ada.email, ''), undefined);
      assert.equal(await service.authenticate(ada.email, 'x'.repeat(MAX_PASSWORD_LENGTH + 1)), undefined);
    });

    test('returns undefined for an unknown email', async () => {
      assert.equal(await service.authenticate('nobody@example.com', ada.password), undefined);
      assert.equal(await service.authenticate('', ada.password), undefined);
    });

    test('returns undefined for a disabled account, and the id again once re-enabled', async () => {
      const bob = await service.create({ email: 'bob@example.com', password: 'bobs-password' });
      assert.equal((await service.findByEmail('BOB@example.com'))?.id, bob.id);
      assert.equal((await service.setDisabled(bob.id, true))?.disabled, true);
      assert.equal(await service.authenticate('bob@example.com', 'bobs-password'), undefined);
      await service.setDisabled(bob.id, false);
      assert.equal(await service.authenticate('bob@example.com', 'bobs-password'), bob.id);
    });

    test('a login with unchanged parameters leaves the stored hash alone', async () => {
      const before = await storedHash(ada.email);
      assert.equal(await service.authenticate(ada.email, ada.password), adaId);
      assert.equal(await storedHash(ada.email), before);
    });

    test('after the hasher parameters change, a successful login rehashes the stored hash', async () => {
      const account = await service.create({ email: 'rehash@example.com', password: 'old-params-password' });
      assert.equal(argon2Params(account.passwordHash).timeCost, PARAMS.timeCost);

      const stronger = new AccountService(repository, new PasswordHasher({ ...PARAMS, timeCost: PARAMS.timeCost + 1 }));

      // A failed login must not touch the stored hash.
      assert.equal(await stronger.authenticate('rehash@example.com', 'wrong-password'), undefined);
      assert.equal(await storedHash('rehash@example.com'), account.passwordHash);

      assert.equal(await stronger.authenticate('rehash@example.com', 'old-params-password'), account.id);
      const rehashed = await storedHash('rehash@example.com');
      assert.notEqual(rehashed, account.passwordHash);
      assert.deepEqual(argon2Params(rehashed), { type: 'argon2id', version: 19, ...PARAMS, timeCost: PARAMS.timeCost + 1 });

      // The new hash still authenticates the same password, under both services.
      assert.equal(await stronger.authenticate('rehash@example.com', 'old-params-password'), account.id);
      assert.equal(await storedHash('rehash@example.com'), rehashed, 'no second rehash once parameters match');
      assert.equal(await service.authenticate('rehash@example.com', 'wrong-password'), undefined);
    });
  });

  describe('findAccount', () => {
    test('returns the OIDC claims sub, email, email_verified and name', async () => {
      const account = await service.create({ email: 'Claims@Example.com', password: 'claims-password', name: 'Claire Claims', emailVerified: true });
      const found = await findAccount(account.id);
      assert.ok(found);
      assert.equal(found.accountId, account.id);
      assert.deepEqual(await found.claims('userinfo', 'openid email profile', {}, []), {
        sub: account.id,
        email: 'claims@example.com',
        email_verified: true,
        name: 'Claire Claims',
      });
    });

    test('omits name when the account has none', async () => {
      const account = await service.create({ email: 'nameless@example.com', password: 'nameless-password' });
      const claims = await (await findAccount(account.id))!.claims('id_token', 'openid', {}, []);
      assert.deepEqual(claims, { sub: account.id, email: 'nameless@example.com', email_verified: false });
    });

    test('returns undefined for a disabled account', async () => {
      const account = await service.create({ email: 'disabled@example.com', password: 'disabled-password' });
      assert.ok(await findAccount(account.id));
      await service.setDisabled(account.id, true);
      assert.equal(await findAccount(account.id), undefined);
    });

    test('returns undefined for an unknown or malformed subject', async () => {
      assert.equal(await findAccount('00000000-0000-4000-8000-000000000000'), undefined);
      assert.equal(await findAccount('not-a-uuid'), undefined);
    });
  });
});
