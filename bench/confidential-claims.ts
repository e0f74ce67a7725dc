/**
 * Confidential claims (issue 10): the cost of Paillier-encrypted `hec` claims, measured side by
 * side in one run. Run with `node --import tsx bench/confidential-claims.ts` (after
 * `npm run build -w @veil/resource-server`). Options: `--bits 2048,3072` (default both),
 * `--seconds N` per sustained run (default 4).
 *
 * Section D (issuer, helper D): per key size, the CPU cost of the randomness of a token with two
 * HE claims, three ways —
 *   plain            Enc with a fresh ρ^n by public-key modexp, on the issuing thread;
 *   pooled standard  ρ^n by CRT with the primes in a worker thread (RandomnessPool), the
 *                    issuing thread only multiplies (online cost in µs);
 *   short-exponent   h^a with a short a (2·security bits) in a worker (extra assumption);
 * the sustained tokens/s of HeEncryptor with one pool worker (one core), misses included; and
 * the sizes: ciphertext, `hec` claim, and a sealed token (ES256 JWS in ECDH-ES+A256KW/A256GCM
 * JWE) with two HE claims beside one without.
 *
 * Machine shared and noisy: per-operation figures are CPU time (process.cpuUsage), sustained
 * rates are wall clock; compare ratios within one run. Cases run interleaved, median of rounds.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import os from 'node:os';
import { pathToFileURL } from 'node:url';
import {
  blindedDifference,
  ciphertextToBase64url,
  decrypt,
  encrypt,
  generateKeyPair,
  randomFactor,
  randomFactorCrt,
  randomFactorShort,
  shortExponentBase,
  type PaillierKeyBits,
  type PaillierPublicKey,
  type PaillierSecretKey,
} from '@veil/resource-server/paillier';
import { sealAccessToken, type SealingKey, type SigningKey } from '../src/crypto/sealer.js';
import { HeEncryptor } from '../src/he/he-encryptor.js';
import { HeKeyRing } from '../src/he/he-keys.js';
import { RandomnessPool, type RandomnessMode } from '../src/he/randomness-pool.js';
import { printIssuance, runIssuanceBench } from './lib/he-issuance.js';
import { HE_DECISION_HEAD, heDecisionRows, heEndpointRows } from './he-decisions.js';
import { NODE_HEAD, nodeQueryRows } from './he-node.js';
import { textTable } from './lib/report.js';

const ROUNDS = 5;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
}

/**
 * Median CPU milliseconds (user + system of this process) per call of `run` over `rounds` rounds
 * of `perRound` calls. CPU time, not wall time: on a shared, loaded machine wall time measures
 * the other tenants. No worker thread runs during these measurements.
 */
function msPerCall(run: () => unknown, perRound: number, rounds = ROUNDS): number {
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = process.cpuUsage();
    for (let i = 0; i < perRound; i++) run();
    const used = process.cpuUsage(start);
    samples.push((used.user + used.system) / 1000 / perRound);
  }
  return samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)]!;
}

const age = 34n;
const headroom = 125_000n;

export interface IssuerFigures {
  bits: number;
  plainMsPerToken: number;
  crtMsPerToken: number;
  shortMsPerToken: number;
  onlineUsPerToken: number;
  decryptMs: number;
  blindedDifferenceMs: number;
  sustained: Array<{ mode: RandomnessMode; tokensPerSec: number; cpuMsPerToken: number; misses: number; served: number }>;
  sizes: { ciphertextBytes: number; ciphertextChars: number; hecChars: number; tokenWithout: number; tokenWith: number };
}

function keyRingOf(keys: { publicKey: PaillierPublicKey; secretKey: PaillierSecretKey }): HeKeyRing {
  return new HeKeyRing([{ ...keys, retired: false, dropAfter: undefined }], 'bench');
}

