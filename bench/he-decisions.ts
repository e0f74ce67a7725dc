/**
 * Confidential-claim decisions and aggregates at Veil (issue 10, E2's part of the bench):
 *   1. Veil's work per decision, in process, 2048- and 3072-bit keys side by side: parse c′ (fixed
 *      width, Z*_{n²} check), CRT decryption, SHA-256 of c′, sign the he-decision+jwt (ES256).
 *      Also the node's c′ (blindedDifference) for comparison, and an aggregate of k = 10 tokens'
 *      ciphertexts (product + decryption + signing), and the proof that c′ was blinded from the
 *      token's own c (proveBlinding at the node, verifyBlinding at Veil; size of the proof).
 *      Median and p95 latency, CPU per operation.
 *   2. POST /he/decide through HTTP on a running Veil (this source tree, in process, real
 *      PostgreSQL and Redis, HE_KEY_BITS as set, default 3072): fresh decisions (new token each:
 *      policy look-up, token resolution and liveness, the budget script, decryption, signing, the
 *      cache write) and cached repeats; latency and bytes per request and response.
 *
 *   node --import tsx bench/he-decisions.ts
 *   BENCH_DECISIONS=40 BENCH_CRYPTO_ITERATIONS=200 HE_KEY_BITS=2048 ...
 *
 * Exported `heDecisionRows()` lets bench/confidential-claims.ts print the same figures.
 */
import { createHash } from 'node:crypto';
import { exportJWK, generateKeyPair as joseKeyPair } from 'jose';
import {
  blindedDifference,
  blindedDifferenceWithWitness,
  ciphertextFromBase64url,
  ciphertextToBase64url,
  decrypt,
  encrypt,
  generateKeyPairAsync,
  proofFromWire,
  proofToWire,
  proveBlinding,
  verifyBlinding,
  type PaillierKeyBits,
} from '../packages/resource-server/src/paillier.js';
import { DecisionSigner } from '../src/he/decisions/decision-token.js';
import type { SigningJwk } from '../src/crypto/keys.js';
import { HeWorld, type IssuedTokens } from '../test/helpers/he-decisions.js';
import { createTestStores } from '../test/helpers/stores.js';
import { startTestVeil } from '../test/helpers/veil.js';
import { textTable } from './lib/report.js';

const ITERATIONS = Number(process.env.BENCH_CRYPTO_ITERATIONS ?? 200);
const DECISIONS = Number(process.env.BENCH_DECISIONS ?? 40);

interface Timing {
  p50: number;
  p95: number;
  cpuMs: number;
}

function timeIt(n: number, fn: (i: number) => void): Timing {
  const samples: number[] = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    fn(i);
    samples.push(performance.now() - t);
  }
  const cpu = process.cpuUsage(cpu0);
  return summarize(samples, (cpu.user + cpu.system) / 1000 / n);
}

async function timeAsync(n: number, fn: (i: number) => Promise<void>): Promise<Timing> {
  const samples: number[] = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    samples.push(performance.now() - t);
  }
  const cpu = process.cpuUsage(cpu0);
  return summarize(samples, (cpu.user + cpu.system) / 1000 / n);
}

function summarize(samples: number[], cpuMs: number): Timing {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: sorted[Math.floor(sorted.length / 2)]!, p95: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))]!, cpuMs };
}

const ms = (x: number) => x.toFixed(2);

async function signer(): Promise<DecisionSigner> {
  const { privateKey } = await joseKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: 'bench', alg: 'ES256', use: 'sig' } as SigningJwk;
  return new DecisionSigner('https://veil.bench', [jwk]);
}

