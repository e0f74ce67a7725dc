/**
 * oidc-provider configuration: which protocol features are on, how long things live, and
 * the hooks that connect it to Veil's stores, accounts and pages. Behaviour is chosen here,
 * in one place, rather than by flags spread through the code.
 */
import { errors, type Adapter, type Configuration, type FindAccount, type KoaContextWithOIDC } from 'oidc-provider';
import type { VeilConfig } from '../config.js';
import type { SigningJwk } from '../crypto/keys.js';
import type { Views } from '../interactions/views.js';
import { ALLOWED_RESOURCES } from '../clients/client-service.js';
import { isResourceScopes, RESOURCE_SCOPES } from '../clients/api-scopes.js';
import { EXCHANGE_FROM, TOKEN_EXCHANGE_GRANT_TYPE } from '../clients/token-exchange-policy.js';
import type { ResourceServerRegistry } from '../resource-registry/registry.js';
import type { GrantRepository } from '../store/grants.js';
import { jwksPolicy } from '../http/remote-jwks.js';
import { outboundFetch } from '../http/safe-fetch.js';
import { toProtocolError } from './errors.js';
import { INTROSPECTION_PATH, REVOCATION_PATH } from './token-endpoints.js';
import { assertionAudienceProblem, CLIENT_AUTH_SIGNING_ALGS, CLOCK_TOLERANCE_SECONDS } from './client-assertion-rules.js';
import { consentPolicy } from './consent-policy.js';
import { OIDC_SCOPES } from './oidc-scopes.js';
import { HE_JWKS_PATH } from '../he/he-jwks-route.js';
import { INTROSPECTION_JWT_METADATA } from './introspection-jwt.js';
import type { PairwiseSubjects } from './pairwise-subjects.js';
import type { ResourcePolicy } from './resource-indicators.js';
import { DEFAULT_AUTH_METHOD, TOKEN_ENDPOINT_AUTH_METHODS } from '../clients/auth-methods.js';
import type { TokenStatuses } from '../status-list/token-statuses.js';
import { withTokenStatus } from './token-status.js';
import { DPOP_SIGNING_ALGS } from './dpop-policy.js';

export interface ConfigurationDeps {
  config: VeilConfig;
  adapter: (model: string) => Adapter;
  findAccount: FindAccount;
  signingKeys: SigningJwk[];
  cookieKeys: string[];
  grants: GrantRepository;
  registry: ResourceServerRegistry;
  /** Resource indicators, and the checks run before a code or refresh token is consumed. */
  resources: ResourcePolicy;
  views: Views;
  /** Pairwise `sub` values for clients with subject_type "pairwise". */
  subjects: PairwiseSubjects;
  /** Token status lists: each access token for an API gets a slot (token-status.ts). */
  statuses?: Pick<TokenStatuses, 'assign'> | undefined;
}

