/**
 * Development seed (embedded mode only, never in production): a demo account and a demo public
 * client, plus a ready-to-open authorization URL with a fresh PKCE pair on every start.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { AccountService } from './accounts/account-service.js';
import type { ClientRepository } from './store/clients.js';
import type { AccountRepository } from './store/accounts.js';

export const DEMO_CLIENT_ID = 'veil-demo';
export const DEMO_EMAIL = 'demo@example.com';
export const DEMO_CALLBACK_PATH = '/demo/callback';

export interface DemoLogin {
  authorizeUrl: string;
  redirectUri: string;
  codeVerifier: string;
  state: string;
  /** Only on the start that created the demo account. */
  password?: string;
}

export async function seedDemo(deps: { issuer: string; accounts: AccountService; accountRepo: AccountRepository; clients: ClientRepository }): Promise<DemoLogin> {
  const redirectUri = `${deps.issuer}${DEMO_CALLBACK_PATH}`;
  let password: string | undefined;
  if (!(await deps.accountRepo.findByEmail(DEMO_EMAIL))) {
    password = randomBytes(12).toString('base64url');
    await deps.accounts.create({ email: DEMO_EMAIL, password, name: 'Demo User', emailVerified: true });
  }
  if (!(await deps.clients.find(DEMO_CLIENT_ID))) {
    await deps.clients.create({
      client_id: DEMO_CLIENT_ID,
      client_name: 'Veil Demo App',
      redirect_uris: [redirectUri],
      post_logout_redirect_uris: [deps.issuer + DEMO_CALLBACK_PATH],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      scope: 'openid email profile offline_access',
    });
  }
  const codeVerifier = randomBytes(32).toString('base64url');
  const state = randomBytes(12).toString('base64url');
  const url = new URL(`${deps.issuer}/auth`);
  url.search = new URLSearchParams({
    client_id: DEMO_CLIENT_ID,
    response_type: 'code',
    scope: 'openid email profile',
    redirect_uri: redirectUri,
    code_challenge: createHash('sha256').update(codeVerifier).digest('base64url'),
    code_challenge_method: 'S256',
    state,
  }).toString();
  return { authorizeUrl: url.toString(), redirectUri, codeVerifier, state, password };
}

export function demoBanner(demo: DemoLogin): string {
  const lines = [
    '',
    '  Try a login (development seed):',
    `    1. Open   ${demo.authorizeUrl}`,
    demo.password
      ? `    2. Sign in as ${DEMO_EMAIL} with password ${demo.password}`
      : `    2. Sign in as ${DEMO_EMAIL} (its password was printed on the first start; or create a user with \`npx veil users create\`)`,
    '    3. Allow access: the demo callback page shows the code and the curl command that exchanges it.',
    '  Turn this off with VEIL_SEED=off.',
    '',
  ];
  return lines.join('\n');
}

export function exchangeCommand(issuer: string, demo: DemoLogin, code: string): string {
  return [
    `curl -s ${issuer}/token \\`,
    `  -d grant_type=authorization_code \\`,
    `  -d client_id=${DEMO_CLIENT_ID} \\`,
    `  -d redirect_uri=${encodeURIComponent(demo.redirectUri)} \\`,
    `  -d code_verifier=${demo.codeVerifier} \\`,
    `  -d code=${code}`,
  ].join('\n');
}
