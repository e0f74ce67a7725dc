/**
 * One error model, four edges: every VeilError code renders at every edge (OAuth JSON, admin API
 * JSON, HTML error page, CLI), and an error nobody foresaw renders as a generic 500 that leaks
 * nothing of its message. The expectations are written out here, not read from the tables.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { errors } from 'oidc-provider';
import { renderAdminError } from '../../src/admin/errors.js';
import { AdminApiError, AdminUnreachableError } from '../../src/cli/admin-client.js';
import { renderCliError } from '../../src/cli/errors.js';
import { ConfigError } from '../../src/config.js';
import { KeyFileError } from '../../src/crypto/keys.js';
import { MasterKeyError } from '../../src/crypto/master-key.js';
import { ERROR_CODES, GENERIC_MESSAGE, VeilError, toVeilError, type VeilErrorCode } from '../../src/errors/veil-error.js';
import { BadRequestBody } from '../../src/http/body.js';
import { renderErrorPage } from '../../src/interactions/error-page.js';
import { renderOAuthError, toProtocolError } from '../../src/oidc/errors.js';
import { DuplicateResourceServer } from '../../src/resource-registry/registry.js';
import { classifyDatabaseError, InvalidStoredValue, RecordNotFound, StoreUnavailableError, UniqueViolation } from '../../src/store/errors.js';
import { DuplicateAccountError } from '../../src/store/accounts.js';
import { MigrationError } from '../../src/store/migrator.js';
import { GrantRevokedError } from '../../src/store/short-lived-store.js';

const SECRET = 'postgres://veil:hunter2@db.internal/veil at Object.<anonymous> (/app/src/x.ts:1:1)';

interface Expected {
  oauth: [status: number, error: string];
  admin: [status: number, error: string];
  html: number;
  cli: [exitCode: number, error: string];
  /** Whether the message reaches an HTTP caller. */
  shown: boolean;
}

const EXPECTED: Record<VeilErrorCode, Expected> = {
  invalid_input: { oauth: [400, 'invalid_request'], admin: [400, 'invalid_request'], html: 400, cli: [1, 'invalid_usage'], shown: true },
  invalid_client_metadata: { oauth: [400, 'invalid_client_metadata'], admin: [400, 'invalid_client_metadata'], html: 400, cli: [1, 'invalid_client_metadata'], shown: true },
  unauthorized: { oauth: [401, 'invalid_client'], admin: [401, 'unauthorized'], html: 401, cli: [1, 'unauthorized'], shown: true },
  forbidden: { oauth: [403, 'invalid_request'], admin: [403, 'forbidden'], html: 403, cli: [1, 'forbidden'], shown: true },
  not_found: { oauth: [404, 'invalid_request'], admin: [404, 'not_found'], html: 404, cli: [1, 'not_found'], shown: true },
  method_not_allowed: { oauth: [405, 'invalid_request'], admin: [405, 'invalid_request'], html: 405, cli: [1, 'invalid_request'], shown: true },
  conflict: { oauth: [409, 'invalid_request'], admin: [409, 'conflict'], html: 409, cli: [1, 'conflict'], shown: true },
  payload_too_large: { oauth: [413, 'invalid_request'], admin: [413, 'invalid_request'], html: 413, cli: [1, 'invalid_request'], shown: true },
  unsupported_media_type: { oauth: [400, 'invalid_request'], admin: [415, 'unsupported_media_type'], html: 415, cli: [1, 'unsupported_media_type'], shown: true },
  misdirected_request: { oauth: [421, 'invalid_request'], admin: [421, 'misdirected_request'], html: 421, cli: [1, 'misdirected_request'], shown: true },
  grant_revoked: { oauth: [400, 'invalid_grant'], admin: [409, 'conflict'], html: 400, cli: [1, 'invalid_grant'], shown: false },
  store_unavailable: { oauth: [503, 'temporarily_unavailable'], admin: [503, 'temporarily_unavailable'], html: 503, cli: [1, 'database_error'], shown: false },
  key_unavailable: { oauth: [503, 'temporarily_unavailable'], admin: [503, 'temporarily_unavailable'], html: 503, cli: [1, 'key_error'], shown: false },
  unreachable: { oauth: [503, 'temporarily_unavailable'], admin: [503, 'temporarily_unavailable'], html: 503, cli: [1, 'server_unreachable'], shown: false },
  key_error: { oauth: [500, 'server_error'], admin: [400, 'invalid_request'], html: 500, cli: [1, 'key_error'], shown: false },
  master_key_error: { oauth: [500, 'server_error'], admin: [500, 'server_error'], html: 500, cli: [1, 'key_error'], shown: false },
  invalid_config: { oauth: [500, 'server_error'], admin: [500, 'server_error'], html: 500, cli: [1, 'invalid_configuration'], shown: false },
  migration_failed: { oauth: [500, 'server_error'], admin: [500, 'server_error'], html: 500, cli: [1, 'migration_failed'], shown: false },
  internal: { oauth: [500, 'server_error'], admin: [500, 'server_error'], html: 500, cli: [1, 'internal_error'], shown: false },
};

