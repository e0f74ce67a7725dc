/** Dev-only landing page for the seeded demo client's redirect (mounted only when seeding). */
import type { Context, Next } from 'koa';
import { DEMO_CALLBACK_PATH, exchangeCommand, type DemoLogin } from '../seed.js';
import type { Views } from './views.js';

export function demoCallbackRoute(issuer: string, demo: DemoLogin, views: Views) {
  return async (ctx: Context, next: Next) => {
    if (ctx.path !== DEMO_CALLBACK_PATH || ctx.method !== 'GET') {
      await next();
      return;
    }
    const q = (name: string) => (typeof ctx.query[name] === 'string' ? ctx.query[name].slice(0, 2048) : undefined);
    const code = q('code');
    const error = q('error');
    views.send(ctx, 'demo-callback', error ? 'Demo login failed' : 'Demo login complete', {
      code,
      state: q('state'),
      error,
      errorDescription: q('error_description'),
      curl: code && !error ? exchangeCommand(issuer, demo, code) : undefined,
    });
  };
}
