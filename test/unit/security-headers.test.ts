/** The security-headers middleware: always nosniff and no-referrer, HSTS only for an https issuer. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Context } from 'koa';
import { securityHeaders } from '../../src/http/security-headers.js';

async function headersFor(issuer: string): Promise<Record<string, string>> {
  const set: Record<string, string> = {};
  const ctx = { set: (h: Record<string, string>) => Object.assign(set, h) } as unknown as Context;
  let called = false;
  await securityHeaders(issuer)(ctx, async () => {
    called = true;
  });
  assert.ok(called, 'calls the next middleware');
  return set;
}

test('an https issuer gets HSTS', async () => {
  const h = await headersFor('https://id.example.com');
  assert.equal(h['Strict-Transport-Security'], 'max-age=31536000; includeSubDomains');
  assert.equal(h['X-Content-Type-Options'], 'nosniff');
  assert.equal(h['Referrer-Policy'], 'no-referrer');
});

test('an http issuer gets no HSTS', async () => {
  const h = await headersFor('http://localhost:3000');
  assert.equal(h['Strict-Transport-Security'], undefined);
  assert.equal(h['X-Content-Type-Options'], 'nosniff');
  assert.equal(h['Referrer-Policy'], 'no-referrer');
});
