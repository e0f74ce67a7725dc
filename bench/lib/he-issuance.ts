/**
 * Section E1 of bench/confidential-claims.ts: issuance through Veil of tokens with confidential
 * claims, beside plain sealed issuance, in one run.
 *
 *   end to end   a real Veil (in this process, real PostgreSQL and Redis, the HE key of the given
 *                size, the randomness pool's worker thread) answers `refresh_token` grants for an
 *                API with `he_claims: [age, spend_headroom]` and for one without, the user's
 *                attributes read and encrypted per token; lanes of requests in flight, rounds
 *                interleaved (HE, plain, plain, HE, ...), median tokens/s; the ratio HE / plain.
 *                The load generator shares the process (its fetch cost is in both columns alike).
 *   sizes        the access token (JWE) with `hec`, the companion `hec_token`, the plain token.
 *   not slower   the Sealer alone on an audience without he_claims, with the HE claims wired
 *                (an encryptor that throws if ever reached) and without: interleaved rounds,
 *                median µs per token, the ratio.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { AdapterPayload } from 'oidc-provider';
import type { SealingKey, SigningKey } from '../../src/crypto/sealer.js';
import { HeClaims } from '../../src/oidc/he-claims.js';
import { Sealer, type SealingDeps } from '../../src/oidc/sealed-tokens.js';
import type { ResourceServerRecord } from '../../src/store/resource-servers.js';
import { httpAuthorizationCodeFlow, type HttpFlowClient } from '../../test/helpers/http-flow.js';
import { createTestStores } from '../../test/helpers/stores.js';
import { startTestVeil } from '../../test/helpers/veil.js';

export interface IssuanceFigures {
  bits: number;
  randomness: 'standard' | 'short-exponent';
  lanes: number;
  rounds: number;
  heTokensPerSec: number;
  plainTokensPerSec: number;
  /** Process CPU (every thread: Veil, pool worker, load generator) per token, ms. */
  heCpuMsPerToken: number;
  plainCpuMsPerToken: number;
  sizes: { heAccessToken: number; companion: number; plainAccessToken: number };
  sealer: { withHeWiredUs: number; withoutUs: number };
}

