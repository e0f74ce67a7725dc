/**
 * Status List Tokens (draft-ietf-oauth-status-list §5.1): a list's bytes compressed into
 * `status_list` and signed as a `statuslist+jwt` with Veil's access-token key, so a verifier
 * checks it with the keys it already has for access tokens. A process renders each list at most
 * once per `ttl`: the signed token is kept for `ttl` and concurrent requests share one render,
 * however many verifiers ask.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { signJwt, type SigningKey } from '../crypto/sealer.js';
import { compressListAsync } from './format.js';
import { STATUS_LIST_TYP, statusListUri } from './options.js';
import type { StatusListStore } from './store.js';

export interface StatusListRendererOptions {
  store: Pick<StatusListStore, 'read'>;
  /** Veil's active access-token key (the sealer's): its `kid` is in the JWKS verifiers already use. */
  signer: SigningKey;
  issuer: string;
  ttlSeconds: number;
  expSeconds: number;
  /** Milliseconds since the epoch; tests move it. */
  now?: () => number;
}

export interface RenderedStatusList {
  token: string;
  /** A strong validator for HTTP caches: the token's hash. */
  etag: string;
  /** When it was rendered (ms): `iat`, before rounding down. */
  renderedAt: number;
  /** Until when it is served (ms): `renderedAt` + ttl. */
  freshUntil: number;
}

/** Lists kept rendered at once per process: Veil has a handful live (one current, the retired ones until their tokens expire). */
const MAX_CACHED_LISTS = 256;

export class StatusListRenderer {
  readonly #options: StatusListRendererOptions;
  readonly #now: () => number;
  readonly #rendered = new LRUCache<string, RenderedStatusList>({ max: MAX_CACHED_LISTS });
  readonly #inFlight = new Map<string, Promise<RenderedStatusList | undefined>>();
  /** Renders done by this instance (the bench and tests read it). */
  renders = 0;

  constructor(options: StatusListRendererOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** The `uri` a token of `list` carries; the list's `sub`. */
  uri(list: string): string {
    return statusListUri(this.#options.issuer, list);
  }

  /** The list's signed token, rendered now or within the last `ttl`; undefined for a list that does not exist. */
  async get(list: string): Promise<RenderedStatusList | undefined> {
    const cached = this.#rendered.get(list);
    if (cached && cached.freshUntil > this.#now()) return cached;
    let pending = this.#inFlight.get(list);
    if (!pending) {
      pending = this.#render(list).finally(() => this.#inFlight.delete(list));
      this.#inFlight.set(list, pending);
    }
    return pending;
  }

  async #render(list: string): Promise<RenderedStatusList | undefined> {
    const { store, signer, issuer, ttlSeconds, expSeconds } = this.#options;
    const snapshot = await store.read(list);
    if (!snapshot) {
      this.#rendered.delete(list);
      return undefined;
    }
    const lst = await compressListAsync(snapshot.bytes);
    const renderedAt = this.#now();
    const iat = Math.floor(renderedAt / 1000);
    const claims = {
      iss: issuer,
      sub: this.uri(list),
      iat,
      exp: iat + expSeconds,
      ttl: ttlSeconds,
      status_list: { bits: snapshot.bits, lst },
    };
    const token = signJwt(claims, signer, STATUS_LIST_TYP);
    this.renders++;
    const rendered: RenderedStatusList = {
      token,
      etag: `"${createHash('sha256').update(token).digest('base64url').slice(0, 27)}"`,
      renderedAt,
      freshUntil: renderedAt + ttlSeconds * 1000,
    };
    this.#rendered.set(list, rendered);
    return rendered;
  }
}
