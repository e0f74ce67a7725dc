/** The one rule for API scopes (src/clients/api-scopes.ts) and the CLI's --resource-scope parser. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { allowedApiScopes, resourceScopesOf, ScopeInputError, splitClientScopes } from '../../src/clients/api-scopes.js';
import { collectResourceScopes } from '../../src/cli/commands/clients.js';

const OIDC = ['openid', 'profile', 'email', 'offline_access'];
const ORDERS = { identifier: 'https://orders.example', scopes: ['read', 'write', 'admin'] };
const BILLING = { identifier: 'https://billing.example', scopes: ['read', 'export'] };

describe('allowedApiScopes', () => {
  test('the client list for that resource, intersected with what the resource registers now', () => {
    const metadata = { resource_scopes: { [ORDERS.identifier]: ['write', 'read', 'gone'] } };
    assert.deepEqual(allowedApiScopes(metadata, ORDERS), ['read', 'write']);
    assert.deepEqual(allowedApiScopes(metadata, BILLING), []);
  });

  test('no list, or a malformed one (a hand-edited row), allows nothing', () => {
    assert.deepEqual(allowedApiScopes({}, ORDERS), []);
    for (const bad of [['read'], 'read', { [ORDERS.identifier]: 'read' }, { 'not a uri': ['read'] }, { [ORDERS.identifier]: [1] }, null]) {
      assert.deepEqual(resourceScopesOf({ resource_scopes: bad }), {}, JSON.stringify(bad));
      assert.deepEqual(allowedApiScopes({ resource_scopes: bad }, ORDERS), []);
    }
  });
});

describe('splitClientScopes', () => {
  const split = (scope: string | undefined, resourceScopes?: Record<string, string[]>, resources = [ORDERS, BILLING]) =>
    splitClientScopes({ scope, resourceScopes, resources, oidcScopes: OIDC });

  test('OIDC scopes stay in scope; an API scope goes to the one resource that registers it', () => {
    assert.deepEqual(split('openid profile write export'), { oidcScope: 'openid profile', resourceScopes: { [ORDERS.identifier]: ['write'], [BILLING.identifier]: ['export'] } });
    assert.deepEqual(split(undefined), { oidcScope: undefined, resourceScopes: {} });
    assert.deepEqual(split('write admin', undefined, [ORDERS]), { oidcScope: undefined, resourceScopes: { [ORDERS.identifier]: ['write', 'admin'] } });
  });

  test('a shared name must be given per resource; resource_scopes adds to scope', () => {
    assert.throws(
      () => split('read'),
      (e: Error) => e instanceof ScopeInputError && /several/.test(e.message),
    );
    assert.deepEqual(split('write', { [BILLING.identifier]: ['read'] }), {
      oidcScope: undefined,
      resourceScopes: { [ORDERS.identifier]: ['write'], [BILLING.identifier]: ['read'] },
    });
  });

  test("refused: unknown scopes, scopes of other resources, resources not the client's, bad tokens", () => {
    assert.throws(() => split('delete'), ScopeInputError);
    assert.throws(() => split('export', undefined, [ORDERS]), ScopeInputError);
    assert.throws(() => split(undefined, { [ORDERS.identifier]: ['export'] }), /not registered by/);
    assert.throws(() => split(undefined, { 'https://other.example': ['read'] }), /not one of the client's resources/);
    assert.throws(() => split('re"ad'), ScopeInputError);
  });
});

describe('--resource-scope URI=a,b', () => {
  test('parses, accumulates per URI, splits at the last "="', () => {
    let v = collectResourceScopes('https://orders.example=read,write', undefined);
    v = collectResourceScopes('https://orders.example=admin', v);
    v = collectResourceScopes('https://q.example/?a=b=read', v);
    v = collectResourceScopes('https://billing.example=', v);
    assert.deepEqual(v, { 'https://orders.example': ['read', 'write', 'admin'], 'https://q.example/?a=b': ['read'], 'https://billing.example': [] });
    assert.throws(() => collectResourceScopes('read,write', undefined), /URI=scope/);
  });
});
