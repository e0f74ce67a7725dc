/**
 * Mixed OAuth traffic against a running Veil, with the bookkeeping the fault suite and the soak
 * judge it by: browser logins and code flows (each a user of its own, so each grant is one
 * refresh-token chain), refresh with rotation, client_credentials, introspection and revocation.
 *
 * Every request has a client timeout and is classified: ok, refused (a 4xx the protocol allows),
 * unavailable (503 `temporarily_unavailable`, or the HTML error page on a browser route), dropped
 * (the connection failed or was reset), timeout, or server_error (any other 5xx, or a 503 in the
 * wrong shape). Refresh chains follow the rule a careful client follows:
 *
 *   - a refresh answered 200 moves the chain to the new token;
 *   - a refresh (or a revocation of the chain's token) whose outcome the client could not learn
 *     (unavailable, dropped, timeout) leaves the token "uncertain", and the client retries it;
 *   - `invalid_grant` for an uncertain token ends the chain, and the client has been told
 *     ("told": the earlier attempt may have rotated it, and the retry is reuse);
 *   - `invalid_grant` for a token never tried before is a token lost without the client being
 *     told (a violation), as is a token answered 200 twice (a fork: two successors).
 */
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CookieJar } from './http-flow.js';

export type Op = 'login' | 'code' | 'refresh' | 'client_credentials' | 'introspection' | 'revocation';
export type Outcome = 'ok' | 'refused' | 'unavailable' | 'dropped' | 'timeout' | 'server_error';

export interface Sample {
  op: Op;
  /** performance.now() at send and at the end of the response body (or failure). */
  started: number;
  ended: number;
  status: number;
  outcome: Outcome;
  /** The OAuth error code of a 4xx/5xx JSON answer, or the network error. */
  detail?: string;
}

export interface Violation {
  kind: 'fork' | 'lost_refresh_token' | 'revoked_token_active' | 'chain_not_usable' | 'unexpected_answer';
  detail: string;
}

export interface TrafficFixture {
  issuer: string;
  resource: string;
  client: { id: string; secret: string; redirectUri: string };
  rs: { id: string; secret: string };
  /** Users no flow has signed in yet: each login takes one. */
  users: Array<{ email: string; password: string }>;
}

export interface TrafficOptions {
  /** Client timeout of each request (a response slower than this is a "hang"). */
  timeoutMs?: number;
  /** Refresh chains to open before the traffic starts. */
  chains?: number;
  /** Concurrent loops per kind. */
  loops?: Partial<Record<'clientCredentials' | 'introspection' | 'revocation' | 'login', number>>;
  /** Pause between two steps of one loop, ms (keeps the load moderate on a shared machine). */
  pauseMs?: number;
  /** Chance per step that a chain revokes its refresh token instead of refreshing it. */
  chainRevokeChance?: number;
  /** Keep only aggregates, not every sample (long soaks). */
  keepSamples?: boolean;
  /** Past this many open chains, a new login retires the oldest (its client revokes it, its user signs in again later). */
  maxChains?: number;
}

export interface Chain {
  id: number;
  current: string;
  /** Every refresh token the chain received, in order. */
  tokens: string[];
  /** Successful (200) redemptions per token. */
  redeemed: Map<string, number>;
  /** Tokens with an attempt whose outcome the client could not learn, and what that attempt was. */
  uncertain: Map<string, 'refresh' | 'revocation'>;
  /** For a chain ended 'told': what the uncertain attempt before the refusal was (a revocation answered 503 that did happen, or a refresh). */
  toldAfter?: 'refresh' | 'revocation';
  ended?: 'told' | 'revoked' | 'lost';
  /** The user whose grant this is. */
  user: { email: string; password: string };
  /** Asked to revoke its token at its next step. */
  retiring?: boolean;
}

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
const form = (params: Record<string, string>) => new URLSearchParams(params).toString();

/** Latency histogram in 1 ms buckets up to 60 s (enough for p50/p99 over hours of samples). */
export class Latencies {
  readonly buckets = new Uint32Array(60_001);
  count = 0;
  add(ms: number) {
    this.buckets[Math.min(60_000, Math.max(0, Math.round(ms)))]!++;
    this.count++;
  }
  percentile(p: number): number {
    const target = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let i = 0; i < this.buckets.length; i++) if ((seen += this.buckets[i]!) >= target && target > 0) return i;
    return 0;
  }
}