/** Sustained HeEncryptor throughput with one pool worker, starting from an empty pool. */
async function sustained(mode: RandomnessMode, keys: { publicKey: PaillierPublicKey; secretKey: PaillierSecretKey }, seconds: number) {
  const pool = new RandomnessPool({ size: 64, workers: 1, mode });
  pool.use(keys.secretKey);
  const encryptor = new HeEncryptor(keyRingOf(keys), pool);
  await encryptor.encrypt({ age, spend_headroom: headroom }); // worker started
  const cpu = process.cpuUsage();
  const start = performance.now();
  const before = pool.stats();
  let tokens = 0;
  // Eight requests in flight, as a busy token endpoint would have.
  const lanes = Array.from({ length: 8 }, async () => {
    while (performance.now() - start < seconds * 1000) {
      await encryptor.encrypt({ age, spend_headroom: headroom });
      tokens++;
    }
  });
  await Promise.all(lanes);
  const elapsed = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  const after = pool.stats();
  await pool.close();
  return {
    mode,
    tokensPerSec: tokens / elapsed,
    // User + system time of every thread of the process (the worker included), per token.
    cpuMsPerToken: (used.user + used.system) / 1000 / tokens,
    misses: after.misses - before.misses,
    served: after.served - before.served,
  };
}

function tokenSizes(pk: PaillierPublicKey, hec: Record<string, string>) {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rs = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signer: SigningKey = { kid: randomBytes(8).toString('base64url'), alg: 'ES256', key: ec.privateKey };
  const recipient: SealingKey = { kid: randomBytes(8).toString('base64url'), alg: 'ECDH-ES+A256KW', enc: 'A256GCM', key: rs.publicKey };
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: 'https://veil.example.com',
    sub: 'd9a8f0b2-6c1e-4f7a-9b3d-2e5c8a1f4b7e',
    aud: 'https://api.example.com',
    client_id: randomBytes(16).toString('base64url'),
    iat: now,
    exp: now + 600,
    jti: randomBytes(32).toString('base64url'),
    scope: 'read',
  };
  const c = encrypt(pk, age);
  return {
    ciphertextBytes: Buffer.from(ciphertextToBase64url(pk, c), 'base64url').length,
    ciphertextChars: ciphertextToBase64url(pk, c).length,
    hecChars: JSON.stringify(hec).length,
    tokenWithout: sealAccessToken(claims, signer, recipient).length,
    tokenWith: sealAccessToken({ ...claims, hec }, signer, recipient).length,
  };
}

export async function runIssuerBench(bits: PaillierKeyBits, seconds: number): Promise<IssuerFigures> {
  const keys = generateKeyPair(bits, `bench-${bits}`);
  const pk = keys.publicKey;
  const h = shortExponentBase(pk);
  const factor = randomFactor(pk);
  const perRound = bits === 2048 ? 6 : 3;
  // Interleaved: each round measures every case once.
  const cases = {
    plain: () => {
      encrypt(pk, age);
      encrypt(pk, headroom);
    },
    crt: () => {
      randomFactorCrt(keys.secretKey);
      randomFactorCrt(keys.secretKey);
    },
    short: () => {
      randomFactorShort(pk, h);
      randomFactorShort(pk, h);
    },
    online: () => {
      ciphertextToBase64url(pk, encrypt(pk, age, factor));
      ciphertextToBase64url(pk, encrypt(pk, headroom, factor));
    },
  };
  const samples: Record<keyof typeof cases, number[]> = { plain: [], crt: [], short: [], online: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, run] of Object.entries(cases) as Array<[keyof typeof cases, () => void]>) {
      samples[name].push(msPerCall(run, name === 'online' ? 200 : perRound, 1));
    }
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const c = encrypt(pk, age);
  const decryptMs = msPerCall(() => decrypt(keys.secretKey, c), perRound * 2);
  const blindedDifferenceMs = msPerCall(() => blindedDifference(pk, c, 18n), perRound);
  const runs = [];
  for (const mode of ['standard', 'short-exponent'] as const) runs.push(await sustained(mode, keys, seconds));
  const hec = { kid: pk.kid, age: ciphertextToBase64url(pk, encrypt(pk, age)), spend_headroom: ciphertextToBase64url(pk, encrypt(pk, headroom)) };
  return {
    bits,
    plainMsPerToken: median(samples.plain),
    crtMsPerToken: median(samples.crt),
    shortMsPerToken: median(samples.short),
    onlineUsPerToken: median(samples.online) * 1000,
    decryptMs,
    blindedDifferenceMs,
    sustained: runs,
    sizes: tokenSizes(pk, hec),
  };
}

