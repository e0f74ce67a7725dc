/**
 * What the decision and aggregate endpoints share: POST with a JSON body at one path, the node
 * authenticated as a confidential client with Veil's caller authentication (the rules of /token:
 * client_secret_basic / _post, private_key_jwt), its registered policy, and its per-node rate.
 */
import type { Context, Middleware } from 'koa';
import type { Client } from 'oidc-provider';
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { z } from 'zod';
import { jsonBody } from '../../http/body.js';
import type { CallerAuthenticator } from '../../oidc/token-endpoints.js';
import { EndpointError } from '../../oidc/token-endpoints.js';
import type { HePolicyKind, HePolicyRecord } from '../../store/he-policies.js';
import { badRequest, noPolicy, Refusal, sendRefusal } from './refusal.js';

export interface NodeRequest<T> {
  node: Client;
  body: T;
}

export function nodeEndpoint<T>(
  path: string,
  callers: CallerAuthenticator,
  schema: z.ZodType<T>,
  limit: string,
  handle: (ctx: Context, request: NodeRequest<T>) => Promise<void>,
): Middleware {
  const parse = jsonBody(limit);
  return async (ctx, next) => {
    if (ctx.path !== path) {
      await next();
      return;
    }
    ctx.set('Cache-Control', 'no-store');
    try {
      if (ctx.method !== 'POST') throw new EndpointError(405, 'invalid_request', 'use POST');
      if (!ctx.is('application/json')) throw new EndpointError(400, 'invalid_request', 'the body must be application/json');
      await parse(ctx, async () => {});
      const raw: unknown = ctx.request.body;
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw badRequest('the body must be a JSON object');
      const fields = raw as Record<string, unknown>;
      // No credentials at all is a failed authentication here (401), not a malformed request.
      if (ctx.headers.authorization === undefined && !fields.client_id && !fields.client_secret && !fields.client_assertion) {
        throw new EndpointError(401, 'invalid_client', 'client authentication failed');
      }
      const caller = await callers.authenticate(ctx, fields);
      // A node is a client that proves who it is: a resource server's introspection credentials
      // or a public client (which proves nothing) could spend anyone's budgets.
      if (caller.kind !== 'client' || caller.client.clientAuthMethod === 'none') throw new EndpointError(401, 'invalid_client', 'client authentication failed');
      const result = schema.safeParse(raw);
      if (!result.success) {
        const issue = result.error.issues[0]!;
        throw badRequest(`${issue.path.join('.') || 'body'}: ${issue.message}`);
      }
      await handle(ctx, { node: caller.client, body: result.data });
    } catch (err) {
      sendRefusal(ctx, err);
    }
  };
}

/** The node's policy of this kind, or the one refusal for every other case. */
export async function policyFor(find: (id: string) => Promise<HePolicyRecord | undefined>, id: string, node: string, kind: HePolicyKind): Promise<HePolicyRecord> {
  const policy = await find(id);
  if (!policy || policy.clientId !== node || policy.kind !== kind) throw noPolicy();
  return policy;
}

/** One unit of the node's rate; 429 slow_down when spent. Store failures use the limiter's in-process insurance. */
export async function spendRate(limiter: RateLimiterAbstract, node: string): Promise<void> {
  try {
    await limiter.consume(node);
  } catch (rejection) {
    if (rejection instanceof RateLimiterRes) throw new Refusal(429, 'slow_down', 'too many requests from this client', rejection.msBeforeNext / 1000);
    throw rejection;
  }
}

/** Auth parameters may sit in the JSON body (client_secret_post); the schemas allow them. */
export const authFields = {
  client_id: z.string().optional(),
  client_secret: z.string().optional(),
  client_assertion: z.string().optional(),
  client_assertion_type: z.string().optional(),
};
