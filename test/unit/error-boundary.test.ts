/**
 * The public app's error boundary (src/http/error-boundary.ts): what escapes every handler is
 * answered as the HTML error page on browser routes and as OAuth JSON elsewhere, never by Koa's
 * plain-text default; a redirect prepared before the failure does not go out with it.
 * A real Koa app over HTTP; the failures are thrown by the routes below it.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Writable } from 'node:stream';
import Koa from 'koa';
import { errorBoundary } from '../../src/http/error-boundary.js';
import { Views } from '../../src/interactions/views.js';
import { createLogger } from '../../src/observability/logger.js';
import { ServiceUnavailable } from '../../src/oidc/errors.js';
import { StoreUnavailableError } from '../../src/store/errors.js';

describe('error boundary', () => {
  let server: ReturnType<Koa['listen']>;
  let base: string;
  const logs: string[] = [];

  before(async () => {
    const app = new Koa();
    app.silent = true;
    const sink = new Writable({
      write(chunk, _enc, cb) {
        logs.push(String(chunk));
        cb();
      },
    });
    app.use(errorBoundary(new Views({ name: 'Veil', logoUrl: undefined, color: '#123456' }), createLogger('info', sink)));
    app.use(async (ctx) => {
      // As oidc-provider's router names the route it matched (ctx.oidc.route).
      const route = ctx.path.slice(1);
      Object.defineProperty(ctx, 'oidc', { value: { route } });
      if (route === 'authorization') {
        ctx.redirect('https://app.example/cb?error=temporarily_unavailable'); // the route's own answer, then a second failure
        throw new ServiceUnavailable();
      }
      if (ctx.path.startsWith('/interaction/')) throw new StoreUnavailableError('Redis');
      if (route === 'token') throw new StoreUnavailableError('Redis', new Error('Connection is closed.'));
      if (route === 'bug') throw new TypeError('x is undefined');
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('a browser route: the HTML error page (503), without the redirect prepared before the failure', async () => {
    const res = await fetch(`${base}/authorization`, { redirect: 'manual' });
    assert.equal(res.status, 503);
    assert.match(res.headers.get('content-type')!, /^text\/html/);
    assert.equal(res.headers.get('location'), null);
    assert.match(await res.text(), /Temporarily unavailable/);
    assert.ok(
      logs.some((l) => l.includes('"request failed"') && l.includes('/authorization')),
      'logged',
    );
  });

  test('Veil pages by path are browser routes too', async () => {
    const res = await fetch(`${base}/interaction/abc`);
    assert.equal(res.status, 503);
    assert.match(res.headers.get('content-type')!, /^text\/html/);
  });

  test('an OAuth endpoint: JSON temporarily_unavailable', async () => {
    const res = await fetch(`${base}/token`, { method: 'POST' });
    assert.equal(res.status, 503);
    assert.match(res.headers.get('content-type')!, /json/);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.equal(((await res.json()) as { error: string }).error, 'temporarily_unavailable');
  });

  test('a bug: 500 server_error with a generic message, no stack in the answer', async () => {
    const res = await fetch(`${base}/bug`, { method: 'POST' });
    assert.equal(res.status, 500);
    const body = (await res.json()) as { error: string; error_description: string };
    assert.equal(body.error, 'server_error');
    assert.doesNotMatch(body.error_description, /undefined|TypeError/);
  });
});