/** Veil's in-process work per decision and per aggregate of 10, for each key size. */
export async function heDecisionRows(bitsList: PaillierKeyBits[] = [2048, 3072]): Promise<string[][]> {
  const sign = await signer();
  const rows: string[][] = [];
  for (const bits of bitsList) {
    const { publicKey: pk, secretKey: sk } = await generateKeyPairAsync(bits, `bench-${bits}`);
    const c = encrypt(pk, 34n);
    const queries = Array.from({ length: ITERATIONS }, () => ciphertextToBase64url(pk, blindedDifference(pk, c, 18n)));
    const node = timeIt(Math.min(ITERATIONS, 50), () => void blindedDifference(pk, c, 18n));
    const jwts: Promise<string>[] = [];
    const veil = timeIt(ITERATIONS, (i) => {
      const b64 = queries[i]!;
      const ok = decrypt(sk, ciphertextFromBase64url(pk, b64)) >= 0n;
      const ctHash = createHash('sha256').update(Buffer.from(b64, 'base64url')).digest('base64url');
      jwts.push(sign.decision({ jti: 'j', node: 'n', policy: 'p', ctHash, ok, exp: Math.floor(Date.now() / 1000) + 300 }));
    });
    const signing = await timeAsync(
      ITERATIONS,
      async () => void (await sign.decision({ jti: 'j', node: 'n', policy: 'p', ctHash: 'h', ok: true, exp: Math.floor(Date.now() / 1000) + 300 })),
    );
    const jwt = await jwts[0]!;
    const ten = Array.from({ length: 10 }, (_, i) => ciphertextToBase64url(pk, encrypt(pk, BigInt(20 + i))));
    const aggregate = await timeAsync(Math.min(ITERATIONS, 50), async () => {
      let product = 1n;
      for (const e of ten) product = (product * ciphertextFromBase64url(pk, e)) % pk.n2;
      await sign.total({ node: 'n', policy: 'p', claim: 'age', count: 10, total: decrypt(sk, product) });
    });
    // The proof that c′ was blinded from this token's c (not wired into POST /he/decide yet).
    const context = ['jti', 'policy', 'node'];
    const proofRuns = Math.min(ITERATIONS, 30);
    const witnessed = Array.from({ length: proofRuns }, (_, i) => blindedDifferenceWithWitness(pk, c, 18n, { negate: i % 2 === 1 }));
    const proofs: string[] = [];
    const prove = timeIt(proofRuns, (i) => void proofs.push(JSON.stringify(proofToWire(pk, proveBlinding(pk, c, witnessed[i]!.ciphertext, witnessed[i]!.witness, context)))));
    const parsed = proofs.map((p) => proofFromWire(pk, JSON.parse(p)));
    let verified = 0;
    const verifyCrt = timeIt(proofRuns, (i) => void (verifyBlinding(sk, c, witnessed[i]!.ciphertext, parsed[i]!, context) && verified++));
    const verifyPublic = timeIt(proofRuns, (i) => void (verifyBlinding(pk, c, witnessed[i]!.ciphertext, parsed[i]!, context) && verified++));
    if (verified !== 2 * proofRuns) throw new Error('an honest proof did not verify');
    const wire = proofToWire(pk, proveBlinding(pk, c, witnessed[0]!.ciphertext, witnessed[0]!.witness, context));
    const proofBytes = [wire.e, wire.z1, wire.z2, wire.z3].reduce((sum, f) => sum + Buffer.from(f, 'base64url').length, 0);
    rows.push([`${bits}`, 'node: build c′ (blindedDifference)', ms(node.p50), ms(node.p95), ms(node.cpuMs), '']);
    rows.push([
      `${bits}`,
      'node: prove c′ is from the token’s c (proveBlinding)',
      ms(prove.p50),
      ms(prove.p95),
      ms(prove.cpuMs),
      `proof ${proofBytes} B raw, ${proofs[0]!.length} chars as JSON`,
    ]);
    rows.push([`${bits}`, 'Veil: verify the proof (verifyBlinding, secret key)', ms(verifyCrt.p50), ms(verifyCrt.p95), ms(verifyCrt.cpuMs), '']);
    rows.push([`${bits}`, 'anyone: verify the proof (public key only)', ms(verifyPublic.p50), ms(verifyPublic.p95), ms(verifyPublic.cpuMs), '']);
    rows.push([`${bits}`, 'Veil: parse + decrypt + hash (+ sign, async)', ms(veil.p50), ms(veil.p95), ms(veil.cpuMs), `c′ ${queries[0]!.length} chars; JWT ${jwt.length} chars`]);
    rows.push([`${bits}`, 'Veil: sign the decision JWT', ms(signing.p50), ms(signing.p95), ms(signing.cpuMs), '']);
    rows.push([`${bits}`, 'Veil: aggregate of 10 (product, decrypt, sign)', ms(aggregate.p50), ms(aggregate.p95), ms(aggregate.cpuMs), '']);
  }
  return rows;
}

