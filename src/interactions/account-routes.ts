/**
 * Self-service "connected apps": a signed-in user sees the apps they have granted access to
 * (`GET /account`) and withdraws a grant (`POST /account/apps/:clientId/withdraw`), which
 * deletes the grant rows and revokes every token of them at once (`GrantRevocation.withdraw`).
 *
 * The user is whoever oidc-provider's browser session says; there is no separate sign-in here.
 * The withdrawal form carries a per-session anti-CSRF token (HMAC of the session id) and a
 * request from another origin is refused, on top of the session cookie being `SameSite=Lax`.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { Router } from '@koa/router';
import type { Context, Next } from 'koa';
import type { AdapterPayload, Provider } from 'oidc-provider';
import type { AccountService } from '../accounts/account-service.js';
import type { EventSink } from '../events/domain-events.js';
import { formBody } from '../http/body.js';
import type { Logger } from '../observability/logger.js';
import type { GrantRevocation } from '../oidc/grant-revocation.js';
import type { GrantRepository } from '../store/grants.js';
import type { ResourceServerRepository } from '../store/resource-servers.js';
import { describeApiScope, describeOidcScope } from './scope-descriptions.js';
import { sendErrorPage } from './error-page.js';
import type { Views } from './views.js';

export const ACCOUNT_PATH = '/account';
export const CSRF_FIELD = 'csrf';

export interface AccountRouteDeps {
  provider: Provider;
  issuer: string;
  accounts: AccountService;
  grants: GrantRepository;
  grantRevocation: Pick<GrantRevocation, 'withdraw'>;
  resources: ResourceServerRepository;
  views: Views;
  logger: Logger;
  /** Keys the anti-CSRF tokens (a subkey is derived); e.g. the first cookie key. */
  csrfSecret: string;
  /** `consent.withdrawn` with actor "user". */
  events: EventSink;
}

/** Anti-CSRF tokens bound to the browser session: HMAC-SHA256 of the session id. */
export class SessionCsrf {
  readonly #key: Buffer;

  constructor(secret: string) {
    // A subkey of its own, so the secret (a cookie key) is never used directly for this.
    this.#key = Buffer.from(hkdfSync('sha256', secret, '', 'veil account csrf', 32));
  }

