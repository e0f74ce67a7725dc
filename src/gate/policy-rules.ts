/**
 * A route's `require` rules: policy decisions on confidential claims (docs/CONFIDENTIAL_CLAIMS.md).
 * `{ "policy": "age-gate", "claim": "age", "op": "gte", "value": 18 }` admits a token whose
 * encrypted `age` is at least 18; `{ "policy": "spend", "claim": "spend_headroom", "op": "gte",
 * "amountFrom": { "header": "x-amount" } }` admits a request whose amount the encrypted headroom
 * covers. The gate is a policy node: it opened the token (so it sees the `hec` ciphertexts, never a
 * value), builds the blinded query with the SDK's `createPolicyNode` under its own client, and
 * Veil answers one bit. The threshold or amount never leaves the gate; the age never reaches it.
 *
 * Answers: every rule yes -> on to the route's headers; a no -> 403; a missing or malformed
 * amount -> 400; Veil unreachable or an answer that does not verify -> 503 (fail closed).
 */
import { createPolicyNode, PolicyNodeError, POLICY_OPS, type PolicyNode, type VerifiedAccessToken } from '@veil/resource-server';
import { z } from 'zod';

/** RFC 9110 §5.1 field name (token). */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Veil's policy ids (src/he/decisions/policies.ts POLICY_ID). */
const POLICY_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const CLAIM_NAME = /^[a-z][a-z0-9_]{0,63}$/;
/** Amounts are non-negative integers (minor units), well inside the comparison's range. */
const AMOUNT = /^(?:0|[1-9]\d{0,14})$/;

export const requireRuleSchema = z
  .strictObject({
    /** The policy id registered at Veil for the gate's client (`veil policies create --node <gate client>`). */
    policy: z.string({ error: 'expected a policy id' }).regex(POLICY_ID, { error: 'expected a policy id (lower-case letters, digits, . _ -)' }),
    /** The encrypted claim (the API is registered with `--he-claims` naming it). */
    claim: z.string({ error: 'expected a claim name' }).regex(CLAIM_NAME, { error: 'expected a claim name (lower-case letters, digits, _)' }),
    op: z.enum(POLICY_OPS, { error: `expected one of ${POLICY_OPS.join(', ')}` }),
    /** A fixed threshold. */
    value: z
      .number({ error: 'expected an integer' })
      .int({ error: 'expected an integer' })
      .min(-(2 ** 52), { error: 'out of range' })
      .max(2 ** 52, { error: 'out of range' })
      .optional(),
    /** The threshold taken from each request: a header or a query parameter carrying a non-negative integer. */
    amountFrom: z
      .union([z.strictObject({ header: z.string().regex(HEADER_NAME, { error: 'expected a header name' }) }), z.strictObject({ query: z.string().min(1).max(64) })], {
        error: 'expected { "header": name } or { "query": name }',
      })
      .optional(),
  })
  .refine((r) => (r.value === undefined) !== (r.amountFrom === undefined), { error: 'give either value or amountFrom, not both' });

export type RequireRule = z.infer<typeof requireRuleSchema>;

/** Cross-field rules for config.ts's checkRoutes: a rule needs a token and the gate's client. */
export function requireRuleProblems(
  route: { public: boolean; require?: RequireRule[] | undefined },
  at: (...rest: PropertyKey[]) => PropertyKey[],
  client: { secretFile?: string | undefined } | undefined,
  hasClientSecret: boolean,
): Array<{ path: PropertyKey[]; message: string }> {
  if (!route.require?.length) return [];
  if (route.public) return [{ path: at('require'), message: 'a public route takes no token, so it cannot require a policy' }];
  if (!client) return [{ path: ['client'], message: "required by a route's require rules (the gate's client id and secretFile, or GATE_CLIENT_SECRET)" }];
  if (!client.secretFile && !hasClientSecret) return [{ path: ['client', 'secretFile'], message: "required by a route's require rules (or set GATE_CLIENT_SECRET)" }];
  return [];
}

export type PolicyOutcome =
  | { kind: 'allow' }
  | { kind: 'deny'; status: 400 | 401 | 403; reason: 'policy_refused' | 'invalid_amount' | 'revoked'; error: string; description: string }
  | { kind: 'unavailable'; reason: 'policy_unavailable'; detail: string };

/** The request's parts a rule may read the amount from. */
export interface AmountSource {
  uri: string;
  header(name: string): string | string[] | undefined;
}

