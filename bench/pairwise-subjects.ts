/**
 * What issue 11's pairwise subjects and RFC 9701 answers cost, in process, side by side:
 *   - sealing a user's access token for a public API against the same for a pairwise API (the
 *     claims built as the Sealer builds them, the `sub` derived by PairwiseSubjects);
 *   - the derivation alone (one HMAC-SHA-256);
 *   - an introspection answer as JSON against the same answer as a signed JWT (an OAuth client)
 *     and as a signed then encrypted JWT (a resource server with a P-256 key).
 * Run with `node --import tsx bench/pairwise-subjects.ts`. Cases run interleaved, round after
 * round; each figure is the median round. Compare the ratios of one run.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import os from 'node:os';
import type { AdapterPayload } from 'oidc-provider';
import { sealAccessToken, type SealingKey, type SigningKey } from '../src/crypto/sealer.js';
import { IntrospectionJwt } from '../src/oidc/introspection-jwt.js';
import { PairwiseSubjects } from '../src/oidc/pairwise-subjects.js';
import { accessTokenClaims } from '../src/oidc/token-claims.js';
import type { Caller } from '../src/oidc/token-endpoints.js';
import type { EncryptionKeys } from '../src/resource-registry/encryption-keys.js';
import type { ResourceServerRecord } from '../src/store/resource-servers.js';

const ROUNDS = 7;
const ROUND_MS = 250;

function keyPair(namedCurve: string): { privateKey: KeyObject; publicKey: KeyObject } {
  const generate = generateKeyPairSync as unknown as (t: string, o: object) => { privateKey: Buffer };
  const der = generate('ec', { namedCurve, publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } });
  const privateKey = createPrivateKey({ key: der.privateKey, format: 'der', type: 'pkcs8' });
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

async function opsPerSec(run: () => unknown, ms: number): Promise<number> {
  let n = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    const result = run();
    if (result instanceof Promise) await result;
    n++;
    elapsed = performance.now() - start;
  } while (elapsed < ms);
  return n / (elapsed / 1000);
}

const issuer = 'https://veil.example.com';
const signer: SigningKey = { kid: randomBytes(16).toString('base64url'), alg: 'ES256', key: keyPair('P-256').privateKey };
const apiKey = keyPair('P-256');
const recipient: SealingKey = { kid: 'api-key', alg: 'ECDH-ES+A256KW', enc: 'A256GCM', key: apiKey.publicKey };
const subjects = new PairwiseSubjects(randomBytes(32));
const rs = (subjectMode: 'pairwise' | 'public'): ResourceServerRecord => ({
  identifier: 'https://api.example.com',
  name: 'API',
  scopes: ['read'],
  accessTokenTtl: 600,
  encryptionJwk: null,
  jwksUri: null,
  encryptionAlg: 'ECDH-ES+A256KW',
  encryptionEnc: 'A256GCM',
  claims: [],
  introspectionClientId: 'rs_bench',
  introspectionSecretHash: null,
  subjectMode,
  heClaims: [],
});
const [publicApi, pairwiseApi] = [rs('public'), rs('pairwise')];
const now = Math.floor(Date.now() / 1000);
const payload: AdapterPayload = {
  accountId: randomUUID(),
  clientId: randomBytes(16).toString('base64url'),
  aud: publicApi.identifier,
  scope: 'read',
  iat: now,
  exp: now + 600,
  extra: { auth_time: now - 60, amr: ['pwd'] },
};
const jti = randomBytes(32).toString('base64url');
const answer = {
  active: true,
  scope: 'read',
  client_id: payload.clientId,
  sub: subjects.forApi(String(payload.accountId), publicApi.identifier),
  aud: publicApi.identifier,
  iss: issuer,
  exp: now + 600,
  iat: now,
  jti,
  token_type: 'Bearer',
};
const jwt = new IntrospectionJwt({ issuer, signer, keys: { forResourceServer: async () => recipient } as unknown as EncryptionKeys });
const rsCaller = { kind: 'resource-server', rs: publicApi } as Caller;
const clientCaller = { kind: 'client', client: { clientId: 'client' } } as unknown as Caller;

const cases: Array<{ name: string; run: () => unknown }> = [
  { name: 'seal, public API', run: () => sealAccessToken(accessTokenClaims(issuer, jti, payload, publicApi, subjects.subjectFor(payload, publicApi)), signer, recipient) },
  { name: 'seal, pairwise API', run: () => sealAccessToken(accessTokenClaims(issuer, jti, payload, pairwiseApi, subjects.subjectFor(payload, pairwiseApi)), signer, recipient) },
  { name: 'pairwise sub alone', run: () => subjects.forApi(String(payload.accountId), pairwiseApi.identifier) },
  { name: 'introspection answer, JSON', run: () => JSON.stringify(answer) },
  { name: 'introspection answer, JWT (client)', run: () => jwt.answer(answer, clientCaller) },
  { name: 'introspection answer, JWT+JWE (API)', run: () => jwt.answer(answer, rsCaller) },
];

console.log(`pairwise subjects / RFC 9701 micro-benchmark: node ${process.version}, ${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(1)}`);
console.log(`${ROUNDS} interleaved rounds of ${ROUND_MS} ms per case, median round\n`);
const samples = new Map<string, number[]>(cases.map((c) => [c.name, []]));
for (const c of cases) await opsPerSec(c.run, 100);
for (let round = 0; round < ROUNDS; round++) for (const c of cases) samples.get(c.name)!.push(await opsPerSec(c.run, ROUND_MS));
const median = (name: string) => {
  const sorted = samples.get(name)!.sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};
for (const c of cases)
  console.log(`${c.name.padEnd(40)}${Math.round(median(c.name)).toLocaleString('en-US').padStart(12)} ops/s  ${(1e6 / median(c.name)).toFixed(1).padStart(8)} µs`);
console.log(`\npairwise/public sealing: ${(median('seal, pairwise API') / median('seal, public API')).toFixed(3)}x`);
console.log(`JWT (client)/JSON answers: ${(median('introspection answer, JWT (client)') / median('introspection answer, JSON')).toFixed(3)}x`);
