/** Metrics: one registry per instance, and bounded route labels. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Context } from 'koa';
import { Metrics, routeLabel } from '../../src/observability/metrics.js';

describe('metrics', () => {
  test('two instances in one process keep separate counts', async () => {
    const a = new Metrics();
    const b = new Metrics();
    a.login('success');
    a.login('failure');
    b.login('locked');
    const textA = await a.render();
    const textB = await b.render();
    assert.match(textA, /^veil_logins_total\{outcome="success"\} 1$/m);
    assert.match(textA, /^veil_logins_total\{outcome="failure"\} 1$/m);
    assert.doesNotMatch(textA, /outcome="locked"/);
    assert.match(textB, /^veil_logins_total\{outcome="locked"\} 1$/m);
    assert.match(textA, /^process_cpu_user_seconds_total /m, 'default process metrics are collected');
    assert.match(a.contentType, /^text\/plain/);
  });

  test('route labels never contain the raw path', () => {
    const ctx = (path: string, extra: Record<string, unknown> = {}) => Object.assign({ path }, extra) as unknown as Context;
    assert.equal(routeLabel(ctx('/interaction/Xy3kdP0aQ')), 'interaction');
    assert.equal(routeLabel(ctx('/interaction/Xy3kdP0aQ/login', { _matchedRoute: '/interaction/:uid/login' })), '/interaction/:uid/login');
    assert.equal(routeLabel(ctx('/static/veil.css')), 'static');
    assert.equal(routeLabel(ctx('/some/unknown/path')), 'other');
    const routed = ctx('/auth/abc123');
    Object.defineProperty(routed, 'oidc', { get: () => ({ route: 'resume' }) });
    assert.equal(routeLabel(routed), 'resume');
  });
});
