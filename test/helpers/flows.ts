/**
 * A real relying party (openid-client) driving a real browser (Chromium) through Veil's
 * login and consent pages.
 */
import * as oidc from 'openid-client';
import type { BrowserContext, Page } from 'playwright-core';
import { rememberFields, rememberSecret, rememberTokens } from './secrets.js';

export interface RelyingParty {
  config: oidc.Configuration;
  redirectUri: string;
}

export async function relyingParty(issuer: string, clientId: string, clientSecret: string | undefined, redirectUri: string): Promise<RelyingParty> {
  rememberSecret(clientSecret, 'client secret');
  const auth = clientSecret ? oidc.ClientSecretBasic(clientSecret) : oidc.None();
  const config = await oidc.discovery(new URL(issuer), clientId, undefined, auth, { execute: [oidc.allowInsecureRequests] });
  config[oidc.customFetch] = rememberingFetch;
  return { config, redirectUri };
}

/** openid-client's fetch for the relying party: the codes and tokens it sends, and the tokens it gets, are remembered. */
const rememberingFetch: oidc.CustomFetch = async (url, options) => {
  if (options.body instanceof URLSearchParams) rememberFields(Object.fromEntries(options.body), ['code', 'code_verifier', 'refresh_token', 'token', 'client_secret']);
  const res = await fetch(url, options);
  if (res.headers.get('content-type')?.includes('json'))
    rememberTokens(
      await res
        .clone()
        .json()
        .catch(() => undefined),
    );
  return res;
};

export interface AuthorizationAttempt {
  url: URL;
  state: string;
  codeVerifier: string;
  nonce: string;
}

export async function authorizationRequest(rp: RelyingParty, params: Record<string, string> = {}): Promise<AuthorizationAttempt> {
  const codeVerifier = oidc.randomPKCECodeVerifier();
  rememberSecret(codeVerifier, 'PKCE verifier');
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(rp.config, {
    redirect_uri: rp.redirectUri,
    scope: 'openid email profile',
    code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...params,
  });
  return { url, state, codeVerifier, nonce };
}

export async function signIn(page: Page, email: string, password: string): Promise<void> {
  rememberFields({ email, password }, ['email', 'password']);
  await page.getByLabel(/email/i).fill(email);
  await page.getByLabel(/password/i).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Waits until the browser has been sent back to the relying party and returns that URL. */
export async function waitForCallback(page: Page, redirectUri: string): Promise<URL> {
  await page.waitForURL((u) => u.toString().startsWith(redirectUri), { timeout: 15_000 });
  const callback = new URL(page.url());
  rememberSecret(callback.searchParams.get('code'), 'authorization code');
  return callback;
}

/** Full interactive login + consent; returns the tokens. */
export async function loginAndConsent(context: BrowserContext, rp: RelyingParty, user: { email: string; password: string }, params: Record<string, string> = {}) {
  const attempt = await authorizationRequest(rp, params);
  const page = await context.newPage();
  await page.goto(attempt.url.toString());
  await signIn(page, user.email, user.password);
  await page.getByRole('button', { name: 'Allow' }).click();
  const callback = await waitForCallback(page, rp.redirectUri);
  await page.close();
  const tokens = await oidc.authorizationCodeGrant(rp.config, callback, {
    pkceCodeVerifier: attempt.codeVerifier,
    expectedState: attempt.state,
    expectedNonce: attempt.nonce,
  });
  return { tokens, attempt, callback };
}

export { oidc };
