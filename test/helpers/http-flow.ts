/**
 * The authorization code flow over plain HTTP (a cookie jar and manual redirects, no browser):
 * for tests that need many grants quickly. The browser-driven flow lives in flows.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { rememberFields, rememberSecret, rememberTokens } from './secrets.js';

export interface HttpFlowClient {
  issuer: string;
  clientId: string;
  clientSecret?: string;
  redirectUri: string;
}

/** The cookies a browser would keep (no expiry handling); `header()` for the next request. */
export class CookieJar {
  readonly #cookies = new Map<string, string>();
  store(res: Response) {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair!.indexOf('=');
      this.#cookies.set(pair!.slice(0, i), pair!.slice(i + 1));
    }
  }
  header() {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

/** Signs in, consents if asked, and exchanges the code; returns the token response. */
export async function httpAuthorizationCodeFlow(
  client: HttpFlowClient,
  user: { email: string; password: string },
  scope = 'openid offline_access',
  extra: Record<string, string> = {},
) {
  const { code, verifier } = await httpAuthorize(client, user, scope, extra);
  return exchange(client, code, verifier);
}

/** Signs in and consents; returns the authorization code and its PKCE verifier, unredeemed. */
export async function httpAuthorize(
  client: HttpFlowClient,
  user: { email: string; password: string },
  scope = 'openid offline_access',
  /** More authorization request parameters, e.g. `resource` (an array: the parameter repeated). */
  extra: Record<string, string | string[]> = {},
): Promise<{ code: string; verifier: string }> {
  return httpAuthorizeIn(new CookieJar(), client, user, scope, extra);
}

/** Like `httpAuthorize`, in the caller's cookie jar: the browser session outlives the flow. */
export async function httpAuthorizeIn(
  jar: CookieJar,
  client: HttpFlowClient,
  user: { email: string; password: string },
  scope = 'openid offline_access',
  extra: Record<string, string | string[]> = {},
): Promise<{ code: string; verifier: string }> {
  rememberFields(user, ['email', 'password']);
  const verifier = randomBytes(32).toString('base64url');
  rememberSecret(verifier, 'PKCE verifier');
  const authorize = new URL(`${client.issuer}/auth`);
  authorize.search = new URLSearchParams({
    client_id: client.clientId,
    response_type: 'code',
    scope,
    prompt: 'consent',
    redirect_uri: client.redirectUri,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();
  for (const [name, value] of Object.entries(extra)) {
    authorize.searchParams.delete(name);
    for (const one of [value].flat()) authorize.searchParams.append(name, one);
  }

  let url = authorize.toString();
  for (let hop = 0; hop < 10; hop++) {
    if (url.startsWith(client.redirectUri)) {
      const code = new URL(url).searchParams.get('code');
      if (!code) throw new Error(`no code in ${url}`);
      rememberSecret(code, 'authorization code');
      return { code, verifier };
    }
    const res = await fetch(url, { headers: { cookie: jar.header() }, redirect: 'manual' });
    jar.store(res);
    if (res.status === 303 || res.status === 302) {
      url = new URL(res.headers.get('location')!, client.issuer).toString();
      continue;
    }
    const page = await res.text();
    // The login form, or the consent page's "Allow" form (never the cancel/deny ones).
    const action = [...page.matchAll(/action="([^"]+)"/g)].map((m) => m[1]!).find((a) => /\/(login|confirm)$/.test(a));
    if (!action) throw new Error(`unexpected page at ${url} (${res.status})`);
    const body = page.includes('name="password"') ? new URLSearchParams(user) : new URLSearchParams();
    const posted = await fetch(new URL(action, client.issuer), {
      method: 'POST',
      headers: { cookie: jar.header(), 'content-type': 'application/x-www-form-urlencoded' },
      body: body.toString(),
      redirect: 'manual',
    });
    jar.store(posted);
    if (posted.status !== 303) throw new Error(`form post to ${action} answered ${posted.status}`);
    url = new URL(posted.headers.get('location')!, client.issuer).toString();
  }
  throw new Error('too many redirects');
}

function tokenHeaders(client: HttpFlowClient): Record<string, string> {
  rememberSecret(client.clientSecret, 'client secret');
  return {
    'content-type': 'application/x-www-form-urlencoded',
    ...(client.clientSecret ? { authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}` } : {}),
  };
}

export async function tokenRequest(client: HttpFlowClient, params: Record<string, string>) {
  rememberFields(params, ['code', 'code_verifier', 'refresh_token', 'client_secret', 'subject_token', 'assertion']);
  const res = await fetch(`${client.issuer}/token`, {
    method: 'POST',
    headers: tokenHeaders(client),
    body: new URLSearchParams({ ...(client.clientSecret ? {} : { client_id: client.clientId }), ...params }).toString(),
  });
  const body = (await res.json()) as Record<string, string>;
  rememberTokens(body);
  return { status: res.status, body };
}

export async function exchange(client: HttpFlowClient, code: string, verifier: string) {
  const res = await tokenRequest(client, { grant_type: 'authorization_code', code, redirect_uri: client.redirectUri, code_verifier: verifier });
  if (res.status !== 200) throw new Error(`code exchange failed: ${JSON.stringify(res.body)}`);
  return res.body as { access_token: string; refresh_token: string; id_token: string };
}

/** Opens an authorization request and returns the login interaction's path and cookies. */
export async function startLoginInteraction(issuer: string, clientId: string, redirectUri: string) {
  const url = new URL(`${issuer}/auth`);
  url.search = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    scope: 'openid',
    redirect_uri: redirectUri,
    code_challenge: createHash('sha256').update(randomBytes(32)).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();
  const res = await fetch(url, { redirect: 'manual' });
  if (res.status !== 303) throw new Error(`authorization request answered ${res.status}`);
  const cookie = res.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
  return { path: res.headers.get('location')!, cookie };
}

/** Posts the login form of an interaction; resolves with the response and its latency. */
export async function postLogin(issuer: string, interaction: { path: string; cookie: string }, email: string, password: string) {
  rememberFields({ email, password }, ['email', 'password']);
  const started = performance.now();
  const res = await fetch(`${issuer}${interaction.path}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: interaction.cookie },
    body: new URLSearchParams({ email, password }).toString(),
    redirect: 'manual',
  });
  const body = await res.text();
  return { status: res.status, body, elapsed: performance.now() - started };
}