export class Traffic {
  readonly samples: Sample[] = [];
  readonly violations: Violation[] = [];
  readonly chains: Chain[] = [];
  /** Tokens whose revocation was answered 200, with when that answer arrived. */
  readonly revoked = new Map<string, { kind: 'access' | 'refresh'; at: number }>();
  readonly counts = new Map<Op, Map<Outcome, number>>();
  readonly latency = new Latencies();
  readonly #accessTokens: string[] = [];
  readonly #options: Required<Omit<TrafficOptions, 'loops'>> & { loops: Required<NonNullable<TrafficOptions['loops']>> };
  #running = false;
  #loops: Promise<void>[] = [];
  #nextChain = 0;

  constructor(
    readonly fixture: TrafficFixture,
    options: TrafficOptions = {},
  ) {
    this.#options = {
      timeoutMs: options.timeoutMs ?? 10_000,
      chains: options.chains ?? 8,
      pauseMs: options.pauseMs ?? 20,
      chainRevokeChance: options.chainRevokeChance ?? 0.002,
      keepSamples: options.keepSamples ?? true,
      maxChains: options.maxChains ?? Infinity,
      loops: { clientCredentials: 2, introspection: 2, revocation: 1, login: 1, ...options.loops },
    };
  }

  /** Opens the initial chains (before any fault): each a browser login and code exchange. */
  async prepare(): Promise<void> {
    for (let i = 0; i < this.#options.chains; i++) {
      if (!(await this.#loginAndExchange())) throw new Error(`could not open refresh chain ${i}: ${JSON.stringify(this.samples.slice(-3))}`);
    }
  }

  start(): void {
    this.#running = true;
    const { loops } = this.#options;
    const repeat = (n: number, loop: () => Promise<void>) => Array.from({ length: n }, () => loop());
    this.#loops = [
      ...repeat(loops.clientCredentials, () => this.#loop(() => this.#clientCredentials())),
      ...repeat(loops.introspection, () => this.#loop(() => this.#introspectSome())),
      ...repeat(loops.revocation, () => this.#loop(() => this.#revokeSome(), 100)),
      ...repeat(loops.login, () => this.#loop(() => this.#loginAndExchange(), 200)),
      ...this.chains.map((c) => this.#chainLoop(c)),
    ];
  }

  async stop(): Promise<void> {
    this.#running = false;
    while (this.#loops.length) await Promise.all(this.#loops.splice(0));
  }

  get running() {
    return this.#running;
  }

  // ---- requests ---------------------------------------------------------------------------------

  /** One request, classified. Browser routes must answer an outage with the HTML error page. */
  async request(op: Op, url: string, init: RequestInit, browser = false): Promise<{ sample: Sample; res?: Response; text?: string }> {
    const started = performance.now();
    let status = 0;
    let outcome: Outcome;
    let detail: string | undefined;
    let res: Response | undefined;
    let text: string | undefined;
    try {
      res = await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(this.#options.timeoutMs) });
      text = await res.text();
      status = res.status;
      const type = res.headers.get('content-type') ?? '';
      if (type.includes('json') && text) {
        try {
          detail = (JSON.parse(text) as { error?: string }).error;
        } catch {
          detail = 'unparsable JSON';
        }
      }
      if (status < 400) outcome = 'ok';
      else if (status === 503 && (browser ? type.includes('text/html') : detail === 'temporarily_unavailable')) outcome = 'unavailable';
      else if (status >= 500) outcome = 'server_error';
      else outcome = 'refused';
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      outcome = e.name === 'TimeoutError' || e.name === 'AbortError' ? 'timeout' : 'dropped';
      detail = e.cause?.code ?? e.cause?.message ?? e.message;
    }
    const sample: Sample = { op, started, ended: performance.now(), status, outcome, detail };
    this.#record(sample);
    return { sample, res, text };
  }

  #record(sample: Sample) {
    if (this.#options.keepSamples) this.samples.push(sample);
    const byOutcome = this.counts.get(sample.op) ?? new Map<Outcome, number>();
    byOutcome.set(sample.outcome, (byOutcome.get(sample.outcome) ?? 0) + 1);
    this.counts.set(sample.op, byOutcome);
    if (sample.outcome === 'ok') this.latency.add(sample.ended - sample.started);
  }

  /** A redirect that turned out to carry an error: counted as that outcome instead of ok. */
  #reclassify(sample: Sample, outcome: Outcome) {
    const byOutcome = this.counts.get(sample.op)!;
    byOutcome.set(sample.outcome, byOutcome.get(sample.outcome)! - 1);
    byOutcome.set(outcome, (byOutcome.get(outcome) ?? 0) + 1);
    sample.outcome = outcome;
  }

  #token(op: Op, params: Record<string, string>) {
    const { client, issuer } = this.fixture;
    return this.request(op, `${issuer}/token`, {
      method: 'POST',
      headers: { authorization: basic(client.id, client.secret), 'content-type': 'application/x-www-form-urlencoded' },
      body: form(params),
    });
  }

  async #loop(step: () => Promise<unknown>, pauseMs = this.#options.pauseMs) {
    while (this.#running) {
      if ((await step()) === false && !this.fixture.users.length) return; // out of fresh users
      await sleep(pauseMs);
    }
  }

  // ---- client_credentials, introspection, revocation ---------------------------------------------

  async #clientCredentials() {
    const { client, issuer, resource } = this.fixture;
    const { sample, text } = await this.request('client_credentials', `${issuer}/token`, {
      method: 'POST',
      headers: { authorization: basic(client.id, client.secret), 'content-type': 'application/x-www-form-urlencoded' },
      body: form({ grant_type: 'client_credentials', resource, scope: 'read' }),
    });
    if (sample.outcome === 'ok') this.#keepAccessToken((JSON.parse(text!) as { access_token: string }).access_token);
  }

  #keepAccessToken(token: string) {
    this.#accessTokens.push(token);
    if (this.#accessTokens.length > 200) this.#accessTokens.shift();
  }

  /** Introspects a token as the resource server; a token revoked before this request started must be inactive. */
  async introspect(token: string, as: 'rs' | 'client' = 'rs'): Promise<{ sample: Sample; active?: boolean }> {
    const { issuer, rs, client } = this.fixture;
    const who = as === 'rs' ? rs : client;
    const revokedBefore = this.revoked.get(token);
    const { sample, text } = await this.request('introspection', `${issuer}/token/introspection`, {
      method: 'POST',
      headers: { authorization: basic(who.id, who.secret), 'content-type': 'application/x-www-form-urlencoded' },
      body: form({ token }),
    });
    if (sample.outcome !== 'ok') return { sample };
    const active = (JSON.parse(text!) as { active: boolean }).active;
    if (active && revokedBefore)
      this.violations.push({
        kind: 'revoked_token_active',
        detail: `${revokedBefore.kind} token revoked ${Math.round(sample.started - revokedBefore.at)} ms before introspection is active`,
      });
    return { sample, active };
  }

  async #introspectSome() {
    const revoked = [...this.revoked].filter(([, r]) => r.kind === 'access');
    // One in four introspections re-checks a revoked token while the traffic runs.
    const token =
      Math.random() < 0.25 && revoked.length ? revoked[Math.floor(Math.random() * revoked.length)]![0] : this.#accessTokens[Math.floor(Math.random() * this.#accessTokens.length)];
    if (token) await this.introspect(token);
  }

  async revoke(token: string, kind: 'access' | 'refresh'): Promise<Sample> {
    const { client, issuer } = this.fixture;
    const { sample } = await this.request('revocation', `${issuer}/token/revocation`, {
      method: 'POST',
      headers: { authorization: basic(client.id, client.secret), 'content-type': 'application/x-www-form-urlencoded' },
      body: form({ token, token_type_hint: kind === 'access' ? 'access_token' : 'refresh_token' }),
    });
    if (sample.outcome === 'ok') this.revoked.set(token, { kind, at: sample.ended });
    else if (sample.outcome === 'refused' || sample.outcome === 'server_error') this.#unexpected(sample);
    return sample;
  }

  async #revokeSome() {
    const i = Math.floor(Math.random() * this.#accessTokens.length);
    const token = this.#accessTokens[i];
    if (!token) return;
    this.#accessTokens.splice(i, 1);
    await this.revoke(token, 'access');
  }

  #unexpected(sample: Sample) {
    this.violations.push({ kind: 'unexpected_answer', detail: `${sample.op}: ${sample.status} ${sample.detail ?? ''}` });
  }

  // ---- logins, code flows and refresh chains -----------------------------------------------------

  /** A browser login (the login and consent pages) then the code exchange; opens a chain. */
  async #loginAndExchange(): Promise<boolean> {
    const user = this.fixture.users.shift();
    if (!user) return false;
    const code = await this.#authorize(user);
    if (!code) return true; // the flow failed on a page (recorded); the user is not reused
    const params = { grant_type: 'authorization_code', code: code.code, redirect_uri: this.fixture.client.redirectUri, code_verifier: code.verifier };
    // A code whose exchange had no definite answer is retried, so tokens the client never saw
    // are ended (by reuse detection) rather than left alive unaccounted for.
    for (let attempt = 0; ; attempt++) {
      const { sample, text } = await this.#token('code', params);
      if (sample.outcome === 'ok') {
        const refreshToken = (JSON.parse(text!) as { refresh_token?: string }).refresh_token;
        if (!refreshToken) throw new Error('the code exchange returned no refresh token');
        const chain: Chain = { id: this.#nextChain++, current: refreshToken, tokens: [refreshToken], redeemed: new Map(), uncertain: new Map(), user };
        this.chains.push(chain);
        const open = this.chains.filter((c) => !c.ended && !c.retiring);
        if (open.length > this.#options.maxChains) open[0]!.retiring = true;
        if (this.#running) this.#loops.push(this.#chainLoop(chain));
        return true;
      }
      if (sample.outcome === 'refused' || sample.outcome === 'server_error') {
        if (!(attempt > 0 && sample.detail === 'invalid_grant')) this.#unexpected(sample);
        return true;
      }
      await sleep(200);
      if (attempt > 200) return true;
    }
  }

  /** Signs in through the pages and consents; the code, or undefined when a page failed. */
  async #authorize(user: { email: string; password: string }): Promise<{ code: string; verifier: string } | undefined> {
    const { issuer, client, resource } = this.fixture;
    const jar = new CookieJar();
    const verifier = randomBytes(32).toString('base64url');
    const authorize = new URL(`${issuer}/auth`);
    authorize.search = form({
      client_id: client.id,
      response_type: 'code',
      scope: 'openid offline_access read',
      resource,
      prompt: 'consent',
      redirect_uri: client.redirectUri,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    });
    let url = authorize.toString();
    let last: Sample | undefined;
    for (let hop = 0; hop < 12; hop++) {
      if (url.startsWith(client.redirectUri)) {
        const params = new URL(url).searchParams;
        const code = params.get('code');
        if (code) return { code, verifier };
        // An outage once the client is known is the authorization error response (RFC 6749
        // §4.1.2.1) to the client's redirect URI: that is this route's 503.
        if (params.get('error') === 'temporarily_unavailable' && last) {
          this.#reclassify(last, 'unavailable');
          return undefined;
        }
        throw new Error(`no code in ${url}`);
      }
      const page = await this.request('login', url, { headers: { cookie: jar.header() } }, true);
      last = page.sample;
      if (page.sample.outcome !== 'ok') return this.#pageFailed(page.sample);
      jar.store(page.res!);
      if (page.sample.status === 303 || page.sample.status === 302) {
        url = new URL(page.res!.headers.get('location')!, issuer).toString();
        continue;
      }
      const action = [...page.text!.matchAll(/action="([^"]+)"/g)].map((m) => m[1]!).find((a) => /\/(login|confirm)$/.test(a));
      if (!action) throw new Error(`unexpected page at ${url} (${page.sample.status})`);
      const body = page.text!.includes('name="password"') ? form(user) : '';
      const posted = await this.request(
        'login',
        new URL(action, issuer).toString(),
        { method: 'POST', headers: { cookie: jar.header(), 'content-type': 'application/x-www-form-urlencoded' }, body },
        true,
      );
      last = posted.sample;
      if (posted.sample.outcome !== 'ok') return this.#pageFailed(posted.sample);
      jar.store(posted.res!);
      if (posted.sample.status !== 303) throw new Error(`form post to ${action} answered ${posted.sample.status}: ${posted.text?.slice(0, 300)}`);
      url = new URL(posted.res!.headers.get('location')!, issuer).toString();
    }
    throw new Error('too many redirects');
  }

  #pageFailed(sample: Sample): undefined {
    if (sample.outcome === 'refused' || sample.outcome === 'server_error') this.#unexpected(sample);
    return undefined;
  }

  /** A long run keeps only what it still checks of an ended chain. */
  #forget(chain: Chain) {
    this.chains.splice(this.chains.indexOf(chain), 1);
    this.endedChains[chain.ended!]++;
  }

  readonly endedChains = { told: 0, revoked: 0, lost: 0 };

  async #chainLoop(chain: Chain) {
    while (this.#running && !chain.ended) {
      await this.refreshStep(chain);
      await sleep(chain.uncertain.has(chain.current) ? 200 : this.#options.pauseMs);
    }
  }

  /** One step of a chain: usually a refresh, sometimes a revocation of its token. Returns the outcome. */
  async refreshStep(chain: Chain, revokeChance = this.#options.chainRevokeChance): Promise<Outcome> {
    const token = chain.current;
    if (chain.retiring || Math.random() < revokeChance) {
      const sample = await this.revoke(token, 'refresh');
      if (sample.outcome === 'ok') {
        chain.ended = 'revoked';
        // The grant ended with it: the user may sign in again for a fresh one.
        this.fixture.users.push(chain.user);
        if (this.#options.maxChains !== Infinity) this.#forget(chain);
      } else if (sample.outcome !== 'refused') chain.uncertain.set(token, 'revocation');
      return sample.outcome;
    }
    const { sample, text } = await this.#token('refresh', { grant_type: 'refresh_token', refresh_token: token, resource: this.fixture.resource });
    if (sample.outcome === 'ok') {
      const body = JSON.parse(text!) as { refresh_token: string; access_token: string };
      const times = (chain.redeemed.get(token) ?? 0) + 1;
      chain.redeemed.set(token, times);
      if (times > 1) this.violations.push({ kind: 'fork', detail: `chain ${chain.id}: token #${chain.tokens.indexOf(token)} redeemed ${times} times` });
      chain.current = body.refresh_token;
      chain.tokens.push(body.refresh_token);
      this.#keepAccessToken(body.access_token);
    } else if (sample.outcome === 'refused' && sample.detail === 'invalid_grant') {
      if (chain.uncertain.has(token)) {
        chain.ended = 'told';
        chain.toldAfter = chain.uncertain.get(token);
      } else {
        chain.ended = 'lost';
        this.violations.push({ kind: 'lost_refresh_token', detail: `chain ${chain.id}: token #${chain.tokens.indexOf(token)} refused (invalid_grant) on its first use` });
      }
    } else if (sample.outcome === 'refused' || sample.outcome === 'server_error') {
      this.#unexpected(sample);
    } else {
      if (!chain.uncertain.has(token)) chain.uncertain.set(token, 'refresh');
    }
    return sample.outcome;
  }

  // ---- after the traffic ---------------------------------------------------------------------------

  /**
   * Once the traffic has stopped and the stores are back: every open chain still refreshes (its
   * client retries an uncertain token as before), and every revoked token introspects inactive.
   */
  async verifyAfterRecovery(deadlineMs = 15_000): Promise<void> {
    const deadline = performance.now() + deadlineMs;
    for (const chain of this.chains.filter((c) => !c.ended)) {
      for (;;) {
        const outcome = await this.refreshStep(chain, 0);
        if (outcome === 'ok' || chain.ended) break;
        if (performance.now() > deadline) {
          this.violations.push({ kind: 'chain_not_usable', detail: `chain ${chain.id}: refresh still ${outcome} after recovery` });
          break;
        }
        await sleep(200);
      }
    }
    for (const [token, { kind }] of this.revoked) {
      for (;;) {
        const { sample } = await this.introspect(token, kind === 'access' ? 'rs' : 'client');
        if (sample.outcome === 'ok' || performance.now() > deadline) break;
        await sleep(200);
      }
    }
  }

  /** Chains still open (each holds exactly one live refresh token). */
  get openChains(): number {
    return this.chains.filter((c) => !c.ended).length;
  }

  /** How many requests, by op and outcome, that started within [from, to). */
  between(from: number, to: number): Map<Outcome, number> {
    const out = new Map<Outcome, number>();
    for (const s of this.samples) if (s.started >= from && s.started < to) out.set(s.outcome, (out.get(s.outcome) ?? 0) + 1);
    return out;
  }
}

/** Registers the resource server, the client and `users` users through Veil's admin API. */
export async function provisionTraffic(
  admin: <T>(method: string, path: string, body: unknown) => Promise<T>,
  options: { issuer: string; users: number; resourceJwk: unknown; redirectUri?: string },
): Promise<TrafficFixture> {
  const resource = 'https://traffic.example/api';
  const redirectUri = options.redirectUri ?? 'https://rp.example/callback';
  const rs = await admin<{ introspection_client_id: string; introspection_client_secret: string }>('POST', '/admin/resources', {
    identifier: resource,
    name: 'traffic API',
    scopes: ['read'],
    jwk: options.resourceJwk,
  });
  const created = await admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
    client_name: 'traffic',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    scope: 'openid offline_access read',
    resources: [resource],
    resource_scopes: { [resource]: ['read'] },
  });
  const users: TrafficFixture['users'] = [];
  for (let i = 0; i < options.users; i++) {
    const user = { email: `traffic-${i}-${randomBytes(3).toString('hex')}@example.com`, password: randomBytes(12).toString('base64url') };
    await admin('POST', '/admin/users', { ...user, name: `Traffic ${i}` });
    users.push(user);
  }
  return {
    issuer: options.issuer,
    resource,
    client: { id: created.client.client_id, secret: created.client_secret, redirectUri },
    rs: { id: rs.introspection_client_id, secret: rs.introspection_client_secret },
    users,
  };
}
