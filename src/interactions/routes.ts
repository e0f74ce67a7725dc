/**
 * The browser side of sign-in: login and consent pages for oidc-provider interactions.
 * Every request either finishes the interaction (303 back to oidc-provider) or renders a
 * page; failures render the error page, never a stack trace.
 */
import { Router } from '@koa/router';
import type { Context, Next } from 'koa';
import { errors, type InteractionResults, type Provider } from 'oidc-provider';
import { DEVICE_COOKIE, DEVICE_COOKIE_MAX_AGE_SECONDS } from '../abuse/device-cookie.js';
import type { LoginThrottle } from '../abuse/login-throttle.js';
import type { AccountService } from '../accounts/account-service.js';
import type { EventSink } from '../events/domain-events.js';
import { formBody } from '../http/body.js';
import type { Logger } from '../observability/logger.js';
import type { GrantRepository } from '../store/grants.js';
import type { ResourceServerRepository } from '../store/resource-servers.js';
import { describeApiScope, describeClaim, describeOidcScope } from './scope-descriptions.js';
import { sendErrorPage } from './error-page.js';
import { UNCONSENTED_APIS } from '../oidc/consent-policy.js';
import type { Views } from './views.js';

export interface InteractionDeps {
  provider: Provider;
  accounts: AccountService;
  resources: ResourceServerRepository;
  /** Where consent to the user claims an API receives is recorded (consent-policy.ts). */
  grants: Pick<GrantRepository, 'recordApiConsent'>;
  views: Views;
  logger: Logger;
  /** Asked before every password check; a lock answers exactly like a wrong password. */
  loginThrottle: LoginThrottle;
  /** Sign-in outcomes and consents (their audit rows, log lines and the login counter). */
  events: EventSink;
}

const LOGIN_FAILED = 'Invalid email or password.';
const MAX_FIELD_LENGTH = 1024;

type FormBody = Record<string, unknown>;

function field(body: FormBody, name: string): string {
  const value = body[name];
  return typeof value === 'string' ? value.slice(0, MAX_FIELD_LENGTH * 2) : '';
}

