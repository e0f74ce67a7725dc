/**
 * A stand-in for Veil's side of confidential-claim decisions, on 127.0.0.1, speaking the wire
 * format of docs/CONFIDENTIAL_CLAIMS.md (discovery with `he_jwks_uri`, `/jwks`, `/he/jwks`,
 * `POST /he/decide`, `POST /he/aggregate`): it holds a Paillier secret key and a signing key,
 * decrypts c' and signs `he-decision+jwt` answers. The SDK's node side is tested against it for
 * what real Veil never does on purpose (answers about another query, unsigned or expired answers),
 * and the node's-view test replays recorded decision bits through it. Real Veil is used
 * everywhere else (test/integration/he-partial-trust.test.ts, test/e2e/he-gate-nginx.test.ts).
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, type JWTPayload } from 'jose';
import { ciphertextFromBase64url, decrypt, publicJwk, type PaillierSecretKey } from '@veil/resource-server/paillier';
import type { Signer } from './sealed-tokens.js';

export interface DecideCall {
  authorization: string | undefined;
  body: Record<string, unknown>;
}

export interface HeStandIn {
  url: string;
  /** Every POST /he/decide body, oldest first. */
  calls: DecideCall[];
  /** Client id → secret accepted with client_secret_basic. */
  clients: Map<string, string>;
  /** Answer with this instead of deciding (status and JSON body), when set. */
  override: { status: number; body: unknown } | undefined;
  /** Change the decision's claims before signing (a Veil answering about another query). */
  tamper: ((claims: JWTPayload) => JWTPayload) | undefined;
  /** Sign with this key instead of the published one. */
  signWith: Signer | undefined;
  /** The decision bits to answer, in order, instead of decrypting (a replay); shifted as used. */
  scriptedBits: boolean[] | undefined;
  /** What decrypting c' gave, per call (the stand-in's view; real Veil never returns it). */
  decrypted: bigint[];
  close(): Promise<void>;
}

const json = (res: http.ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

function basicClient(header: string | undefined): { id: string; secret: string } | undefined {
  const m = /^Basic (.+)$/.exec(header ?? '');
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString();
  const i = text.indexOf(':');
  if (i < 0) return undefined;
  const decode = (v: string) => decodeURIComponent(v.replace(/\+/g, ' '));
  return { id: decode(text.slice(0, i)), secret: decode(text.slice(i + 1)) };
}

export async function startHeStandIn(options: {
  signer: Signer;
  secretKeys: PaillierSecretKey[];
  jtiOf: (token: string) => string;
  /** Which HE key a token's ciphertexts are under (real Veil reads the token's hec.kid); default the first. */
  kidOf?: (token: string) => string;
}): Promise<HeStandIn> {
  let url = '';
  const state: Omit<HeStandIn, 'url' | 'close'> = {
    calls: [],
    clients: new Map(),
    override: undefined,
    tamper: undefined,
    signWith: undefined,
    scriptedBits: undefined,
    decrypted: [],
  };

  async function decide(req: http.IncomingMessage, body: Record<string, unknown>): Promise<{ status: number; body: unknown }> {
    const client = basicClient(req.headers.authorization);
    if (!client || state.clients.get(client.id) !== client.secret) return { status: 401, body: { error: 'invalid_client' } };
    if (state.override) return state.override;
    const { token, policy, ciphertext, commitment } = body;
    if (typeof token !== 'string' || typeof policy !== 'string' || typeof ciphertext !== 'string') return { status: 400, body: { error: 'invalid_request' } };
    let ok: boolean | undefined = state.scriptedBits?.shift();
    if (ok === undefined) {
      const kid = options.kidOf?.(token);
      const sk = options.secretKeys.find((k) => kid === undefined || k.publicKey.kid === kid);
      let value: bigint | undefined;
      try {
        if (sk) value = decrypt(sk, ciphertextFromBase64url(sk.publicKey, ciphertext));
      } catch {
        value = undefined;
      }
      if (value === undefined) return { status: 400, body: { error: 'invalid_request' } };
      state.decrypted.push(value);
      ok = value >= 0n;
    }
    const ctHash = createHash('sha256').update(Buffer.from(ciphertext, 'base64url')).digest('base64url');
    let claims: JWTPayload = { jti: options.jtiOf(token), node: client.id, policy, ct_hash: ctHash, ok, ...(typeof commitment === 'string' && { commitment }) };
    if (state.tamper) claims = state.tamper(claims);
    const signer = state.signWith ?? options.signer;
    const jwt = await new SignJWT(claims)
      .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: 'he-decision+jwt' })
      .setIssuer(url)
      .setIssuedAt()
      .setExpirationTime(typeof claims.exp === 'number' ? claims.exp : '5m')
      .sign(signer.privateKey);
    return { status: 200, body: { decision: jwt } };
  }

  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', url).pathname;
    if (req.method === 'GET' && path === '/.well-known/openid-configuration') return json(res, 200, { issuer: url, jwks_uri: `${url}/jwks`, he_jwks_uri: `${url}/he/jwks` });
    if (req.method === 'GET' && path === '/jwks') return json(res, 200, { keys: [options.signer.publicJwk] });
    if (req.method === 'GET' && path === '/he/jwks') return json(res, 200, { keys: options.secretKeys.map((sk) => publicJwk(sk.publicKey)) });
    if (req.method === 'POST' && path === '/he/decide') {
      let text = '';
      req
        .setEncoding('utf8')
        .on('data', (chunk: string) => (text += chunk))
        .on('end', () => {
          let body: Record<string, unknown>;
          try {
            body = JSON.parse(text) as Record<string, unknown>;
          } catch {
            return json(res, 400, { error: 'invalid_request' });
          }
          state.calls.push({ authorization: req.headers.authorization, body });
          decide(req, body).then(
            (answer) => json(res, answer.status, answer.body),
            () => json(res, 500, { error: 'server_error' }),
          );
        });
      return;
    }
    json(res, 404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(state, {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