/** POST /he/decide and /he/aggregate on a running Veil: fresh decisions, cached repeats, aggregates of 10. */
export async function heEndpointRows(bits: PaillierKeyBits = Number(process.env.HE_KEY_BITS ?? 3072) as PaillierKeyBits, decisions = DECISIONS): Promise<string[][]> {
  const stores = await createTestStores();
  const veil = await startTestVeil(stores, {
    HE_KEY_BITS: String(bits),
    HE_DECISIONS_PER_SUBJECT_PER_DAY: '1000',
    HE_AGGREGATE_WINDOW_SECONDS: '1',
    LOG_LEVEL: 'warn',
    // No pool: its worker threads refilling after the tokens made above would count in this process's CPU.
    HE_POOL_SIZE: '0',
  });
  try {
    const world = await HeWorld.create(veil);
    const node = await world.node('bench node');
    await world.policy(node, { id: 'age-gate', claim: 'age', op: 'gte' });
    await world.policy(node, { id: 'age-sum', claim: 'age', op: 'sum', kind: 'aggregate' });
    let tokens = await world.tokens(await world.user({ age: 34 }));
    const prepared: Array<{ tokens: IssuedTokens; ciphertext: string }> = [];
    for (let i = 0; i < decisions; i++) {
      prepared.push({ tokens, ciphertext: world.query(tokens, 'age', 18n) });
      tokens = await world.refreshed(tokens);
    }
    let requestBytes = 0;
    let responseBytes = 0;
    const fresh = await timeAsync(decisions, async (i) => {
      const body = { token: prepared[i]!.tokens.companion, policy: 'age-gate', ciphertext: prepared[i]!.ciphertext };
      const res = await world.decide(node, body);
      if (res.status !== 200) throw new Error(`decide: ${res.status} ${JSON.stringify(res.body)}`);
      requestBytes = JSON.stringify(body).length;
      responseBytes = JSON.stringify(res.body).length;
    });
    const cached = await timeAsync(decisions, async (i) => {
      const res = await world.decide(node, { token: prepared[i]!.tokens.companion, policy: 'age-gate', ciphertext: prepared[i]!.ciphertext });
      if (res.status !== 200) throw new Error(`decide: ${res.status}`);
    });
    const companions: string[] = [];
    for (let i = 0; i < 10; i++) companions.push((await world.tokens(await world.user({ age: 20 + i }))).companion);
    let aggregateBytes = 0;
    let totalBytes = 0;
    const samples: number[] = [];
    for (let i = 0; i < 5; i++) {
      // Each user counts once per window (1 s here): wait it out, outside the timing.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const body = { policy: 'age-sum', claim: 'age', tokens: companions };
      const started = performance.now();
      const res = await world.aggregate(node, body);
      samples.push(performance.now() - started);
      if (res.status !== 200) throw new Error(`aggregate: ${res.status} ${JSON.stringify(res.body)}`);
      aggregateBytes = JSON.stringify(body).length;
      totalBytes = JSON.stringify(res.body).length;
    }
    const aggregate = summarize(samples, Number.NaN);
    return [
      [
        String(bits),
        'HTTP POST /he/decide, fresh (client and Veil in this process)',
        ms(fresh.p50),
        ms(fresh.p95),
        ms(fresh.cpuMs),
        `request ${requestBytes} B (companion + c′), response ${responseBytes} B`,
      ],
      [String(bits), 'HTTP POST /he/decide, cached repeat', ms(cached.p50), ms(cached.p95), ms(cached.cpuMs), ''],
      [String(bits), 'HTTP POST /he/aggregate, 10 companions', ms(aggregate.p50), ms(aggregate.p95), '-', `request ${aggregateBytes} B, response ${totalBytes} B`],
    ];
  } finally {
    await veil.stop();
    await stores.cleanup();
  }
}

export const HE_DECISION_HEAD = ['key bits', 'operation', 'p50 ms', 'p95 ms', 'CPU ms/op (this process)', 'bytes'];

if (import.meta.url === `file://${process.argv[1]}`) {
  const crypto = await heDecisionRows();
  console.log(textTable(HE_DECISION_HEAD, crypto));
  const http = await heEndpointRows();
  console.log(textTable(HE_DECISION_HEAD, [...crypto, ...http]));
  process.exit(0);
}