export function interactionRoutes(deps: InteractionDeps) {
  const { provider, views } = deps;
  const router = new Router({ prefix: '/interaction/:uid' });
  const form = formBody();

  async function finish(ctx: Context, result: InteractionResults, merge: boolean) {
    const redirectTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: merge });
    ctx.status = 303;
    ctx.redirect(redirectTo);
  }

  async function clientView(clientId: string) {
    const client = await provider.Client.find(clientId);
    if (!client) throw new errors.InvalidClient('client not found');
    return {
      name: client.clientName ?? client.clientId,
      logoUri: client.logoUri,
      clientUri: client.clientUri,
      policyUri: client.policyUri,
      tosUri: client.tosUri,
    };
  }

  function loginPage(ctx: Context, uid: string, client: { name: string }, extra: { email?: string; error?: string } = {}, status = 200) {
    views.send(
      ctx,
      'login',
      'Sign in',
      {
        action: `/interaction/${uid}/login`,
        abortAction: `/interaction/${uid}/abort`,
        client,
        ...extra,
      },
      status,
    );
  }

  router.get('/', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const client = await clientView(String(details.params.client_id));
    if (details.prompt.name === 'login') return loginPage(ctx, details.uid, client);
    if (details.prompt.name !== 'consent') throw new errors.InvalidRequest(`unsupported prompt ${details.prompt.name}`);

    const account = await deps.accounts.profile(details.session!.accountId);
    const promptDetails = details.prompt.details as {
      missingOIDCScope?: string[];
      missingResourceScopes?: Record<string, string[]>;
      [UNCONSENTED_APIS]?: string[];
    };
    // Each API this request names, under its own name: the scopes asked for it, and the user
    // claims every token for it carries (they ride in the sealed token whatever the scopes).
    const missing = promptDetails.missingResourceScopes ?? {};
    const requested = [details.params.resource, promptDetails[UNCONSENTED_APIS]].flat().filter((r): r is string => typeof r === 'string');
    const apis = (
      await Promise.all(
        [...new Set([...Object.keys(missing), ...requested])].map(async (identifier) => {
          const record = await deps.resources.find(identifier);
          return {
            identifier,
            name: record?.name ?? identifier,
            scopes: (missing[identifier] ?? []).map((name) => ({ name, description: describeApiScope(name) })),
            claims: (record?.claims ?? []).map((name) => ({ name, description: describeClaim(name) })),
          };
        }),
      )
    ).filter((api) => api.scopes.length > 0 || api.claims.length > 0);
    views.send(ctx, 'consent', 'Allow access', {
      action: `/interaction/${details.uid}/confirm`,
      abortAction: `/interaction/${details.uid}/abort`,
      client,
      account: { email: account?.email ?? '' },
      scopes: (promptDetails.missingOIDCScope ?? [])
        .filter((s) => s !== 'openid' || (promptDetails.missingOIDCScope ?? []).length === 1)
        .map((name) => ({ name, description: describeOidcScope(name) })),
      apis,
      previouslyGranted: Boolean(details.grantId),
    });
  });

  router.post('/login', form, async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.prompt.name !== 'login') throw new errors.InvalidRequest('this sign-in step is already complete');
    const body = (ctx.request.body ?? {}) as FormBody;
    const email = field(body, 'email').trim();
    // Plain (the JWS inside is its own integrity); Koa would otherwise ask for a `.sig` cookie.
    const device = ctx.cookies.get(DEVICE_COOKIE, { signed: false });
    const throttle = await deps.loginThrottle.check(email, ctx.ip, device);
    let accountId: string | undefined;
    try {
      accountId = throttle.allowed ? await deps.accounts.authenticate(email, field(body, 'password')) : undefined;
    } catch (err) {
      // The password was never judged (a store failed under it): the attempt guessed nothing.
      await deps.loginThrottle.abandon(email, ctx.ip, device);
      throw err;
    }
    const clientId = String(details.params.client_id);
    if (!accountId) {
      const client = await clientView(clientId);
      // A lock (this account from this address, or this address) or the account's progressive
      // delay: the same page as a wrong password either way, so neither is an oracle.
      await deps.events.emit(
        throttle.allowed
          ? { type: 'login.failed', clientId, interaction: details.uid, locked: await deps.loginThrottle.recordFailure(email, ctx.ip, device) }
          : { type: 'login.locked', clientId, interaction: details.uid, scope: throttle.scope, reason: throttle.reason },
      );
      return loginPage(ctx, details.uid, client, { email: email.slice(0, 320), error: LOGIN_FAILED }, 401);
    }
    await deps.loginThrottle.recordSuccess(email, ctx.ip, device);
    await deps.events.emit({ type: 'login.succeeded', accountId, clientId });
    await rememberDevice(ctx, email, device);
    await finish(ctx, { login: { accountId } }, false);
  });

  /** Marks this browser as one `email` signed in with (device-cookie.ts): it then skips the account's delay. */
  async function rememberDevice(ctx: Context, email: string, current: string | undefined) {
    const secure = provider.issuer.startsWith('https:');
    // Behind a TLS proxy that is not trusted (TRUST_PROXY off), Koa sees http and would refuse a
    // Secure cookie; the issuer is what the browser talks to.
    if (secure) ctx.cookies.secure = true;
    ctx.cookies.set(DEVICE_COOKIE, await deps.loginThrottle.rememberDevice(email, current), {
      signed: false,
      httpOnly: true,
      sameSite: 'lax',
      secure,
      path: '/interaction',
      maxAge: DEVICE_COOKIE_MAX_AGE_SECONDS * 1000,
      overwrite: true,
    });
  }

  router.post('/confirm', form, async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.prompt.name !== 'consent') throw new errors.InvalidRequest('this consent step is already complete');
    const {
      missingOIDCScope,
      missingOIDCClaims,
      missingResourceScopes,
      [UNCONSENTED_APIS]: unconsentedApis,
    } = details.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
      [UNCONSENTED_APIS]?: string[];
    };
    const accountId = details.session!.accountId;
    const clientId = String(details.params.client_id);
    const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ?? new provider.Grant({ accountId, clientId });
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    // The user claims each API on the page receives were shown: that is the consent to them.
    for (const indicator of new Set([...(unconsentedApis ?? []), ...Object.keys(missingResourceScopes ?? {})])) {
      const claims = (await deps.resources.find(indicator))?.claims ?? [];
      if (claims.length) await deps.grants.recordApiConsent(grantId, indicator, claims);
    }
    await deps.events.emit({
      type: 'consent.granted',
      accountId,
      clientId,
      grantId,
      scopes: missingOIDCScope ?? [],
      claims: missingOIDCClaims,
      resources: missingResourceScopes ?? {},
    });
    await finish(ctx, { consent: details.grantId ? {} : { grantId } }, true);
  });

  router.post('/abort', form, async (ctx) => {
    await provider.interactionDetails(ctx.req, ctx.res);
    await finish(ctx, { error: 'access_denied', error_description: 'End-User aborted interaction' }, false);
  });

  return [interactionErrors(deps), router.routes(), router.allowedMethods({ throw: true })];
}

/** Renders anything thrown by the interaction routes as the HTML error page. */
function interactionErrors({ views, logger }: InteractionDeps) {
  return async (ctx: Context, next: Next) => {
    if (!ctx.path.startsWith('/interaction/')) {
      await next();
      return;
    }
    try {
      await next();
    } catch (err) {
      sendErrorPage(ctx, views, logger, err, 'interaction failed', 'Return to the application and start again.');
    }
  };
}