  token(sessionId: string): string {
    return createHmac('sha256', this.#key).update(`account\0${sessionId}`).digest('base64url');
  }

  verify(sessionId: string, presented: unknown): boolean {
    if (typeof presented !== 'string' || presented.length > 128) return false;
    const expected = Buffer.from(this.token(sessionId));
    const given = Buffer.from(presented);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}

interface ScopeView {
  name: string;
  description: string;
}

/** What a grant allows: granted minus rejected, as oidc-provider's Grant model computes it. */
export function grantedScopes(payload: AdapterPayload): { openid: string[]; resources: Record<string, string[]> } {
  const split = (s: unknown) => (typeof s === 'string' ? s.split(' ').filter(Boolean) : []);
  const p = payload as {
    openid?: { scope?: string };
    resources?: Record<string, string>;
    rejected?: { openid?: { scope?: string }; resources?: Record<string, string> };
  };
  const rejectedOidc = new Set(split(p.rejected?.openid?.scope).filter((s) => s !== 'openid'));
  const openid = split(p.openid?.scope).filter((s) => !rejectedOidc.has(s));
  const resources: Record<string, string[]> = {};
  for (const [identifier, scope] of Object.entries(p.resources ?? {})) {
    const rejected = new Set(split(p.rejected?.resources?.[identifier]));
    resources[identifier] = split(scope).filter((s) => !rejected.has(s));
  }
  return { openid, resources };
}

const DATE_FORMAT = new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' });

function isAccountPath(path: string): boolean {
  return path === ACCOUNT_PATH || path.startsWith(`${ACCOUNT_PATH}/`);
}

export function accountRoutes(deps: AccountRouteDeps) {
  const { provider, views } = deps;
  const csrf = new SessionCsrf(deps.csrfSecret);
  const issuerOrigin = new URL(deps.issuer).origin;
  const router = new Router();
  const form = formBody();

  /** The signed-in user of this browser, or undefined (no session, signed out, account disabled). */
  async function signedIn(ctx: Context) {
    const session = await provider.Session.get(ctx);
    if (!session.accountId) return undefined;
    const account = await deps.accounts.profile(session.accountId);
    return account ? { session, account } : undefined;
  }

  /**
   * The connected-apps page itself. Its referrer policy is `same-origin`, not the other pages'
   * `no-referrer`: under `no-referrer` browsers send `Origin: null` with the form's POST, which
   * the Origin check has to refuse. Nothing secret is in the page's URL, and it links nowhere.
   */
  function appsPage(ctx: Context, data: Record<string, unknown>) {
    views.send(ctx, 'account', 'Connected apps', { ...data, signedIn: true, referrerPolicy: 'same-origin' });
    ctx.set('Referrer-Policy', 'same-origin');
  }

  function notSignedIn(ctx: Context) {
    views.send(ctx, 'account', 'Connected apps', { signedIn: false }, 401);
  }

  function refused(ctx: Context, description: string) {
    views.send(
      ctx,
      'error',
      'Request refused',
      {
        status: 403,
        error: 'access_denied',
        description,
        hint: 'Open your connected apps again and retry from there.',
      },
      403,
    );
  }

  async function clientName(clientId: string): Promise<string> {
    const client = await provider.Client.find(clientId);
    return client?.clientName ?? clientId;
  }

  /** Only for a client that exists: the query string is anyone's to write. */
  async function knownClientName(clientId: string): Promise<string | undefined> {
    const client = await provider.Client.find(clientId);
    return client ? (client.clientName ?? clientId) : undefined;
  }

  async function resourceName(identifier: string): Promise<string> {
    return (await deps.resources.find(identifier))?.name ?? identifier;
  }

  router.get(ACCOUNT_PATH, async (ctx) => {
    const user = await signedIn(ctx);
    if (!user) return notSignedIn(ctx);
    const rows = await deps.grants.listFor(user.account.id);

    // One entry per app: an account may hold several grants to one client (other devices).
    const byClient = new Map<string, typeof rows>();
    for (const row of rows) byClient.set(row.clientId, [...(byClient.get(row.clientId) ?? []), row]);
    const apps = await Promise.all(
      [...byClient].map(async ([clientId, grants], index) => {
        const openid = new Set<string>();
        const resources = new Map<string, Set<string>>();
        for (const g of grants) {
          const granted = grantedScopes(g.payload);
          for (const s of granted.openid) openid.add(s);
          for (const [identifier, scopes] of Object.entries(granted.resources)) {
            const set = resources.get(identifier) ?? new Set<string>();
            for (const s of scopes) set.add(s);
            resources.set(identifier, set);
          }
        }
        const since = new Date(Math.min(...grants.map((g) => g.createdAt.getTime())));
        // As on the consent page: "openid" alone is worth showing, beside others it is noise.
        const shown = [...openid].filter((s) => s !== 'openid' || openid.size === 1);
        return {
          clientId,
          name: await clientName(clientId),
          headingId: `app-${index + 1}`,
          since: since.toISOString(),
          sinceText: DATE_FORMAT.format(since),
          action: `${ACCOUNT_PATH}/apps/${encodeURIComponent(clientId)}/withdraw`,
          scopes: shown.map((name): ScopeView => ({ name, description: describeOidcScope(name) })),
          apis: await Promise.all(
            [...resources].map(async ([identifier, scopes]) => ({
              identifier,
              name: await resourceName(identifier),
              scopes: [...scopes].map((name): ScopeView => ({ name, description: describeApiScope(name) })),
            })),
          ),
        };
      }),
    );

    // The confirmation after a withdrawal, shown only when it is true (the app is gone).
    const removedId = typeof ctx.query.removed === 'string' ? ctx.query.removed.slice(0, 256) : undefined;
    const removed = removedId && !byClient.has(removedId) ? await knownClientName(removedId) : undefined;

    appsPage(ctx, {
      account: { email: user.account.email },
      apps,
      csrf: csrf.token(user.session.jti),
      csrfField: CSRF_FIELD,
      removed,
    });
  });

  router.post(`${ACCOUNT_PATH}/apps/:clientId/withdraw`, form, async (ctx) => {
    const origin = ctx.get('origin');
    if (origin && origin !== issuerOrigin) return refused(ctx, 'This request came from another site.');
    const user = await signedIn(ctx);
    if (!user) return notSignedIn(ctx);
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    if (!csrf.verify(user.session.jti, body[CSRF_FIELD])) return refused(ctx, 'This form has expired or did not come from this page.');

    const accountId = user.account.id;
    const clientId = ctx.params.clientId!;
    const withdrawn = await deps.grantRevocation.withdraw(accountId, clientId);
    // The session may still name the deleted grant; oidc-provider then finds no grant and asks
    // for consent again (loadExistingGrant answers undefined), so the session is left alone.
    if (withdrawn > 0) await deps.events.emit({ type: 'consent.withdrawn', accountId, clientId, actor: 'user', grants: withdrawn });
    ctx.status = 303;
    ctx.redirect(withdrawn > 0 ? `${ACCOUNT_PATH}?removed=${encodeURIComponent(clientId)}` : ACCOUNT_PATH);
  });

  return [accountErrors(deps), router.routes(), router.allowedMethods({ throw: true })];
}

/** Renders anything thrown under /account as the HTML error page. */
function accountErrors({ views, logger }: Pick<AccountRouteDeps, 'views' | 'logger'>) {
  return async (ctx: Context, next: Next) => {
    if (!isAccountPath(ctx.path)) {
      await next();
      return;
    }
    try {
      await next();
    } catch (err) {
      sendErrorPage(ctx, views, logger, err, 'account page failed', 'Open your connected apps again and retry from there.');
    }
  };
}