function printIssuer(f: IssuerFigures): void {
  const perCore = (ms: number) => `${(1000 / ms).toFixed(0).padStart(6)} tokens/s/core`;
  console.log(`\n== D: issuer, Paillier-${f.bits} (${f.bits === 3072 ? '~128' : '~112'}-bit security), two HE claims per token ==`);
  console.log(`randomness + encryption, CPU time per token (median of ${ROUNDS} interleaved rounds):`);
  console.log(`  plain (fresh rho^n, public key, issuing thread) ${f.plainMsPerToken.toFixed(2).padStart(8)} ms  ${perCore(f.plainMsPerToken)}`);
  console.log(`  pooled standard (rho^n by CRT, in a worker)     ${f.crtMsPerToken.toFixed(2).padStart(8)} ms  ${perCore(f.crtMsPerToken)}`);
  console.log(`  pooled short-exponent (h^a, in a worker)        ${f.shortMsPerToken.toFixed(2).padStart(8)} ms  ${perCore(f.shortMsPerToken)}`);
  console.log(`  online cost with a pooled factor (issuing thread) ${f.onlineUsPerToken.toFixed(1).padStart(6)} µs`);
  console.log('sustained HeEncryptor, pool of 64, 1 worker, 8 requests in flight (from an empty pool):');
  for (const s of f.sustained) {
    console.log(
      `  ${s.mode.padEnd(15)} ${s.tokensPerSec.toFixed(0).padStart(6)} tokens/s, process CPU ${s.cpuMsPerToken.toFixed(2)} ms/token, ${s.misses} of ${s.served} factors waited for a worker`,
    );
  }
  console.log(`arithmetic, CPU time: decrypt (CRT) ${f.decryptMs.toFixed(2)} ms; blindedDifference (node side, fresh re-randomisation) ${f.blindedDifferenceMs.toFixed(2)} ms`);
  const s = f.sizes;
  console.log(`sizes: ciphertext ${s.ciphertextBytes} B = ${s.ciphertextChars} chars base64url; hec claim ${s.hecChars} chars`);
  console.log(`  sealed token (ES256 + ECDH-ES+A256KW/A256GCM): ${s.tokenWithout} chars without HE claims, ${s.tokenWith} with two (+${s.tokenWith - s.tokenWithout})`);
}

async function main(): Promise<void> {
  const bitsList = (arg('bits') ?? '2048,3072').split(',').map(Number) as PaillierKeyBits[];
  const seconds = Number(arg('seconds') ?? 4);
  console.log(`confidential claims benchmark: node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'cpu'}), load ${os.loadavg()[0]!.toFixed(1)}`);
  for (const bits of bitsList) printIssuer(await runIssuerBench(bits, seconds));

  // ==== E1: issuance through Veil (tokens with hec claims beside plain sealed issuance) ====
  // A real Veil per key size (PostgreSQL and Redis on 127.0.0.1): bench/lib/he-issuance.ts.
  for (const bits of bitsList) printIssuance(await runIssuanceBench(bits, seconds));
  if (bitsList.includes(3072)) printIssuance(await runIssuanceBench(3072, seconds, { randomness: 'short-exponent' }));

  // ==== E2: decide and aggregate at Veil (POST /he/decide, /he/aggregate) ====
  // Veil's own work per decision and per aggregate (in process), then the endpoints over HTTP on a
  // real Veil per key size (bench/he-decisions.ts).
  console.log("decide and aggregate at Veil (CPU is this process's: for the HTTP rows, client and Veil together):");
  const decisionRows = await heDecisionRows(bitsList);
  for (const bits of bitsList) decisionRows.push(...(await heEndpointRows(bits, 20)));
  console.log(textTable(HE_DECISION_HEAD, decisionRows));

  // ==== E3: node-side query (createPolicyNode: build c', call Veil, verify the decision) ====
  // The node's CPU per query in process, then createPolicyNode().decide() on a real Veil per key
  // size (bench/he-node.ts); goal: the node's part at most 15 ms.
  console.log("\nnode-side query (CPU is this process's: for the end-to-end rows, node and Veil together):");
  console.log(textTable(NODE_HEAD, await nodeQueryRows(bitsList, 20)));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
