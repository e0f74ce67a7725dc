/** Logging never writes credentials or personal data: redaction by path, and error fields. */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { describeUrl } from '../../src/app.js';
import { chooseLogFormat, createLogger, errorFields, type LoggerOptions } from '../../src/observability/logger.js';

function capture(options?: LoggerOptions, isTTY = false) {
  const lines: string[] = [];
  const sink = Object.assign(
    new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    }),
    isTTY ? { isTTY: true } : {},
  );
  return { logger: createLogger('info', sink, options), lines };
}

const isJson = (line: string) => {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
};

describe('logger', () => {
  test('redacts credentials and personal data at the top level and one level down', () => {
    const { logger, lines } = capture();
    logger.info(
      {
        password: 'hunter2-secret',
        email: 'ada@example.com',
        client_secret: 'cs-123',
        refresh_token: 'rt-123',
        body: { password: 'nested-pw', code: 'auth-code-1', access_token: 'at-1', id_token: 'it-1' },
        req: { headers: { authorization: 'Bearer abc', cookie: '_session=xyz' } },
        accountId: 'b6b2f1c4-0000-4000-8000-000000000000',
      },
      'event',
    );
    const line = lines.join('');
    for (const secret of ['hunter2-secret', 'ada@example.com', 'cs-123', 'rt-123', 'nested-pw', 'auth-code-1', 'at-1', 'it-1', 'Bearer abc', '_session=xyz']) {
      assert.ok(!line.includes(secret), `${secret} leaked`);
    }
    assert.match(line, /b6b2f1c4/, 'the account id is kept');
  });

  test('redacts authorization codes by request path, and keeps error codes such as ECONNREFUSED', () => {
    const { logger, lines } = capture();
    const err = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });
    logger.error(
      {
        err: errorFields(new Error('Redis is unavailable', { cause: err })),
        req: { url: '/cb?code=auth-code-in-url&state=s1', query: { code: 'auth-code-in-query' }, body: { code: 'auth-code-in-req-body' } },
        query: { code: 'auth-code-q' },
        body: { code: 'auth-code-b' },
        params: { code: 'auth-code-p' },
        url: 'https://app.example/cb?state=s2&code=auth-code-top-url',
        path: '/token',
      },
      'store failed',
    );
    logger.warn({ err: { name: 'Error', code: 'ETIMEDOUT', message: 'timed out' } }, 'timeout');
    const line = lines.join('');
    for (const secret of ['auth-code-in-url', 'auth-code-in-query', 'auth-code-in-req-body', 'auth-code-q', 'auth-code-b', 'auth-code-p', 'auth-code-top-url']) {
      assert.ok(!line.includes(secret), `${secret} leaked`);
    }
    const [first, second] = lines.map((l) => JSON.parse(l) as { err: { code?: string; cause?: { code?: string } }; path?: string; url?: string; req?: { url?: string } });
    assert.equal(first!.err.cause?.code, 'ECONNREFUSED', 'a nested error code survives');
    assert.equal(second!.err.code, 'ETIMEDOUT', 'an error code survives');
    assert.equal(first!.path, '/token');
    // The rest of a URL stays readable.
    assert.match(first!.url!, /^https:\/\/app\.example\/cb\?/);
    assert.match(first!.req!.url!, /^\/cb\?/);
  });

  test('errorFields keeps name, code and message, but not Prisma messages that echo query arguments', () => {
    const plain = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    assert.deepEqual(errorFields(plain), { name: 'Error', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:5432' });

    const prisma = Object.assign(new Error('Invalid `prisma.account.create()` invocation: email "ada@example.com"'), {
      name: 'PrismaClientValidationError',
    });
    const wrapped = new Error('PostgreSQL is unavailable', { cause: prisma });
    const fields = errorFields(wrapped);
    assert.equal(fields.message, 'PostgreSQL is unavailable');
    assert.deepEqual(fields.cause, { name: 'PrismaClientValidationError' });
    assert.ok(!JSON.stringify(fields).includes('ada@example.com'));
  });

  test('errorFields hides driver-adapter messages and survives cyclic or endless cause chains', () => {
    const driver = Object.assign(new Error('value "ada@example.com" violates constraint'), { name: 'DriverAdapterError' });
    assert.deepEqual(errorFields(driver), { name: 'DriverAdapterError' });
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    const fields = errorFields(a);
    assert.equal(fields.message, 'a');
    assert.ok(JSON.stringify(fields).length < 1000, 'the chain is cut');
  });

  test('pretty format: one readable line per event, not JSON, with the message and the fields', () => {
    const { logger, lines } = capture({ format: 'pretty' });
    logger.info({ accountId: 'acct-42' }, 'user signed in');
    assert.equal(lines.length, 1);
    assert.ok(!isJson(lines[0]!), `not JSON: ${lines[0]}`);
    assert.match(lines[0]!, /INFO.*user signed in/);
    assert.match(lines[0]!, /acct-42/);
    assert.ok(!lines[0]!.includes('\u001b['), 'no colour codes when the stream is not a terminal');
  });

  test('pretty format is redacted like JSON', () => {
    const { logger, lines } = capture({ format: 'pretty' });
    logger.warn({ password: 'hunter2-secret', body: { refresh_token: 'rt-pretty' }, url: 'https://app.example/cb?code=auth-code-pretty' }, 'login failed');
    const line = lines.join('');
    for (const secret of ['hunter2-secret', 'rt-pretty', 'auth-code-pretty']) assert.ok(!line.includes(secret), `${secret} leaked`);
    assert.match(line, /\[redacted\]/);
    assert.match(line, /https:\/\/app\.example\/cb\?\[redacted\]/);
  });

  test('auto format: JSON when the stream is not a terminal; json forces JSON on a terminal', () => {
    const auto = capture();
    auto.logger.info({ n: 1 }, 'machine readable');
    assert.equal((JSON.parse(auto.lines[0]!) as { msg: string }).msg, 'machine readable');
    const forced = capture({ format: 'json' }, true);
    forced.logger.info('still JSON');
    assert.equal((JSON.parse(forced.lines[0]!) as { msg: string }).msg, 'still JSON');
  });

  test('auto format is pretty only on a terminal, outside production and CI', () => {
    const tty = { isTTY: true, production: false, ci: false };
    assert.equal(chooseLogFormat('auto', tty), 'pretty');
    assert.equal(chooseLogFormat('auto', { ...tty, isTTY: false }), 'json');
    assert.equal(chooseLogFormat('auto', { ...tty, production: true }), 'json');
    assert.equal(chooseLogFormat('auto', { ...tty, ci: true }), 'json');
    assert.equal(chooseLogFormat('pretty', { ...tty, isTTY: false, production: true }), 'pretty');
    assert.equal(chooseLogFormat('json', tty), 'json');
  });

  test('describeUrl never shows a user, a password or a query (which may carry a password)', () => {
    for (const url of ['postgresql://veil:s3cret@db:5432/veil?password=s3cret&sslmode=require', 'redis://:s3cret@cache:6379/0']) {
      const shown = describeUrl(url);
      assert.doesNotMatch(shown, /s3cret|veil@|password/);
      assert.match(shown, /^(postgresql|redis):\/\/(db:5432\/veil|cache:6379\/0)$/);
    }
  });
});
