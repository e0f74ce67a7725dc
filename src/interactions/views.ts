/**
 * Renders views/*.eta. Every page gets the brand and a title; the stylesheet is served from
 * memory with the brand colour prepended as a CSS variable, so pages need no inline style.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';
import type { Context } from 'koa';
import type { VeilConfig } from '../config.js';

export const VIEWS_DIR = fileURLToPath(new URL('../../views', import.meta.url));

export const PAGE_SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': "default-src 'none'; style-src 'self'; img-src 'self' https: data:; frame-ancestors 'none'; base-uri 'none'",
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

export type PageName = 'login' | 'consent' | 'logout' | 'logged-out' | 'error' | 'demo-callback' | 'account';

export class Views {
  readonly #eta = new Eta({ views: VIEWS_DIR, autoEscape: true, cache: true, autoTrim: false });
  readonly #brand: VeilConfig['brand'];
  readonly stylesheet: { body: string; etag: string };

  constructor(brand: VeilConfig['brand']) {
    this.#brand = brand;
    const css = fs.readFileSync(`${VIEWS_DIR}/static/veil.css`, 'utf8');
    const body = `:root { --veil-brand: ${brand.color}; }\n${css}`;
    this.stylesheet = { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
  }

  render(page: PageName, title: string, data: Record<string, unknown> = {}): string {
    return this.#eta.render(page, { ...data, brand: this.#brand, title });
  }

  /** Writes a full HTML response with the page security headers. */
  send(ctx: Context, page: PageName, title: string, data: Record<string, unknown> = {}, status = 200): void {
    ctx.status = status;
    ctx.set(PAGE_SECURITY_HEADERS);
    ctx.type = 'html';
    ctx.body = this.render(page, title, data);
  }
}
