#!/usr/bin/env node
/**
 * Renders every views/*.eta page with sample data, checks the output for things the
 * Content-Security-Policy or the accessibility rules forbid, writes the pages as static HTML
 * (with the stylesheet themed to a non-default brand colour) and, when Chromium is available,
 * takes desktop and mobile screenshots.
 *
 *   node scripts/preview-views.mjs            # render, check, screenshot
 *   node scripts/preview-views.mjs --no-shots # render and check only
 *
 * Output: /tmp/veil-preview/ (override with VEIL_PREVIEW_DIR). HTML pages live in html/.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const VIEWS = path.join(ROOT, 'views');
const OUT = process.env.VEIL_PREVIEW_DIR ?? '/tmp/veil-preview';
const HTML_DIR = path.join(OUT, 'html');
const CHROMIUM = '/usr/bin/chromium';
const APT_LOG = '/tmp/apt-chromium.log';
const BRAND_COLOR = '#0f766e';
const CSP = "default-src 'none'; style-src 'self'; img-src 'self' https: data:; frame-ancestors 'none'; base-uri 'none'";

// Same options as src/interactions/views.ts.
const eta = new Eta({ views: VIEWS, autoEscape: true, cache: false, autoTrim: false });

const logoSvg = (fill, text) =>
  'data:image/svg+xml;base64,' +
  Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="180" height="40" viewBox="0 0 180 40">` +
      `<rect x="0" y="4" width="32" height="32" rx="8" fill="${fill}"/>` +
      `<path d="M9 20l5 5 10-10" stroke="#fff" stroke-width="3.5" fill="none" stroke-linecap="round" stroke-linejoin="round"/>` +
      `<text x="42" y="28" font-family="Arial, sans-serif" font-size="21" font-weight="700" fill="#0f172a">${text}</text></svg>`,
  ).toString('base64');
const clientLogo =
  'data:image/svg+xml;base64,' +
  Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="48" height="48" viewBox="0 0 48 48">` +
      `<rect width="48" height="48" rx="10" fill="#f97316"/>` +
      `<circle cx="24" cy="24" r="10" fill="#fff"/></svg>`,
  ).toString('base64');

const brand = { name: 'Acme Cloud', color: BRAND_COLOR };
const brandWithLogo = { name: 'Acme Cloud', color: BRAND_COLOR, logoUrl: logoSvg(BRAND_COLOR, 'Acme Cloud') };

const interaction = 'https://id.acme.test/interaction/Xk3b9Qd2LmT0pY7vR1sA';
const logoutForm =
  '<form method="post" action="https://id.acme.test/session/end/confirm" id="op.logoutForm">' +
  '<input type="hidden" name="xsrf" value="4b1d2f0c9e8a7b6c5d4e3f2a1b0c9d8e"/></form>';

/** name → [page, title, data]. */
const samples = {
  login: [
    'login',
    'Sign in',
    {
      brand,
      action: `${interaction}/login`,
      abortAction: `${interaction}/abort`,
      client: { name: 'Acme Dashboard' },
    },
  ],
  'login-error': [
    'login',
    'Sign in',
    {
      brand: brandWithLogo,
      action: `${interaction}/login`,
      abortAction: `${interaction}/abort`,
      client: { name: 'Acme Dashboard', logoUri: clientLogo },
      email: 'jane.doe@example.com',
      error: 'Invalid email or password.',
    },
  ],
  consent: [
    'consent',
    'Authorize access',
    {
      brand,
      action: `${interaction}/confirm`,
      abortAction: `${interaction}/abort`,
      client: {
        name: 'Acme Dashboard',
        logoUri: clientLogo,
        clientUri: 'https://dashboard.acme.test',
        policyUri: 'https://dashboard.acme.test/privacy',
        tosUri: 'https://dashboard.acme.test/terms',
      },
      account: { email: 'jane.doe@example.com' },
      scopes: [
        { name: 'openid', description: 'Confirm your identity' },
        { name: 'profile', description: 'View your basic profile (name)' },
        { name: 'email', description: 'View your email address' },
        { name: 'offline_access', description: 'Stay signed in and access your data when you are not using the app' },
      ],
      apis: [
        {
          identifier: 'https://api.acme.test/billing',
          name: 'Billing API',
          scopes: [
            { name: 'invoices:read', description: 'Read your invoices' },
            { name: 'invoices:write', description: 'Create and update invoices' },
          ],
          claims: [
            { name: 'email', description: 'Your email address' },
            { name: 'name', description: 'Your name' },
          ],
        },
        {
          identifier: 'urn:acme:api:reports',
          name: 'Reports API',
          scopes: [{ name: 'reports:read', description: 'Read reports' }],
        },
      ],
      previouslyGranted: false,
    },
  ],
  'consent-previous': [
    'consent',
    'Authorize access',
    {
      brand: brandWithLogo,
      action: `${interaction}/confirm`,
      abortAction: `${interaction}/abort`,
      client: { name: 'Demo <script>alert(1)</script> "App"' },
      account: { email: 'a.very.long.email.address.for.testing+veil@subdomain.example-company.com' },
      scopes: [],
      apis: [
        {
          identifier: 'https://api.acme.test/storage/v1/very/long/identifier/that/should/wrap',
          name: 'Storage API',
          scopes: [{ name: 'files:read', description: 'Read your files' }],
        },
      ],
      previouslyGranted: true,
    },
  ],
  logout: ['logout', 'Sign out', { brand, formHtml: logoutForm }],
  'logout-client': ['logout', 'Sign out', { brand: brandWithLogo, formHtml: logoutForm, clientName: 'Acme Dashboard' }],
  'logged-out': ['logged-out', 'Signed out', { brand, clientName: 'Acme Dashboard' }],
  error: [
    'error',
    'Error',
    {
      brand,
      status: 400,
      error: 'invalid_request',
      description: 'The redirect_uri does not match any registered for this client.',
      hint: 'Go back to the application and try signing in again.',
    },
  ],
  'error-503': [
    'error',
    'Temporarily unavailable',
    {
      brand: brandWithLogo,
      status: 503,
      error: 'temporarily_unavailable',
      description: 'The service is temporarily unavailable, try again shortly.',
    },
  ],
  'demo-callback': [
    'demo-callback',
    'Demo login complete',
    {
      brand,
      code: 'Qm4xYzN2b0hKZ0tlR1FqV1p0b0N6b3FxVjFhR0xUTmZ4c0lqUnF0X0NvQQ',
      state: 'c2b7a1e9f04d',
      curl: [
        'curl -s https://id.acme.test/token \\',
        "  -u 'demo-client:demo-secret' \\",
        '  -d grant_type=authorization_code \\',
        '  -d code=Qm4xYzN2b0hKZ0tlR1FqV1p0b0N6b3FxVjFhR0xUTmZ4c0lqUnF0X0NvQQ \\',
        '  -d redirect_uri=http://localhost:3000/demo/callback \\',
        '  -d code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk',
      ].join('\n'),
    },
  ],
  'demo-callback-error': [
    'demo-callback',
    'Demo login failed',
    {
      brand,
      error: 'access_denied',
      errorDescription: 'End-User aborted interaction',
      state: 'c2b7a1e9f04d',
    },
  ],
  account: [
    'account',
    'Connected apps',
    {
      brand,
      signedIn: true,
      referrerPolicy: 'same-origin',
      account: { email: 'jane.doe@example.com' },
      csrf: 'pJ0v3cT9yQm4xYzN2b0hKZ0tlR1FqV1p0b0N6b3E',
      csrfField: 'csrf',
      removed: 'Old <b>Reader</b>',
      apps: [
        {
          name: 'Acme Dashboard',
          headingId: 'app-1',
          since: '2026-03-12T09:30:00.000Z',
          sinceText: '12 March 2026',
          action: '/account/apps/acme-dashboard/withdraw',
          scopes: [
            { name: 'email', description: 'See your email address' },
            { name: 'offline_access', description: 'Stay connected when you are not using it' },
          ],
          apis: [
            {
              identifier: 'https://api.acme.test/billing',
              name: 'Billing API',
              scopes: [{ name: 'invoices:read', description: 'Permission "invoices:read"' }],
            },
          ],
        },
        {
          name: 'A client with a rather long name that has to wrap somewhere sensible',
          headingId: 'app-2',
          since: '2026-04-01T00:00:00.000Z',
          sinceText: '1 April 2026',
          action: '/account/apps/long/withdraw',
          scopes: [{ name: 'openid', description: 'Sign you in with your account' }],
          apis: [],
        },
      ],
    },
  ],
  'account-empty': [
    'account',
    'Connected apps',
    {
      brand: brandWithLogo,
      signedIn: true,
      account: { email: 'a.very.long.email.address.for.testing+veil@subdomain.example-company.com' },
      csrf: 'x',
      csrfField: 'csrf',
      apps: [],
    },
  ],
  'account-signed-out': ['account', 'Connected apps', { brand, signedIn: false }],
};

