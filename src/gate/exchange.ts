/**
 * RFC 8693 token exchange at Veil's token endpoint, for routes that pass a token re-sealed to an
 * internal service. The gate authenticates as its own client (client_secret_basic) and presents
 * the incoming sealed token as the subject; Veil answers with a token sealed to the route's
 * `exchange.resource` that the gate passes on without opening.
 *
 * Exchanged tokens are cached per (SHA-256 of the subject token, route) until shortly before they
 * expire, in a bounded LRU, so a warm cache makes no call; concurrent requests for the same pair
 * share one call. Veil unreachable or answering 5xx is `unavailable` (the gate answers 503, fail
 * closed); `invalid_grant` means the subject token is no longer good (revoked, expired); any other
 * refusal is the gate's configuration at Veil (client, resource, scope allow-list).
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** Longest accepted exchanged token: Veil's sealed tokens are about 1 KB. */
const MAX_TOKEN_LENGTH = 8192;
const DEFAULT_TIMEOUT_MS = 5000;

export type ExchangeResult =
  | { ok: true; accessToken: string; cached: boolean }
  /** `invalid_grant`: the subject token is not good for exchange (revoked, expired, another audience). */
  | { ok: false; kind: 'subject_refused'; error: string }
  /** `invalid_scope`: the route asks for more than the subject token carries. */
  | { ok: false; kind: 'scope_refused'; error: string }
  /** Any other OAuth error: the gate's client, its allow-list or the resource at Veil. */
  | { ok: false; kind: 'misconfigured'; error: string }
  /** Unreachable, timeout, 5xx or an answer that is not a token response. */
  | { ok: false; kind: 'unavailable'; error: string };

export type ExchangeOutcome = 'issued' | 'cached' | 'subject_refused' | 'scope_refused' | 'misconfigured' | 'unavailable';

export interface TokenExchangerOptions {
  issuer: string;
  /** Default: the issuer's discovery document's `token_endpoint`. */
  tokenEndpoint?: string;
  clientId: string;
  clientSecret: string;
  /** Most exchanged tokens remembered. Default 10000. */
  maxEntries?: number;
  timeoutMs?: number;
  /** Told every outcome, cache hits included (metrics). */
  onOutcome?: (outcome: ExchangeOutcome) => void;
}

export interface ExchangeTarget {
  resource: string;
  scope?: string | undefined;
}

/** What one call to Veil gives: a token with how long it may be cached, or a refusal. */
type CallResult = Exclude<ExchangeResult, { ok: true }> | { ok: true; accessToken: string; usableUntil: number };

interface CachedToken {
  accessToken: string;
  usableUntil: number;
}

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before being joined for Basic auth. */
function basicAuthorization(clientId: string, clientSecret: string): string {
  const formEncode = (value: string) => new URLSearchParams([['', value]]).toString().slice(1);
  return `Basic ${Buffer.from(`${formEncode(clientId)}:${formEncode(clientSecret)}`).toString('base64')}`;
}

/**
 * How long before `expires_in` runs out the cached token stops being used: a tenth of its life,
 * between 1 and 30 seconds, so it still has time to reach the internal service and be checked.
 */
export function usableFor(expiresInSeconds: number): number {
  const margin = Math.min(30, Math.max(1, expiresInSeconds / 10));
  return Math.max(0, expiresInSeconds - margin) * 1000;
}

const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

export class TokenExchanger {
  readonly #cache: LRUCache<string, CachedToken>;
  readonly #pending = new Map<string, Promise<ExchangeResult>>();
  readonly #authorization: string;
  readonly #timeoutMs: number;
  #endpoint: Promise<string> | undefined;

  constructor(private readonly options: TokenExchangerOptions) {
    this.#cache = new LRUCache({ max: options.maxEntries ?? 10_000 });
    this.#authorization = basicAuthorization(options.clientId, options.clientSecret);
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (options.tokenEndpoint) this.#endpoint = Promise.resolve(options.tokenEndpoint);
  }

  get size(): number {
    return this.#cache.size;
  }