describe('VeilError at every edge', () => {
  test('the expectations cover exactly the codes there are', () => {
    assert.deepEqual(Object.keys(EXPECTED).sort(), [...ERROR_CODES].sort());
  });

  for (const code of ERROR_CODES) {
    const expected = EXPECTED[code];
    test(code, () => {
      const message = code === 'grant_revoked' ? 'the grant was revoked' : `${code}: message for ${SECRET}`;
      const exposed =
        code === 'key_error' || !['store_unavailable', 'key_unavailable', 'unreachable', 'master_key_error', 'invalid_config', 'migration_failed', 'internal'].includes(code);
      const err = new VeilError(code, exposed ? `the ${code} message` : message);

      const oauth = renderOAuthError(err);
      assert.deepEqual([oauth.status, oauth.body.error], expected.oauth, 'OAuth');
      assert.equal(typeof oauth.body.error_description, 'string');
      assert.equal(oauth.unexpected, expected.oauth[0] === 500);

      const admin = renderAdminError(err);
      assert.deepEqual([admin.status, admin.body.error], expected.admin, 'admin');

      const page = renderErrorPage(err);
      assert.equal(page.status, expected.html, 'HTML');
      assert.equal(page.logged, expected.html >= 500, 'HTML: 5xx pages are logged');

      const cli = renderCliError(err);
      assert.deepEqual([cli.exitCode, cli.report.error], expected.cli, 'CLI');

      // Nothing that names internals reaches an HTTP caller.
      for (const body of [JSON.stringify(oauth.body), JSON.stringify(admin.body), page.description]) assert.doesNotMatch(body, /hunter2|\/app\/src/);
      if (expected.shown) {
        assert.equal(oauth.body.error_description, `the ${code} message`, 'OAuth shows a caller mistake');
        assert.equal(admin.body.error_description, `the ${code} message`, 'admin shows a caller mistake');
        assert.equal(page.description, `the ${code} message`, 'HTML shows a caller mistake');
      }
    });
  }

  test('an unknown error is a generic 500 everywhere, its message never shown', () => {
    const bug = new TypeError(`cannot read properties of undefined (${SECRET})`);
    const oauth = renderOAuthError(bug);
    assert.deepEqual(oauth, { status: 500, body: { error: 'server_error', error_description: GENERIC_MESSAGE }, unexpected: true });
    assert.deepEqual(renderAdminError(bug), { status: 500, body: { error: 'server_error', error_description: GENERIC_MESSAGE } });
    const page = renderErrorPage(bug);
    assert.equal(page.status, 500);
    assert.equal(page.logged, true);
    assert.doesNotMatch(JSON.stringify(page), /hunter2|cannot read/);
    assert.deepEqual(renderCliError(bug), { report: { error: 'internal_error', error_description: GENERIC_MESSAGE }, exitCode: 1 });
    // Something thrown that is not even an Error.
    assert.equal(renderAdminError('a string').status, 500);
    assert.equal(toVeilError(undefined).code, 'internal');
    // oidc-provider leaves a non-protocol error alone: it answers 500 server_error itself.
    assert.equal(toProtocolError(bug), bug);
  });
});