/** The amount of a request, or why there is none (never the value itself in the message). */
export function amountOf(rule: RequireRule, request: AmountSource): bigint | { problem: string } {
  const from = rule.amountFrom!;
  let values: string[];
  let where: string;
  if ('header' in from) {
    const v = request.header(from.header.toLowerCase());
    values = v === undefined ? [] : Array.isArray(v) ? v : [v];
    where = `the ${from.header} header`;
  } else {
    const q = request.uri.indexOf('?');
    values = q === -1 ? [] : new URLSearchParams(request.uri.slice(q + 1)).getAll(from.query);
    where = `the ${from.query} query parameter`;
  }
  if (values.length === 0) return { problem: `${where} is required` };
  // Two amounts are ambiguous: a gateway and the upstream could each read a different one.
  if (values.length > 1) return { problem: `${where} must be given once` };
  const text = values[0]!.trim();
  if (!AMOUNT.test(text)) return { problem: `${where} must be a non-negative integer` };
  return BigInt(text);
}

const refused = (description: string): PolicyOutcome => ({ kind: 'deny', status: 403, reason: 'policy_refused', error: 'access_denied', description });

export class PolicyRules {
  readonly #node: PolicyNode;

  constructor(options: { issuer: string; clientId: string; clientSecret: string; cacheMaxEntries?: number }) {
    this.#node = createPolicyNode({
      issuer: options.issuer,
      credentials: { clientId: options.clientId, clientSecret: options.clientSecret },
      ...(options.cacheMaxEntries !== undefined && { cacheMaxEntries: options.cacheMaxEntries }),
    });
  }

  /** Every rule of the route, in order; the first that is not a yes decides. */
  async check(rules: readonly RequireRule[], token: string, verified: VerifiedAccessToken, request: AmountSource): Promise<PolicyOutcome> {
    const { jti, exp, hec } = verified.claims as { jti?: unknown; exp?: unknown; hec?: unknown };
    for (const rule of rules) {
      let threshold: bigint;
      if (rule.amountFrom) {
        const amount = amountOf(rule, request);
        if (typeof amount !== 'bigint') return { kind: 'deny', status: 400, reason: 'invalid_amount', error: 'invalid_request', description: amount.problem };
        threshold = amount;
      } else {
        threshold = BigInt(rule.value!);
      }
      if (typeof jti !== 'string' || typeof hec !== 'object' || hec === null) return refused(`the token carries no encrypted ${rule.claim}`);
      let yes: boolean;
      try {
        yes = await this.#node.decide({ token, jti, hec, ...(typeof exp === 'number' && { exp }), policy: rule.policy, claim: rule.claim, op: rule.op, threshold });
      } catch (err) {
        if (!(err instanceof PolicyNodeError)) throw err;
        return outcomeOf(err, rule);
      }
      if (!yes) return refused(`the request does not satisfy the policy ${rule.policy}`);
    }
    return { kind: 'allow' };
  }
}

function outcomeOf(err: PolicyNodeError, rule: RequireRule): PolicyOutcome {
  if (err.code === 'refused') {
    // Veil says the token is not good any more (revoked, expired): the token's fault.
    if (err.oauthError === 'invalid_token') return { kind: 'deny', status: 401, reason: 'revoked', error: 'invalid_token', description: 'the token is not active' };
    // Rate limited: Veil may answer later; refuse for now without blaming the token.
    if (err.status === 429) return { kind: 'unavailable', reason: 'policy_unavailable', detail: `policy ${rule.policy}: Veil asked to slow down (${err.oauthError ?? '429'})` };
    return refused(`the policy ${rule.policy} cannot be decided for this token (${err.oauthError ?? 'refused'})`);
  }
  // Veil answers once per (token, node, policy): a spending route asked again with another amount.
  if (err.code === 'already_decided') return refused(`the policy ${rule.policy} was already decided for this token; ask with a new token`);
  // The token names a key or carries a claim ciphertext Veil's key set cannot read: the token's.
  if (err.code === 'invalid_input' || err.code === 'he_key_unknown') return refused(`the token carries no usable encrypted ${rule.claim}`);
  // Unreachable, or an answer that does not verify: fail closed, loudly (the detail has no value).
  return { kind: 'unavailable', reason: 'policy_unavailable', detail: `policy ${rule.policy}: ${err.message}` };
}