  /** The subject token exchanged for `target`, from the cache while it is good for long enough. */
  async exchange(subjectToken: string, target: ExchangeTarget): Promise<ExchangeResult> {
    // Keyed by what is asked for, not by route: two routes asking the same share it, two asking differently never do.
    const key = `${createHash('sha256').update(subjectToken).digest('base64url')} ${target.resource} ${target.scope ?? ''}`;
    const hit = this.#cache.get(key);
    if (hit && hit.usableUntil > Date.now()) {
      this.options.onOutcome?.('cached');
      return { ok: true, accessToken: hit.accessToken, cached: true };
    }
    if (hit) this.#cache.delete(key);
    let pending = this.#pending.get(key);
    if (!pending) {
      pending = this.#call(subjectToken, target).then((result): ExchangeResult => {
        this.options.onOutcome?.(result.ok ? 'issued' : result.kind);
        if (!result.ok) return result;
        if (result.usableUntil > Date.now()) this.#cache.set(key, { accessToken: result.accessToken, usableUntil: result.usableUntil });
        return { ok: true, accessToken: result.accessToken, cached: false };
      });
      this.#pending.set(key, pending);
      const done = () => this.#pending.delete(key);
      pending.then(done, done);
    }
    return pending;
  }

  /** Forgets every exchanged token (shutdown). */
  clear(): void {
    this.#cache.clear();
  }

  #tokenEndpoint(): Promise<string> {
    // Discovered once; a failed discovery is tried again on the next exchange.
    this.#endpoint ??= this.#discover().catch((err: unknown) => {
      this.#endpoint = undefined;
      throw err;
    });
    return this.#endpoint;
  }

  async #discover(): Promise<string> {
    const issuer = this.options.issuer;
    const res = await fetch(`${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`, {
      headers: { accept: 'application/json' },
      redirect: 'manual',
      signal: AbortSignal.timeout(this.#timeoutMs),
    });
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {});
      throw new Error(`discovery document answered HTTP ${res.status}`);
    }
    const metadata = (await res.json()) as { issuer?: unknown; token_endpoint?: unknown };
    // RFC 8414 §3.3: metadata for another issuer must not be used.
    if (metadata.issuer !== issuer) throw new Error('discovery document is for another issuer');
    if (typeof metadata.token_endpoint !== 'string' || !URL.canParse(metadata.token_endpoint)) throw new Error('discovery document has no token_endpoint');
    return metadata.token_endpoint;
  }

  async #call(subjectToken: string, target: ExchangeTarget): Promise<CallResult> {
    const body = new URLSearchParams({
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: subjectToken,
      subject_token_type: ACCESS_TOKEN_TYPE,
      requested_token_type: ACCESS_TOKEN_TYPE,
      resource: target.resource,
      ...(target.scope !== undefined && { scope: target.scope }),
    });
    const started = Date.now();
    let res: Response;
    try {
      res = await fetch(await this.#tokenEndpoint(), {
        method: 'POST',
        headers: { authorization: this.#authorization, accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
        body: body.toString(),
        redirect: 'manual',
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      const why = err instanceof Error && err.name === 'TimeoutError' ? 'timed out' : `unreachable (${causeCode(err)})`;
      return { ok: false, kind: 'unavailable', error: `token endpoint ${why}` };
    }
    let answer: Record<string, unknown> | undefined;
    try {
      const parsed: unknown = await res.json();
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) answer = parsed as Record<string, unknown>;
    } catch {
      answer = undefined;
    }
    if (res.status >= 500 || !answer) return { ok: false, kind: 'unavailable', error: `token endpoint answered HTTP ${res.status}${answer ? '' : ' without a JSON object'}` };
    if (res.status !== 200) {
      // Only the error code: descriptions are Veil's words and stay out of the gate's answers.
      const error = typeof answer.error === 'string' && /^[\x20-\x7e]{1,64}$/.test(answer.error) ? answer.error : `http_${res.status}`;
      if (error === 'invalid_grant') return { ok: false, kind: 'subject_refused', error };
      if (error === 'invalid_scope') return { ok: false, kind: 'scope_refused', error };
      if (error === 'temporarily_unavailable' || res.status === 429) return { ok: false, kind: 'unavailable', error };
      return { ok: false, kind: 'misconfigured', error };
    }
    const token = answer.access_token;
    const expiresIn = answer.expires_in;
    const tokenType = typeof answer.token_type === 'string' ? answer.token_type.toLowerCase() : undefined;
    if (typeof token !== 'string' || !token || token.length > MAX_TOKEN_LENGTH || !B64TOKEN.test(token)) {
      return { ok: false, kind: 'unavailable', error: 'token endpoint answered no usable access_token' };
    }
    if (tokenType !== 'bearer') return { ok: false, kind: 'unavailable', error: 'token endpoint answered a token that is not a Bearer token' };
    if (answer.issued_token_type !== undefined && answer.issued_token_type !== ACCESS_TOKEN_TYPE) {
      return { ok: false, kind: 'unavailable', error: 'token endpoint issued another token type' };
    }
    // Without expires_in nothing says how long the token lives: use it for this request only.
    const usableUntil = typeof expiresIn === 'number' && Number.isFinite(expiresIn) && expiresIn > 0 ? started + usableFor(expiresIn) : 0;
    return { ok: true, accessToken: token, usableUntil };
  }
}

function causeCode(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown } }).cause;
  return typeof cause?.code === 'string' ? cause.code : 'network error';
}