export function buildConfiguration(deps: ConfigurationDeps): Configuration {
  const { config, views } = deps;
  const ttl = config.ttl;
  const { resources } = deps;

  return {
    adapter: deps.adapter,
    findAccount: async (ctx, sub, token) => {
      try {
        return await deps.findAccount(ctx, sub, token);
      } catch (err) {
        throw toProtocolError(err);
      }
    },
    jwks: { keys: deps.signingKeys },
    cookies: {
      keys: deps.cookieKeys,
      long: { httpOnly: true, sameSite: 'lax', signed: true },
      short: { httpOnly: true, sameSite: 'lax', signed: true },
    },
    scopes: [...OIDC_SCOPES],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    responseTypes: ['code'],
    clientAuthMethods: [...TOKEN_ENDPOINT_AUTH_METHODS],
    // private_key_jwt: the same rules as Veil's own endpoints (client-assertion-rules.ts).
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
    enabledJWA: { clientAuthSigningAlgValues: [...CLIENT_AUTH_SIGNING_ALGS], dPoPSigningAlgValues: [...DPOP_SIGNING_ALGS] },
    assertJwtClientAuthClaimsAndHeader: async (ctx, claims) => {
      const problem = assertionAudienceProblem(ctx.oidc.issuer, claims.aud);
      if (problem) throw new errors.InvalidClientAuth(problem);
    },
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: DEFAULT_AUTH_METHOD,
      id_token_signed_response_alg: 'RS256',
    },
    // PKCE (S256, the only method oidc-provider 9 supports) for every authorization code flow:
    // required for public clients by RFC 9700 and harmless for confidential ones.
    pkce: { required: () => true },
    formats: {
      // An access token for a resource server leaves as a sealed JWT whose `jti` is this id:
      // 128 bits are plenty for a unique id and keep every token shorter. Opaque tokens (refresh,
      // userinfo-only access tokens) are bearer values themselves and keep 256 bits.
      bitsOfOpaqueRandomness: (_ctx, token) => ((token as { resourceServer?: unknown }).resourceServer ? 128 : 256),
    },
    // Whatever oidc-provider fetches (clients' jwks_uri) obeys Veil's SSRF rules: no private
    // addresses unless RESOURCE_JWKS_ALLOW_PRIVATE, no redirects, 64 KiB, 4 s (http/safe-fetch.ts).
    fetch: outboundFetch(jwksPolicy(config)),
    // Refresh tokens always rotate, but at the token edge (token-edge.ts), in the same store step
    // as the access token issued with them; here only whatever could still refuse the refresh
    // (resource, scopes, the resource server's key) runs, before anything is written (resource-indicators.ts).
    rotateRefreshToken: async (ctx) => {
      await resources.beforeRefresh(ctx);
      return false;
    },
    allowOmittingSingleRegisteredRedirectUri: false,
    extraClientMetadata: {
      properties: [ALLOWED_RESOURCES, RESOURCE_SCOPES, EXCHANGE_FROM],
      validator: (_ctx, key, value, metadata) => {
        if (value === undefined) return;
        // Resource identifiers: which APIs the client may ask for, and (token exchange) whose tokens it may exchange.
        if ((key === ALLOWED_RESOURCES || key === EXCHANGE_FROM) && (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && URL.canParse(v)))) {
          throw new errors.InvalidClientMetadata(`${key} must be an array of absolute URIs`);
        }
        if (key === RESOURCE_SCOPES) {
          // { "<resource>": ["scope", ...] }, and only for resources the client may ask for.
          const allowed = (metadata as Record<string, unknown>)[ALLOWED_RESOURCES];
          if (!isResourceScopes(value) || !Object.keys(value).every((uri) => Array.isArray(allowed) && allowed.includes(uri))) {
            throw new errors.InvalidClientMetadata(`${RESOURCE_SCOPES} must map resources in ${ALLOWED_RESOURCES} to arrays of scope tokens`);
          }
        }
      },
    },
    // RFC 9068 §2.2.1: the authentication event travels with tokens issued for a user; the
    // resource server's allowed user claims too (sealed-tokens.ts keeps them out of storage).
    extraTokenClaims: withTokenStatus(deps.statuses, async (ctx, token) => {
      // Token exchange settles its token's claims itself (token-exchange.ts): the subject's
      // authentication event and `act`, and no user claims.
      if ((token as { gty?: unknown }).gty === TOKEN_EXCHANGE_GRANT_TYPE) return (token as { extra?: Record<string, unknown> }).extra;
      const aud = (token as { aud?: unknown }).aud;
      const accountId = (token as { accountId?: string }).accountId;
      if (typeof aud !== 'string' || !accountId) return undefined;
      const source = (ctx.oidc.entities.AuthorizationCode ?? ctx.oidc.entities.RefreshToken) as { authTime?: number; acr?: string; amr?: string[] } | undefined;
      const claims: Record<string, unknown> = { auth_time: source?.authTime, acr: source?.acr, amr: source?.amr };
      try {
        const rs = await deps.registry.find(aud);
        const grantId = (token as { grantId?: string }).grantId;
        // Only the claims the user consented to give this API (consent-policy.ts).
        const consented = rs?.claims.length && grantId ? await deps.grants.apiConsent(grantId, aud) : undefined;
        const names = rs?.claims.filter((name) => consented?.includes(name)) ?? [];
        if (names.length) {
          const account = await deps.findAccount(ctx, accountId);
          const released: Record<string, unknown> = (await account?.claims('userinfo', '', {}, [])) ?? {};
          for (const name of names) claims[name] = released[name];
        }
      } catch (err) {
        throw toProtocolError(err);
      }
      return claims;
    }),
    // Introspection and revocation are Veil's own endpoints (src/oidc/introspection.ts,
    // revocation.ts): oidc-provider cannot introspect or revoke structured tokens.
    discovery: {
      introspection_endpoint: `${config.issuer}${INTROSPECTION_PATH}`,
      introspection_endpoint_auth_methods_supported: TOKEN_ENDPOINT_AUTH_METHODS,
      revocation_endpoint: `${config.issuer}${REVOCATION_PATH}`,
      revocation_endpoint_auth_methods_supported: TOKEN_ENDPOINT_AUTH_METHODS,
      // The public Paillier keys of confidential claims (src/he/he-jwks-route.ts).
      he_jwks_uri: `${config.issuer}${HE_JWKS_PATH}`,
      ...INTROSPECTION_JWT_METADATA,
    },
    // OpenID Connect Core §8: a client registered with subject_type "pairwise" sees a `sub` of its
    // sector's own in ID tokens and userinfo (pairwise-subjects.ts); access tokens carry their API's.
    subjectTypes: ['public', 'pairwise'],
    pairwiseIdentifier: async (_ctx, accountId, client) => deps.subjects.forSector(accountId, String(client.sectorIdentifier)),
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // RFC 9449: a token request with a DPoP proof gets tokens bound to its key (cnf.jkt, sealed by
      // token-claims.ts), public clients' refresh tokens too; `dpop_bound_access_tokens` clients
      // must send one. No server nonce (§8): proofs are fresh by their iat window and single use
      // at the token endpoint through ReplayDetection (adapter.ts).
      dPoP: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      userinfo: { enabled: true },
      resourceIndicators: resources.feature,
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          views.send(ctx, 'logout', 'Sign out', {
            formHtml: form,
            clientName: ctx.oidc.client?.clientName,
          });
        },
        postLogoutSuccessSource: async (ctx) => {
          views.send(ctx, 'logged-out', 'Signed out', { clientName: ctx.oidc.client?.clientName });
        },
      },
    },
    // Browsers may call the token and userinfo endpoints only from a registered redirect origin.
    clientBasedCORS: (_ctx, origin, client) => origin !== 'null' && client.redirectUris!.some((uri) => URL.parse(uri)?.origin === origin),
    // Consent is kept in PostgreSQL: a later visit (new session, new device) finds it again.
    loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
      const fromSession = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session!.grantIdFor(ctx.oidc.client!.clientId);
      try {
        const grantId = fromSession ?? (await deps.grants.findLatestFor(ctx.oidc.session!.accountId!, ctx.oidc.client!.clientId));
        return grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
      } catch (err) {
        throw toProtocolError(err);
      }
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
      // oidc-provider's prompts, and consent to every API that receives user claims.
      policy: consentPolicy(deps.registry, deps.grants),
    },
    renderError: async (ctx, out, error) => {
      const status = (error as { statusCode?: number }).statusCode ?? 500;
      views.send(
        ctx,
        'error',
        status === 503 ? 'Temporarily unavailable' : 'Something went wrong',
        { status, error: out.error, description: out.error_description, hint: hintFor(out.error) },
        status,
      );
    },
    ttl: {
      AccessToken: (_ctx, token) => stampLifetime(token, token.resourceServer?.accessTokenTTL ?? ttl.accessToken),
      ClientCredentials: (_ctx, token) => stampLifetime(token, token.resourceServer?.accessTokenTTL ?? ttl.accessToken),
      AuthorizationCode: ttl.authorizationCode,
      IdToken: ttl.idToken,
      RefreshToken: ttl.refreshToken,
      Session: ttl.session,
      Interaction: ttl.interaction,
      Grant: ttl.grant,
    },
  };
}

/**
 * Fixes an access token's `iat` and `exp` on the model when its lifetime is decided (just before
 * oidc-provider stores it), so the token edge seals exactly the times the stored record holds.
 */
function stampLifetime(token: { iat?: number; exp?: number }, lifetime: number): number {
  const now = Math.floor(Date.now() / 1000);
  token.iat ??= now;
  token.exp ??= now + lifetime;
  return lifetime;
}

function hintFor(error: string): string {
  switch (error) {
    case 'temporarily_unavailable':
      return 'Please try again in a moment.';
    case 'invalid_client':
    case 'invalid_redirect_uri':
    case 'invalid_request':
      return 'The application sent an invalid request. Return to the application and try again, or contact its developer.';
    default:
      return 'Return to the application and start again.';
  }
}