// ---------------------------------------------------------------------------------------------
// Static checks on the templates and the rendered output.
const problems = [];
for (const file of fs.readdirSync(VIEWS).filter((f) => f.endsWith('.eta'))) {
  const src = fs.readFileSync(path.join(VIEWS, file), 'utf8');
  for (const bad of ['<script', ' style=', '<style']) {
    if (src.toLowerCase().includes(bad)) problems.push(`${file}: contains ${bad}`);
  }
  // Raw output only where the contract says so.
  const raw = [...src.matchAll(/<%~\s*([^%]*?)\s*%>/g)].map((m) => m[1]);
  const allowed = { 'layout.eta': ['it.body'], 'logout.eta': ['it.formHtml'] }[file] ?? [];
  for (const r of raw) if (!allowed.includes(r)) problems.push(`${file}: raw output of ${r}`);
}

const css = fs.readFileSync(path.join(VIEWS, 'static', 'veil.css'), 'utf8');
if (Buffer.byteLength(css) > 8 * 1024) problems.push(`veil.css is ${Buffer.byteLength(css)} bytes (> 8 KiB)`);
if (/url\(\s*['"]?(https?:)?\/\//i.test(css) || /@import/i.test(css)) problems.push('veil.css references external assets');

const rendered = {};
for (const [name, [page, title, data]] of Object.entries(samples)) {
  const html = eta.render(page, { ...data, title });
  rendered[name] = html;
  const strip = html.replace(logoutForm, '');
  if (!html.startsWith('<!doctype html>')) problems.push(`${name}: missing doctype/layout`);
  if (!html.includes('<html lang="en">')) problems.push(`${name}: missing lang`);
  if (!/<main[\s>]/.test(html)) problems.push(`${name}: missing <main>`);
  if (/<script/i.test(strip) || / style=/i.test(strip) || /<style/i.test(strip)) problems.push(`${name}: script/style in output`);
  if (!html.includes(`<title>${title} · Acme Cloud</title>`)) problems.push(`${name}: unexpected <title>`);
  if ((html.match(/<h1[\s>]/g) ?? []).length !== 1) problems.push(`${name}: expected exactly one <h1>`);
  if ((html.match(/\sautofocus[\s>]/g) ?? []).length > 1) problems.push(`${name}: more than one autofocus`);
  for (const m of html.matchAll(/<input\b[^>]*>/g)) {
    if (/type="hidden"/.test(m[0])) continue;
    const id = /\sid="([^"]+)"/.exec(m[0])?.[1];
    if (!id || !html.includes(`<label class="veil-label" for="${id}">`)) problems.push(`${name}: input without label: ${m[0]}`);
  }
  for (const m of html.matchAll(/aria-describedby="([^"]+)"/g)) {
    if (!html.includes(`id="${m[1]}"`)) problems.push(`${name}: aria-describedby target ${m[1]} missing`);
  }
}
if (rendered['consent-previous'].includes('<script>alert')) problems.push('consent: client name not escaped');
const loginForm = /<form[^>]*action="[^"]*\/login"[^>]*>([\s\S]*?)<\/form>/.exec(rendered.login)?.[1] ?? '';
if (!/^[\s\S]*?<button[^>]*type="submit"[^>]*>Sign in<\/button>/.test(loginForm)) problems.push('login: "Sign in" is not the first submit button');

