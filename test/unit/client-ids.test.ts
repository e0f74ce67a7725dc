/** Generated client ids are usable on a command line: never a leading '-', still 128 random bits. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { clientIdFrom } from '../../src/clients/client-service.js';

describe('client ids', () => {
  test('an id whose base64url would begin with "-" begins with "_" instead, the rest unchanged', () => {
    const random = Buffer.concat([Buffer.from([0xf8]), randomBytes(15)]); // 111110.. encodes as '-'
    assert.ok(random.toString('base64url').startsWith('-'));
    const id = clientIdFrom(random);
    assert.equal(id[0], '_');
    assert.equal(id.slice(1), random.toString('base64url').slice(1));
    assert.equal(id.length, 22);
  });

  test('any other id is the base64url of the random bytes', () => {
    for (let i = 0; i < 200; i++) {
      const random = randomBytes(16);
      const id = clientIdFrom(random);
      assert.ok(!id.startsWith('-'));
      if (!random.toString('base64url').startsWith('-')) assert.equal(id, random.toString('base64url'));
    }
  });
});
