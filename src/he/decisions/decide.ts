/**
 * `POST /he/decide`: a node's blinded comparison. The node sends c' = Enc(r·(x − t) + s) (or
 * its negation, on a private coin) built from the token's encrypted claim and its own private
 * threshold; Veil checks, in this order, who asks (caller authentication), for what (the node's
 * registered decision policy), about whom (a live token carrying the claim, a known HE key),
 * the ciphertext (an element of Z*_{n²}), then the budgets, and only then decrypts and answers
 * the signed bit "c' decrypts to >= 0". The decrypted value never leaves this function.
 *
 * Budgets (DecisionState, one atomic step): one answer per (token, node, policy), cached for
 * the token's life; a repeat gets that same answer back, whatever c' it carries (its ct_hash
 * and commitment name the first query), so re-asking with another c' learns nothing new; at
 * most `perSubjectPerDay` answers per (user, claim, node) per UTC day across all the user's
 * tokens; and the node's rate per minute. A refusal before the budget step spends nothing.
 */
import type { Context } from 'koa';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { z } from 'zod';
import { ciphertextFromBase64url, decrypt, PaillierInputError, type PaillierPublicKey, type PaillierSecretKey } from '@veil/resource-server/paillier';
import type { EventSink } from '../../events/domain-events.js';
import type { CallerAuthenticator } from '../../oidc/token-endpoints.js';
import type { HePolicyRecord } from '../../store/he-policies.js';
import type { DecisionSlot, DecisionState } from './budgets.js';
import { ciphertextHash, type DecisionSigner } from './decision-token.js';
import { authFields, nodeEndpoint, policyFor, spendRate } from './endpoint.js';
import type { HeTokenResolver } from './he-token.js';
import { badRequest, badToken, Refusal } from './refusal.js';

export const DECIDE_PATH = '/he/decide';

/** What the endpoints need of the HE key ring (src/he/he-keys.ts). */
export interface HeSecrets {
  active(): PaillierPublicKey;
  secret(kid: string): PaillierSecretKey | undefined;
}

const B64URL = /^[A-Za-z0-9_-]+$/;
const decideBody = z.object({
  ...authFields,
  token: z.string().min(1).max(8192),
  policy: z.string().min(1).max(100),
  ciphertext: z.string().min(1).max(2048).regex(B64URL, 'must be base64url'),
  /** b64url(SHA-256(coin || nonce)): echoed in the decision, so the node can later prove its coin. */
  commitment: z.string().min(1).max(64).regex(B64URL, 'must be base64url').optional(),
  /** The HE key id, for a sealed token Veil cannot read (the companion and inner JWS name theirs). */
  kid: z.string().min(1).max(100).optional(),
});

export interface DecideDeps {
  callers: CallerAuthenticator;
  resolver: HeTokenResolver;
  policies: (id: string) => Promise<HePolicyRecord | undefined>;
  keys: HeSecrets;
  state: DecisionState;
  rate: RateLimiterAbstract;
  signer: DecisionSigner;
  events: EventSink;
  perSubjectPerDay: number;
}

/** How long a second request for a (token, node, policy) being decided waits for the first's answer. */
const PENDING_WAIT_MS = 2000;
const PENDING_POLL_MS = 20;

export const utcDay = (now = new Date()): string => now.toISOString().slice(0, 10);

export function decideEndpoint(deps: DecideDeps) {
  return nodeEndpoint(DECIDE_PATH, deps.callers, decideBody, '16kb', async (ctx: Context, { node, body }) => {
    const policy = await policyFor(deps.policies, body.policy, node.clientId, 'decision');
    const token = await deps.resolver.resolve(body.token);
    if (!token) throw badToken();
    if (!token.claims.includes(policy.claim)) throw badToken(`the token carries no encrypted ${policy.claim}`);
    if (token.kid !== undefined && body.kid !== undefined && body.kid !== token.kid) throw badRequest('kid: not the key of this token');
    const kid = token.kid ?? body.kid ?? deps.keys.active().kid;
    const secret = deps.keys.secret(kid);
    if (!secret) throw badRequest('kid: unknown confidential-claim key');
    let c: bigint;
    try {
      c = ciphertextFromBase64url(secret.publicKey, body.ciphertext);
    } catch (err) {
      if (err instanceof PaillierInputError) throw badRequest('ciphertext: not an element of Z*_{n²} under this key');
      throw err;
    }
    await spendRate(deps.rate, node.clientId);

    const slot: DecisionSlot = { subject: token.accountId, claim: policy.claim, node: node.clientId, policy: policy.id, jti: token.found.id, day: utcDay() };
    let claim = await deps.state.claim(slot, deps.perSubjectPerDay);
    // The same token asked twice at once: the second waits for the first one's answer.
    for (let waited = 0; claim.kind === 'pending' && waited < PENDING_WAIT_MS; waited += PENDING_POLL_MS) {
      await new Promise((resolve) => setTimeout(resolve, PENDING_POLL_MS));
      claim = await deps.state.claim(slot, deps.perSubjectPerDay);
    }
    let decision: string;
    if (claim.kind === 'cached') {
      decision = claim.decision;
    } else if (claim.kind === 'spent') {
      throw new Refusal(429, 'slow_down', "this client's decisions about this user's claim are spent for today", secondsToMidnightUtc());
    } else if (claim.kind === 'pending') {
      throw new Refusal(503, 'temporarily_unavailable', 'a decision for this token is under way, try again shortly', 1);
    } else {
      // The one place the value exists: compared with 0 and dropped.
      const ok = decrypt(secret, c) >= 0n;
      decision = await deps.signer.decision({
        jti: token.found.id,
        node: node.clientId,
        policy: policy.id,
        ctHash: ciphertextHash(Buffer.from(body.ciphertext, 'base64url')),
        ok,
        commitment: body.commitment,
        exp: token.exp,
      });
      await deps.state.settle(slot, decision, token.exp - Math.floor(Date.now() / 1000));
    }
    await deps.events.emit({ type: 'he.decided', clientId: node.clientId, accountId: token.accountId, policy: policy.id, claim: policy.claim, cached: claim.kind === 'cached' });
    ctx.status = 200;
    ctx.body = { decision };
  });
}

function secondsToMidnightUtc(now = Date.now()): number {
  const day = 86_400_000;
  return (day - (now % day)) / 1000;
}
