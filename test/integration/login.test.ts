/**
 * The login page does not reveal which emails are registered: a wrong password, an unknown
 * email and a disabled account get the same page and take about the same time (one argon2id
 * verification each). Driven over real HTTP against real PostgreSQL and Redis.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { postLogin, startLoginInteraction } from '../helpers/http-flow.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const PASSWORD = 'the right password';

describe('login page', () => {
  let stores: TestStores;
  let veil: TestVeil;
  let clientId: string;

  before(async () => {
    stores = await createTestStores();
    // The timing comparison makes dozens of failed attempts; throttling has its own tests.
    veil = await startTestVeil(stores, { LOGIN_MAX_FAILURES_PER_ACCOUNT: '1000', LOGIN_MAX_FAILURES_PER_IP: '1000' });
    await veil.admin('POST', '/admin/users', { email: 'known@example.com', password: PASSWORD });
    const gone = await veil.admin<{ user: { id: string } }>('POST', '/admin/users', { email: 'gone@example.com', password: PASSWORD });
    assert.equal((await veil.admin('POST', `/admin/users/${gone.body.user.id}/disable`, {})).status, 200);
    const c = await veil.admin<{ client: { client_id: string } }>('POST', '/admin/clients', {
      client_name: 'Timing',
      redirect_uris: ['https://app.example/cb'],
      public: true,
    });
    clientId = c.body.client.client_id;
  });

  after(async () => {
    await veil?.stop();
    await stores?.cleanup();
  });

  const startInteraction = () => startLoginInteraction(veil.issuer, clientId, 'https://app.example/cb');

  async function attempt(email: string, password: string) {
    return postLogin(veil.issuer, await startInteraction(), email, password);
  }

  function errorMessage(body: string) {
    return body
      .match(/role="alert"[^>]*>([\s\S]*?)<\//)?.[1]
      ?.replace(/<[^>]+>/g, '')
      .trim();
  }

  test('wrong password, unknown email and disabled account get the same answer', async () => {
    const wrong = await attempt('known@example.com', 'not the password');
    const unknown = await attempt('nobody@example.com', 'not the password');
    const disabled = await attempt('gone@example.com', PASSWORD);
    for (const r of [wrong, unknown, disabled]) {
      assert.equal(r.status, 401);
      assert.equal(errorMessage(r.body), 'Invalid email or password.');
    }
  });

  test('the page carries a strict CSP and no script', async () => {
    const { path, cookie } = await startInteraction();
    const res = await fetch(`${veil.issuer}${path}`, { headers: { cookie } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-security-policy')!, /default-src 'none'/);
    assert.match(res.headers.get('content-security-policy')!, /frame-ancestors 'none'/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    const body = await res.text();
    assert.doesNotMatch(body, /<script|\sstyle=|<style/i);
    assert.match(body, /<label[^>]+for="email"/);
  });

  test('the right password signs in (303 back to the authorization endpoint)', async () => {
    const ok = await attempt('KNOWN@example.com', PASSWORD);
    assert.equal(ok.status, 303);
  });

  test('unknown email takes about as long as a wrong password', async () => {
    const wrong: number[] = [];
    const unknown: number[] = [];
    // Interleaved, so machine noise hits both series alike.
    for (let i = 0; i < 12; i++) {
      wrong.push((await attempt('known@example.com', `wrong-${i}`)).elapsed);
      unknown.push((await attempt(`nobody-${i}@example.com`, `wrong-${i}`)).elapsed);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const ratio = median(unknown) / median(wrong);
    // Without the dummy verification an unknown email answers in ~1/10 of the time; the bounds
    // are wide because the machine is shared and noisy.
    assert.ok(ratio > 0.5 && ratio < 2, `unknown/wrong median ratio ${ratio.toFixed(2)} (${median(unknown).toFixed(1)} ms vs ${median(wrong).toFixed(1)} ms)`);
  });
});

describe('branding', () => {
  let veil: TestVeil;
  before(async () => {
    veil = await startTestVeil(undefined, { BRAND_NAME: 'Acme Cloud', BRAND_COLOR: '#0f766e', BRAND_LOGO_URL: 'https://cdn.acme.example/logo.svg' });
  });
  after(async () => veil?.stop());

  test('name, logo and colour come from configuration', async () => {
    const page = await fetch(`${veil.issuer}/no-such-page`, { headers: { accept: 'text/html' } });
    const body = await page.text();
    assert.match(body, /<title>[^<]*Acme Cloud<\/title>/);
    assert.match(body, /<img[^>]+src="https:\/\/cdn\.acme\.example\/logo\.svg"/);
    const res = await fetch(`${veil.issuer}/static/veil.css`);
    assert.match(res.headers.get('content-type')!, /text\/css/);
    assert.ok((await res.text()).startsWith(':root { --veil-brand: #0f766e; }'));
    // Revalidation is cheap: the ETag answers 304 without a body.
    const again = await fetch(`${veil.issuer}/static/veil.css`, { headers: { 'if-none-match': res.headers.get('etag')! } });
    assert.equal(again.status, 304);
  });
});
