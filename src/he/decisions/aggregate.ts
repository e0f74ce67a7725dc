/**
 * `POST /he/aggregate`: the total of one encrypted claim over a set of users, for a node
 * registered with an aggregation policy. The node sends the companion tokens; Veil verifies
 * each, checks each live, takes each one's ciphertext of the claim and multiplies them itself
 * (the homomorphic sum: a sum the node computed is never trusted, else "the sum of one token"
 * would decrypt anything). It answers only when:
 *   - the tokens are of at least `minSubjects` distinct users, each user once (two tokens of one
 *     user would weight them);
 *   - none of those users was counted in an aggregate by this node for this claim within
 *     `windowSeconds` (recorded atomically with the check). Sums over overlapping sets could
 *     otherwise be subtracted: sum(S ∪ {v}) − sum(S) = x_v. Counting per user, not per token,
 *     also stops the same subtraction with a second token of the same user.
 * The total may carry discrete Laplace noise of a configured scale (noise.ts).
 */
import type { Context } from 'koa';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { z } from 'zod';
import { ciphertextFromBase64url, decrypt, PaillierInputError } from '@veil/resource-server/paillier';
import type { EventSink } from '../../events/domain-events.js';
import type { CallerAuthenticator } from '../../oidc/token-endpoints.js';
import type { HePolicyRecord } from '../../store/he-policies.js';
import type { DecisionState } from './budgets.js';
import type { HeSecrets } from './decide.js';
import type { DecisionSigner } from './decision-token.js';
import { authFields, nodeEndpoint, policyFor, spendRate } from './endpoint.js';
import type { HeTokenResolver } from './he-token.js';
import { discreteLaplace } from './noise.js';
import { badRequest, badToken, Refusal } from './refusal.js';

export const AGGREGATE_PATH = '/he/aggregate';

export interface AggregateDeps {
  callers: CallerAuthenticator;
  resolver: HeTokenResolver;
  policies: (id: string) => Promise<HePolicyRecord | undefined>;
  keys: HeSecrets;
  state: DecisionState;
  rate: RateLimiterAbstract;
  signer: DecisionSigner;
  events: EventSink;
  minSubjects: number;
  maxTokens: number;
  windowSeconds: number;
  noiseScale: number;
}

const tooFew = (k: number) => new Refusal(403, 'access_denied', `an aggregate needs at least ${k} distinct users`);

export function aggregateEndpoint(deps: AggregateDeps) {
  const body = z.object({
    ...authFields,
    policy: z.string().min(1).max(100),
    claim: z.string().min(1).max(100),
    tokens: z.array(z.string().min(1).max(8192)).min(1).max(deps.maxTokens),
  });
  // A companion with two 3072-bit ciphertexts is about 2.5 KB.
  const limit = `${Math.ceil((deps.maxTokens * 8192) / 1024) + 16}kb`;
  return nodeEndpoint(AGGREGATE_PATH, deps.callers, body, limit, async (ctx: Context, { node, body: request }) => {
    const policy = await policyFor(deps.policies, request.policy, node.clientId, 'aggregate');
    if (policy.claim !== request.claim) throw badRequest(`claim: the policy is for ${policy.claim}`);
    if (new Set(request.tokens).size < deps.minSubjects) throw tooFew(deps.minSubjects);

    const subjects = new Set<string>();
    let kid: string | undefined;
    const encoded: string[] = [];
    for (const [i, value] of request.tokens.entries()) {
      const token = await deps.resolver.resolve(value);
      const c = token?.ciphertexts?.[policy.claim];
      // Only tokens Veil can read: the sum is Veil's own, from the ciphertexts it signed.
      if (!token || token.form === 'sealed' || c === undefined) throw badToken(`tokens[${i}]: not an active companion token carrying ${policy.claim}`);
      if (subjects.has(token.accountId)) throw badRequest(`tokens[${i}]: a second token of one user`);
      if (kid !== undefined && token.kid !== kid) throw badRequest(`tokens[${i}]: under another key than tokens[0]`);
      subjects.add(token.accountId);
      kid = token.kid;
      encoded.push(c);
    }
    if (subjects.size < deps.minSubjects) throw tooFew(deps.minSubjects);
    const secret = deps.keys.secret(kid!);
    if (!secret) throw badRequest('kid: unknown confidential-claim key');
    const pk = secret.publicKey;
    let product = 1n;
    try {
      for (const c of encoded) product = (product * ciphertextFromBase64url(pk, c)) % pk.n2;
    } catch (err) {
      if (err instanceof PaillierInputError) throw badToken('a token carries a malformed ciphertext');
      throw err;
    }
    await spendRate(deps.rate, node.clientId);
    if (!(await deps.state.admitSubjects(node.clientId, policy.claim, [...subjects], deps.windowSeconds))) {
      throw new Refusal(403, 'access_denied', 'a user in this set was already counted by this client for this claim; aggregates must not overlap');
    }
    const noise = deps.noiseScale > 0 ? discreteLaplace(deps.noiseScale) : 0n;
    const totalJwt = await deps.signer.total({
      node: node.clientId,
      policy: policy.id,
      claim: policy.claim,
      count: subjects.size,
      total: decrypt(secret, product) + noise,
      noise: deps.noiseScale > 0 ? { mechanism: 'discrete-laplace', scale: deps.noiseScale } : undefined,
    });
    await deps.events.emit({ type: 'he.aggregated', clientId: node.clientId, policy: policy.id, claim: policy.claim, count: subjects.size });
    ctx.status = 200;
    ctx.body = { total: totalJwt };
  });
}
