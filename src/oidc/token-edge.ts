/**
 * The token edge: the one place an access token for a resource server is sealed, for every
 * grant the token endpoint serves, including any registered later with `registerGrantType`.
 * oidc-provider issues and stores the token as an opaque id (its `jti`); once it has answered,
 * this reads the issued model from `ctx.oidc.entities` (or, for a grant that registered none,
 * the stored record), seals it, and commits the response's writes in one store step:
 *
 *   refresh_token grant   consume the presented refresh token + store its successor + index the
 *                         access token by the sealed value's hash    (RefreshRotationStore)
 *   every other grant     index the access token by the sealed value's hash (IssuedTokenIndex)
 *
 * then swaps the sealed value (and the successor refresh token) into the response. Refresh
 * tokens are rotated here rather than by oidc-provider (configuration.ts turns its rotation off
 * after the checks that may refuse a refresh), so that the rotation and the access token it
 * carries land together. A resource-bound token never leaves as its bare id: if anything here
 * fails, the response is an OAuth error instead.
 */
import type { Middleware } from 'koa';
import type { AdapterPayload, KoaContextWithOIDC } from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { IssuedTokenIndex, RefreshRotationStore, SealedModel } from '../store/short-lived-store.js';
import { sendOAuthError } from './errors.js';
import type { LiveAudiences } from './live-audiences.js';
import type { Sealer } from './sealed-tokens.js';
import { COMPANION_PARAMETER } from './he-claims.js';

export interface TokenEdgeDeps {
  /** The sealer for the current signing keys. */
  sealer: Pick<Sealer, 'seal'>;
  store: IssuedTokenIndex & RefreshRotationStore;
  /** Notes until when tokens for each audience may be live (an API's subject mode change checks it). */
  liveAudiences: Pick<LiveAudiences, 'note'>;
  /** A presented refresh token was redeemed twice at once: revoke its grant (RFC 9700 §4.14.2). */
  onReuse(event: { grantId: string; clientId: string | undefined }): Promise<void>;
}

/** An oidc-provider model as the edge reads it: its payload fields, as `IN_PAYLOAD` names them. */
interface IssuedModel {
  jti?: string;
  kind?: string;
  constructor: { IN_PAYLOAD?: string[] };
  [field: string]: unknown;
}

interface TokenResponse {
  access_token?: unknown;
  refresh_token?: unknown;
  [field: string]: unknown;
}

const SEALED_ENTITIES: readonly SealedModel[] = ['AccessToken', 'ClientCredentials'];

/** The model's payload, as oidc-provider stores it (its own `pickPayload`), from the fields it declares. */
function payloadOf(model: IssuedModel): AdapterPayload {
  const payload: Record<string, unknown> = {};
  for (const field of model.constructor.IN_PAYLOAD ?? []) if (model[field] !== undefined) payload[field] = model[field];
  return payload;
}

/** The access token this response carries: its model from the request, else its stored record. */
async function issuedToken(ctx: KoaContextWithOIDC, jti: string, store: IssuedTokenIndex): Promise<{ model: SealedModel; payload: AdapterPayload } | undefined> {
  for (const model of SEALED_ENTITIES) {
    const entity = ctx.oidc.entities[model] as unknown as IssuedModel | undefined;
    if (entity?.jti !== jti) continue;
    const payload = payloadOf(entity);
    // Times are stamped when the lifetime is decided (configuration.ts `ttl`); without them, the record has them.
    if (typeof payload.iat === 'number' && typeof payload.exp === 'number') return { model, payload };
  }
  const record = await store.findIssuedByJti(jti);
  return record && { model: record.model as SealedModel, payload: record.payload };
}