describe('domain errors carry their code', () => {
  test('each class is a VeilError with the code its callers rely on', () => {
    const cases: [Error, VeilErrorCode][] = [
      [new StoreUnavailableError('Redis'), 'store_unavailable'],
      [new GrantRevokedError(), 'grant_revoked'],
      [new DuplicateResourceServer('x'), 'conflict'],
      [new DuplicateAccountError('x'), 'conflict'],
      [new KeyFileError('x'), 'key_error'],
      [new MasterKeyError('x'), 'master_key_error'],
      [new MigrationError('x'), 'migration_failed'],
      [new ConfigError('x'), 'invalid_config'],
      [new BadRequestBody(413, 'request body too large'), 'payload_too_large'],
      [new BadRequestBody(400, 'malformed request body'), 'invalid_input'],
    ];
    for (const [err, code] of cases) {
      assert.ok(err instanceof VeilError, err.name);
      assert.equal(err.code, code, err.name);
    }
    assert.equal(new StoreUnavailableError('Redis').name, 'StoreUnavailableError');
  });

  test('the edges keep the answers they gave before the error model', () => {
    // Store outage: 503 temporarily_unavailable at /token's neighbours and the admin API, a fixed text.
    assert.deepEqual(renderOAuthError(new StoreUnavailableError('PostgreSQL')).body, {
      error: 'temporarily_unavailable',
      error_description: 'the service is temporarily unavailable, try again shortly',
    });
    assert.deepEqual(renderAdminError(new StoreUnavailableError('PostgreSQL')).body, { error: 'temporarily_unavailable', error_description: 'a backing store is unavailable' });
    // A grant revoked meanwhile: oidc-provider's own invalid_grant.
    assert.ok(toProtocolError(new GrantRevokedError()) instanceof errors.InvalidGrant);
    // A key unusable right now: 503 naming the key, as ResourceKeyUnavailable did.
    assert.equal(
      renderOAuthError(new VeilError('key_unavailable', 'jwks_uri down')).body.error_description,
      "the resource server's encryption key is unavailable, try again shortly",
    );
    // A body over the limit: 413 invalid_request with the parser's message.
    assert.deepEqual(renderOAuthError(new BadRequestBody(413, 'request body too large')), {
      status: 413,
      body: { error: 'invalid_request', error_description: 'request body too large' },
      unexpected: false,
    });
    // oidc-provider's own errors pass through the OAuth renderer, and show as themselves on the page.
    assert.deepEqual(renderOAuthError(new errors.InvalidClientAuth()).body, { error: 'invalid_client', error_description: 'client authentication failed' });
    assert.equal(renderErrorPage(new errors.SessionNotFound('gone')).title, 'Sign-in expired');
    // Koa's 405 (the router's http-error) is the caller's mistake, shown.
    assert.deepEqual(renderAdminError(Object.assign(new Error('Method Not Allowed'), { status: 405, expose: true })), {
      status: 405,
      body: { error: 'invalid_request', error_description: 'Method Not Allowed' },
    });
  });

  test('the CLI reports the admin API error verbatim, and says when the server did not answer', () => {
    assert.deepEqual(renderCliError(new AdminApiError(404, 'not_found', 'no such client')).report, { error: 'not_found', error_description: 'no such client' });
    const down = renderCliError(new AdminUnreachableError('http://127.0.0.1:1', 'ECONNREFUSED', 'cannot reach the Veil admin API'));
    assert.deepEqual(down, { report: { error: 'server_unreachable', error_description: 'cannot reach the Veil admin API' }, exitCode: 1 });
    // An operator's own configuration error is shown to the operator.
    assert.equal(renderCliError(new ConfigError('invalid configuration: PORT')).report.error_description, 'invalid configuration: PORT');
  });
});

describe('Prisma errors become VeilErrors in one place', () => {
  const prismaError = (code: string) => Object.assign(new Error(`unique constraint failed: ${SECRET}`), { name: 'PrismaClientKnownRequestError', code });

  test('P2002 is a conflict, P2025 not found, other data errors pass, everything else is an outage', () => {
    const unique = classifyDatabaseError(prismaError('P2002'));
    assert.ok(unique instanceof UniqueViolation);
    assert.deepEqual(renderAdminError(unique), { status: 409, body: { error: 'conflict', error_description: 'already exists' } });
    const missing = classifyDatabaseError(prismaError('P2025'));
    assert.ok(missing instanceof RecordNotFound);
    assert.equal(renderAdminError(missing).status, 404);
    const other = prismaError('P2003');
    assert.equal(classifyDatabaseError(other), other);
    assert.ok(classifyDatabaseError(new Error('connection terminated')) instanceof StoreUnavailableError);
    const store = new StoreUnavailableError('Redis');
    assert.equal(classifyDatabaseError(store), store);
  });

  test('a SQLSTATE the driver adapter leaves unmapped (P2039/P2010) is an outage when it says the server failed', () => {
    const driver = (code: string, sqlState: string) => Object.assign(prismaError(code), { meta: { driverAdapterError: { cause: { kind: 'postgres', originalCode: sqlState } } } });
    // 57P01: the server shutting down under the query (a PostgreSQL restart): 503, not 500.
    assert.ok(classifyDatabaseError(driver('P2039', '57P01')) instanceof StoreUnavailableError);
    assert.ok(classifyDatabaseError(driver('P2010', '08006')) instanceof StoreUnavailableError);
    const dataError = driver('P2039', '22012');
    assert.equal(classifyDatabaseError(dataError), dataError);
    // 22021: a value the caller sent that text cannot hold (a NUL byte): their mistake, a 400.
    const refused = classifyDatabaseError(driver('P2039', '22021'));
    assert.ok(refused instanceof InvalidStoredValue);
    assert.equal(refused.status, 400);
  });
});
