/**
 * A Veil set up for confidential-claim decisions (issue 10): an API registered with HE claims,
 * a web client that gets users' tokens for it (with the companion `hec_token`), users with
 * attributes, nodes (confidential clients) with policies, and the node's side of a request
 * built with the SDK's Paillier module (public key only).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, jwtVerify, type JWTPayload } from 'jose';
import { blindedDifference, ciphertextFromBase64url, ciphertextToBase64url, publicKeyFromJwk, type PaillierPublicKey } from '@veil/resource-server/paillier';
import { httpAuthorizationCodeFlow, tokenRequest, type HttpFlowClient } from './http-flow.js';
import { registerResourceServer, type TestResourceServer } from './resource-servers.js';
import { rememberSecret } from './secrets.js';
import type { TestVeil } from './veil.js';

export const HE_API = 'https://shop.he.test/api';
const REDIRECT = 'https://app.he.test/cb';

export interface Node {
  clientId: string;
  secret: string;
}

export interface IssuedTokens {
  access: string;
  companion: string;
  refresh: string;
  jti: string;
  exp: number;
  hec: Record<string, string> & { kid: string };
}

export interface DecideAnswer {
  status: number;
  body: { decision?: string; total?: string; error?: string; error_description?: string };
  retryAfter: string | null;
}

export class HeWorld {
  rs!: TestResourceServer;
  web!: HttpFlowClient;
  pk!: PaillierPublicKey;
  #users = 0;

  constructor(readonly veil: TestVeil) {}

  static async create(veil: TestVeil): Promise<HeWorld> {
    const world = new HeWorld(veil);
    world.rs = await registerResourceServer(veil, { identifier: HE_API, scopes: ['read'], extra: { he_claims: ['age', 'spend_headroom'] } });
    const web = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'shop',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      scope: 'openid offline_access',
      resources: [HE_API],
      resource_scopes: { [HE_API]: ['read'] },
    });
    if (web.status !== 201) throw new Error(`web client: ${JSON.stringify(web.body)}`);
    world.web = { issuer: veil.issuer, clientId: web.body.client.client_id, clientSecret: web.body.client_secret, redirectUri: REDIRECT };
    const jwks = (await (await fetch(`${veil.issuer}/he/jwks`)).json()) as { keys: unknown[] };
    world.pk = publicKeyFromJwk(jwks.keys[0]);
    return world;
  }

  /** A user with these attributes; returns the credentials. */
  async user(attributes: Record<string, number>): Promise<{ email: string; password: string; id: string }> {
    const user = { email: `he-user-${++this.#users}-${randomBytes(3).toString('hex')}@example.test`, password: 'correct horse battery staple' };
    const res = await this.veil.admin<{ user: { id: string } }>('POST', '/admin/users', { ...user, attributes });
    if (res.status !== 201) throw new Error(`user: ${JSON.stringify(res.body)}`);
    return { ...user, id: res.body.user.id };
  }

  /** A confidential client acting as a node. */
  async node(name: string): Promise<Node> {
    const res = await this.veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: name,
      grant_types: ['client_credentials'],
    });
    if (res.status !== 201) throw new Error(`node: ${JSON.stringify(res.body)}`);
    rememberSecret(res.body.client_secret, 'node secret');
    return { clientId: res.body.client.client_id, secret: res.body.client_secret };
  }

  async policy(node: Node, body: { id: string; claim: string; op: string; kind?: string }): Promise<void> {
    const res = await this.veil.admin('POST', '/admin/policies', { node: node.clientId, purpose: `test ${body.id}`, ...body });
    if (res.status !== 201) throw new Error(`policy: ${JSON.stringify(res.body)}`);
  }

  /** A user's tokens for the API, by the authorization code flow. */
  async tokens(user: { email: string; password: string }): Promise<IssuedTokens> {
    const body = (await httpAuthorizationCodeFlow(this.web, user, 'openid offline_access read', { resource: HE_API })) as unknown as Record<string, string>;
    return this.#read(body);
  }

  /** A fresh access token (and companion) of the same user and grant. */
  async refreshed(tokens: IssuedTokens): Promise<IssuedTokens> {
    const res = await tokenRequest(this.web, { grant_type: 'refresh_token', refresh_token: tokens.refresh, resource: HE_API });
    if (res.status !== 200) throw new Error(`refresh: ${JSON.stringify(res.body)}`);
    return this.#read(res.body);
  }

  #read(body: Record<string, string>): IssuedTokens {
    const companion = body.hec_token;
    if (!companion) throw new Error('no hec_token in the token response');
    rememberSecret(companion, 'companion token');
    const claims = decodeJwt<{ hec: IssuedTokens['hec'] }>(companion);
    return { access: body.access_token!, companion, refresh: body.refresh_token!, jti: claims.jti!, exp: claims.exp!, hec: claims.hec };
  }

  /** The node's c' for `claim op t` in its plain form (x − t >= 0 is "yes"), optionally negated on the coin. */
  query(tokens: IssuedTokens, claim: string, t: bigint, negate = false): string {
    const c = ciphertextFromBase64url(this.pk, tokens.hec[claim]!);
    return ciphertextToBase64url(this.pk, blindedDifference(this.pk, c, t, { negate }));
  }

  async decide(node: Node | undefined, body: Record<string, unknown>, init: { headers?: Record<string, string>; raw?: string } = {}): Promise<DecideAnswer> {
    return this.#post('/he/decide', node, body, init);
  }

  async aggregate(node: Node | undefined, body: Record<string, unknown>): Promise<DecideAnswer> {
    return this.#post('/he/aggregate', node, body, {});
  }

  async #post(path: string, node: Node | undefined, body: Record<string, unknown>, init: { headers?: Record<string, string>; raw?: string }): Promise<DecideAnswer> {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...init.headers };
    if (node) headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(node.clientId)}:${encodeURIComponent(node.secret)}`).toString('base64')}`;
    const res = await fetch(`${this.veil.issuer}${path}`, { method: 'POST', headers, body: init.raw ?? JSON.stringify(body) });
    const text = await res.text();
    let parsed: DecideAnswer['body'];
    try {
      parsed = JSON.parse(text) as DecideAnswer['body'];
    } catch {
      throw new Error(`${path} answered ${res.status} with non-JSON: ${text.slice(0, 200)}`);
    }
    return { status: res.status, body: parsed, retryAfter: res.headers.get('retry-after') };
  }

  /** Verifies a signed answer with jose against Veil's JWKS. */
  async verify(jwt: string, typ: string): Promise<JWTPayload> {
    return (await jwtVerify(jwt, createRemoteJWKSet(new URL(`${this.veil.issuer}/jwks`)), { issuer: this.veil.issuer, typ })).payload;
  }
}

export const ctHash = (b64: string) => createHash('sha256').update(Buffer.from(b64, 'base64url')).digest('base64url');