/** The refresh token that replaces `presented`: everything it carried, a new id and lifetime, one more rotation. */
async function successorOf(ctx: KoaContextWithOIDC, presented: IssuedModel): Promise<{ value: string; payload: AdapterPayload; expiresIn: number }> {
  const fields = payloadOf(presented) as Record<string, unknown>;
  for (const field of ['jti', 'iat', 'exp', 'consumed', 'kind']) delete fields[field];
  const gty = typeof fields.gty === 'string' && !fields.gty.endsWith('refresh_token') ? `${fields.gty} refresh_token` : fields.gty;
  const successor = new ctx.oidc.provider.RefreshToken({
    ...fields,
    gty,
    rotations: typeof fields.rotations === 'number' ? fields.rotations + 1 : 1,
    client: ctx.oidc.client,
  } as never) as unknown as { jti?: string; generateTokenId(): string; getValueAndPayload(): Promise<{ value: string; payload: AdapterPayload }> };
  // What save() would do first; the payload is then stored by the rotation, not by the adapter.
  successor.jti = successor.generateTokenId();
  const { value, payload } = await successor.getValueAndPayload();
  return { value, payload, expiresIn: Number(payload.exp) - Number(payload.iat) };
}

export function tokenEdge(deps: TokenEdgeDeps): Middleware {
  return async (ctx, next) => {
    await next();
    const oidcCtx = ctx as unknown as KoaContextWithOIDC;
    if (oidcCtx.oidc?.route !== 'token' || ctx.status !== 200) return;
    const body = ctx.body as TokenResponse | undefined;
    if (!body || typeof body !== 'object' || typeof body.access_token !== 'string') return;
    try {
      await finishTokenResponse(oidcCtx, body as TokenResponse & { access_token: string }, deps);
    } catch (err) {
      sendOAuthError(ctx, err);
    }
  };
}

async function finishTokenResponse(ctx: KoaContextWithOIDC, body: TokenResponse & { access_token: string }, deps: TokenEdgeDeps): Promise<void> {
  const jti = body.access_token;
  const issued = await issuedToken(ctx, jti, deps.store);
  const sealed = issued ? await deps.sealer.seal(jti, issued.payload) : undefined;
  // Before the token is stored: no token for an audience outlives its marker.
  if (sealed && issued) await deps.liveAudiences.note(String(issued.payload.aud), Number(issued.payload.exp));
  const accessToken =
    sealed && issued
      ? {
          model: issued.model,
          jti,
          grantId: typeof issued.payload.grantId === 'string' ? issued.payload.grantId : undefined,
          tokenHash: sealed.hash,
          expiresIn: Number(issued.payload.exp) - Math.floor(Date.now() / 1000),
        }
      : undefined;

  const presented = ctx.oidc.params?.grant_type === 'refresh_token' ? (ctx.oidc.entities.RefreshToken as unknown as IssuedModel | undefined) : undefined;
  // oidc-provider rotates only when configured to (then RotatedRefreshToken is set); Veil rotates here.
  if (presented?.jti && !ctx.oidc.entities.RotatedRefreshToken) {
    const successor = await successorOf(ctx, presented);
    const outcome = await deps.store.rotateRefreshToken({
      consumed: presented.jti,
      successor: { id: successor.value, payload: successor.payload, expiresIn: successor.expiresIn },
      accessToken,
    });
    if (outcome === 'grant-revoked') throw new errors.InvalidGrant('grant request is invalid');
    // Expired (or deleted) since oidc-provider read it: refused, but nobody redeemed it twice.
    if (outcome === 'gone') throw new errors.InvalidGrant('refresh token is expired');
    if (outcome === 'reused') {
      // Redeemed twice at once: one of the two holders may be an attacker, so neither keeps anything.
      const grantId = String(presented.grantId);
      await deps.onReuse({ grantId, clientId: ctx.oidc.client?.clientId });
      throw new errors.InvalidGrant('refresh token already used');
    }
    body.refresh_token = successor.value;
  } else if (accessToken) {
    await deps.store.indexIssued(accessToken);
  }
  if (sealed) body.access_token = sealed.value;
  // The same ciphertexts for intermediaries that are not the audience (he-claims.ts).
  if (sealed?.companion) body[COMPANION_PARAMETER] = sealed.companion;
}