const TOKEN_GOAL_CHARS = 5000;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Refresh-token chains, one per lane, each lane sequential: tokens/s and CPU per token over `seconds`. */
async function drive(
  issuer: string,
  client: HttpFlowClient,
  chains: string[],
  seconds: number,
): Promise<{ tokensPerSec: number; cpuMsPerToken: number; last: Record<string, string> }> {
  const headers = { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}` };
  let tokens = 0;
  let last: Record<string, string> = {};
  const cpu = process.cpuUsage();
  const start = performance.now();
  await Promise.all(
    chains.map(async (_, lane) => {
      while (performance.now() - start < seconds * 1000) {
        const res = await fetch(`${issuer}/token`, { method: 'POST', headers, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: chains[lane]! }) });
        const body = (await res.json()) as Record<string, string>;
        if (res.status !== 200 || !body.refresh_token) throw new Error(`refresh failed: ${res.status} ${body.error ?? ''}`);
        chains[lane] = body.refresh_token;
        last = body;
        tokens++;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  return { tokensPerSec: tokens / elapsed, cpuMsPerToken: (used.user + used.system) / 1000 / tokens, last };
}

/** The Sealer on an audience without he_claims, HE wired or not: µs per token, interleaved rounds. */
async function sealerNotSlower(rounds: number): Promise<{ withHeWiredUs: number; withoutUs: number }> {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signer: SigningKey = { kid: randomBytes(8).toString('base64url'), alg: 'ES256', key: ec.privateKey };
  const key: SealingKey = { kid: randomBytes(8).toString('base64url'), alg: 'ECDH-ES+A256KW', enc: 'A256GCM', key: rsKey.publicKey };
  const rs = { identifier: 'https://plain.bench', claims: [], heClaims: [], subjectMode: 'public' } as unknown as ResourceServerRecord;
  const never = new HeClaims({
    values: () => Promise.reject(new Error('an audience without he_claims reached the attribute read')),
    encryptor: { encrypt: () => Promise.reject(new Error('an audience without he_claims reached the HE encryptor')) },
  });
  const base = {
    issuer: 'https://veil.bench',
    signer,
    registry: { find: () => Promise.resolve(rs) },
    keys: { forResourceServer: () => Promise.resolve(key) },
    subjects: { subjectFor: () => 'd9a8f0b2-6c1e-4f7a-9b3d-2e5c8a1f4b7e' },
  };
  const sealers = { with: new Sealer({ ...base, heClaims: never } as unknown as SealingDeps), without: new Sealer(base as unknown as SealingDeps) };
  const now = Math.floor(Date.now() / 1000);
  const payload = { aud: rs.identifier, accountId: 'd9a8f0b2-6c1e-4f7a-9b3d-2e5c8a1f4b7e', clientId: 'bench', iat: now, exp: now + 600, scope: 'read' } as AdapterPayload;
  const samples = { with: [] as number[], without: [] as number[] };
  const perRound = 400;
  for (let r = 0; r < rounds; r++) {
    for (const name of r % 2 ? (['without', 'with'] as const) : (['with', 'without'] as const)) {
      const start = performance.now();
      for (let i = 0; i < perRound; i++) await sealers[name].seal(randomBytes(16).toString('base64url'), payload);
      samples[name].push(((performance.now() - start) / perRound) * 1000);
    }
  }
  return { withHeWiredUs: median(samples.with), withoutUs: median(samples.without) };
}

export async function runIssuanceBench(
  bits: 2048 | 3072,
  seconds: number,
  options: { randomness?: 'standard' | 'short-exponent'; lanes?: number; rounds?: number } = {},
): Promise<IssuanceFigures> {
  const { randomness = 'standard', lanes = 8, rounds = 3 } = options;
  const stores = await createTestStores();
  const veil = await startTestVeil(stores, {
    HE_KEY_BITS: String(bits),
    HE_RANDOMNESS: randomness,
    LOG_LEVEL: 'warn',
    TOKEN_RATE_LIMIT_PER_CLIENT: '1000000',
    TOKEN_RATE_LIMIT_PER_ADDRESS: '1000000',
    LOGIN_MAX_FAILURES_PER_IP: '1000000',
  });
  try {
    const register = async (identifier: string, heClaims: string[]) => {
      const { publicKey } = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256', extractable: true });
      const jwk: JWK = await exportJWK(publicKey);
      jwk.kid = (await calculateJwkThumbprint(jwk)).slice(0, 16);
      jwk.use = 'enc';
      const res = await veil.admin('POST', '/admin/resources', { identifier, name: identifier, scopes: ['read'], jwk, he_claims: heClaims });
      if (res.status !== 201) throw new Error(`registering ${identifier}: ${res.status}`);
    };
    const HE = 'https://he.bench';
    const PLAIN = 'https://plain.bench';
    await register(HE, ['age', 'spend_headroom']);
    await register(PLAIN, []);
    const redirectUri = 'http://127.0.0.1:9/cb';
    const created = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'bench-web',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      resources: [HE, PLAIN],
      resource_scopes: { [HE]: ['read'], [PLAIN]: ['read'] },
    });
    const client: HttpFlowClient = { issuer: veil.issuer, clientId: created.body.client.client_id, clientSecret: created.body.client_secret, redirectUri };
    const user = { email: 'bench@example.com', password: `bench ${randomBytes(8).toString('hex')}` };
    await veil.admin('POST', '/admin/users', { ...user, attributes: { age: 34, spend_limit: 500_000, spend_this_month: 123_456 } });
    const chains = async (resource: string) => {
      const out: string[] = [];
      for (let i = 0; i < lanes; i++) out.push((await httpAuthorizationCodeFlow(client, user, 'offline_access', { resource, scope: 'offline_access read' })).refresh_token);
      return out;
    };
    const heChains = await chains(HE);
    const plainChains = await chains(PLAIN);

    // Warm-up (JIT, connections, the pool filled), then interleaved measured rounds.
    await drive(veil.issuer, client, heChains, 1);
    await drive(veil.issuer, client, plainChains, 1);
    const he: Array<Awaited<ReturnType<typeof drive>>> = [];
    const plain: Array<Awaited<ReturnType<typeof drive>>> = [];
    for (let r = 0; r < rounds; r++) {
      for (const which of r % 2 ? (['plain', 'he'] as const) : (['he', 'plain'] as const)) {
        if (which === 'he') he.push(await drive(veil.issuer, client, heChains, seconds));
        else plain.push(await drive(veil.issuer, client, plainChains, seconds));
      }
    }
    const heLast = he.at(-1)!.last;
    return {
      bits,
      randomness,
      lanes,
      rounds,
      heTokensPerSec: median(he.map((m) => m.tokensPerSec)),
      plainTokensPerSec: median(plain.map((m) => m.tokensPerSec)),
      heCpuMsPerToken: median(he.map((m) => m.cpuMsPerToken)),
      plainCpuMsPerToken: median(plain.map((m) => m.cpuMsPerToken)),
      sizes: { heAccessToken: heLast.access_token!.length, companion: heLast.hec_token?.length ?? 0, plainAccessToken: plain.at(-1)!.last.access_token!.length },
      sealer: await sealerNotSlower(9),
    };
  } finally {
    await veil.stop();
    await stores.cleanup();
  }
}

export function printIssuance(f: IssuanceFigures): void {
  const ok = (met: boolean) => (met ? 'met' : 'MISSED');
  console.log(
    `\n== E1: issuance through Veil, Paillier-${f.bits}, ${f.randomness} randomness (one pool worker), refresh_token grant, ${f.lanes} requests in flight, median of ${f.rounds} interleaved rounds ==`,
  );
  console.log(`  API with he_claims [age, spend_headroom] ${f.heTokensPerSec.toFixed(0).padStart(6)} tokens/s, process CPU ${f.heCpuMsPerToken.toFixed(2)} ms/token`);
  console.log(`  API without he_claims                    ${f.plainTokensPerSec.toFixed(0).padStart(6)} tokens/s, process CPU ${f.plainCpuMsPerToken.toFixed(2)} ms/token`);
  console.log(`  ratio HE / plain: ${(f.heTokensPerSec / f.plainTokensPerSec).toFixed(2)} (tokens/s), ${(f.heCpuMsPerToken / f.plainCpuMsPerToken).toFixed(2)} (CPU per token)`);
  const s = f.sizes;
  console.log(
    `  sizes (characters, no compression): access token with hec ${s.heAccessToken} (${ok(s.heAccessToken <= TOKEN_GOAL_CHARS)}: ≤ ${TOKEN_GOAL_CHARS}), companion hec_token ${s.companion}, access token without ${s.plainAccessToken}`,
  );
  const r = f.sealer;
  console.log(
    `  not slower: Sealer on an audience without he_claims ${r.withHeWiredUs.toFixed(1)} µs/token with HE wired, ${r.withoutUs.toFixed(1)} without (ratio ${(r.withHeWiredUs / r.withoutUs).toFixed(2)}; the HE code is never reached)`,
  );
}