// ---------------------------------------------------------------------------------------------
// Write the pages for viewing from disk.
fs.mkdirSync(HTML_DIR, { recursive: true });
const themedCss = `:root { --veil-brand: ${BRAND_COLOR}; }\n${css}`;
fs.writeFileSync(path.join(HTML_DIR, 'veil.css'), themedCss);
for (const [name, html] of Object.entries(rendered)) {
  fs.writeFileSync(path.join(HTML_DIR, `${name}.html`), html.replace('href="/static/veil.css"', 'href="./veil.css"'));
}
console.log(`wrote ${Object.keys(rendered).length} pages to ${HTML_DIR}`);

function report() {
  if (problems.length === 0) return console.log('all checks passed');
  console.error(`\n${problems.length} problem(s):\n - ${problems.join('\n - ')}`);
  process.exitCode = 1;
}

// ---------------------------------------------------------------------------------------------
// Screenshots. Pages are served over HTTP with the real CSP header so that any inline style or
// script would be refused (and reported) exactly as in production.
if (process.argv.includes('--no-shots')) {
  report();
  process.exit();
}

async function waitForChromium() {
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    const ready = fs.existsSync(CHROMIUM) && (!fs.existsSync(APT_LOG) || /\bdone\b/.test(fs.readFileSync(APT_LOG, 'utf8')));
    if (ready) return true;
    if (Date.now() > deadline) return false;
    console.log('waiting for chromium to finish installing...');
    await new Promise((r) => setTimeout(r, 20_000));
  }
}

if (!(await waitForChromium())) {
  console.log(`no ${CHROMIUM}; skipping screenshots`);
  report();
  process.exit();
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  const headers = { 'Content-Security-Policy': CSP, 'Cache-Control': 'no-store' };
  if (url.pathname === '/static/veil.css') {
    res.writeHead(200, { ...headers, 'Content-Type': 'text/css; charset=utf-8' }).end(themedCss);
    return;
  }
  const html = rendered[url.pathname.slice(1)];
  if (html) res.writeHead(200, { ...headers, 'Content-Type': 'text/html; charset=utf-8' }).end(html);
  else res.writeHead(404).end();
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;

const { chromium } = await import('playwright-core');
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const viewports = { desktop: { width: 1280, height: 800 }, mobile: { width: 375, height: 740 }, narrow: { width: 360, height: 740 } };
try {
  for (const [vpName, viewport] of Object.entries(viewports)) {
    const context = await browser.newContext({ viewport, deviceScaleFactor: vpName === 'desktop' ? 1 : 2 });
    for (const name of Object.keys(rendered)) {
      const page = await context.newPage();
      page.on('console', (msg) => {
        if (/Content Security Policy|Refused/i.test(msg.text())) problems.push(`${name}: ${msg.text()}`);
      });
      await page.goto(`${base}/${name}`, { waitUntil: 'load' });
      const overflow = await page.$eval('html', (root) => root.scrollWidth - root.clientWidth);
      if (overflow > 0) problems.push(`${name} @${viewport.width}px: horizontal overflow of ${overflow}px`);
      if (vpName !== 'narrow') await page.screenshot({ path: path.join(OUT, `${name}-${vpName}.png`), fullPage: true });
      await page.close();
    }
    await context.close();
  }
  // Keyboard focus ring check on the login page.
  const page = await browser.newPage({ viewport: viewports.desktop });
  await page.goto(`${base}/login`);
  await page.focus('#password');
  await page.keyboard.press('Tab'); // → "Sign in" button, keyboard focus ring
  await page.screenshot({ path: path.join(OUT, 'login-focus-desktop.png') });
  await page.close();
} finally {
  await browser.close();
  server.close();
}
console.log(`screenshots in ${OUT}`);
report();
