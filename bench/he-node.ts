/**
 * Confidential claims, the node's side of a query (issue 10, E3's part of the bench):
 *   1. in process, 2048- and 3072-bit keys side by side: the node's CPU to build c′ with the SDK
 *      (prepareQuery: op reduction, log-uniform blinding, re-randomisation, coin, commitment), for
 *      gte (no reduction) and lte (one extra multiplyPlain by −1), and to verify a decision JWT
 *      with jose; goal ≤ 15 ms per query;
 *   2. through HTTP on a running Veil per key size (this source tree, in process, real PostgreSQL
 *      and Redis): `createPolicyNode().decide()` on fresh companion tokens,
 *      its own report per query (build ms, round trip ms, bytes sent and received), and the whole
 *      decide() latency as the caller sees it (Veil's work included: Veil runs in this process).
 *
 *   node --import tsx bench/he-node.ts                 (after npm run build -w @veil/resource-server)
 *   BENCH_NODE_QUERIES=20 BENCH_CRYPTO_ITERATIONS=100 ...
 *
 * Exported `nodeQueryRows()` lets bench/confidential-claims.ts print the same figures.
 */
import { createHash } from 'node:crypto';
import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import { createPolicyNode, prepareQuery, type PolicyQueryEvent } from '@veil/resource-server';
import { ciphertextToBase64url, encrypt, generateKeyPairAsync, type PaillierKeyBits } from '@veil/resource-server/paillier';
import { HeWorld, type IssuedTokens } from '../test/helpers/he-decisions.js';
import { createTestStores } from '../test/helpers/stores.js';
import { startTestVeil } from '../test/helpers/veil.js';
import { textTable } from './lib/report.js';

const ITERATIONS = Number(process.env.BENCH_CRYPTO_ITERATIONS ?? 100);
const QUERIES = Number(process.env.BENCH_NODE_QUERIES ?? 20);

export const NODE_HEAD = ['key bits', 'node-side operation', 'p50 ms', 'p95 ms', 'CPU ms/op (this process)', 'bytes'];

interface Timing {
  p50: number;
  p95: number;
  cpuMs: number;
}

function summarize(samples: number[], cpuMs: number): Timing {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: sorted[Math.floor(sorted.length / 2)]!, p95: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))]!, cpuMs };
}

async function time(n: number, fn: (i: number) => unknown): Promise<Timing> {
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

const ms = (x: number) => x.toFixed(2);

/** The node's CPU per query in process, both key sizes interleaved per round (the machine is shared). */
async function arithmeticRows(bitsList: PaillierKeyBits[]): Promise<string[][]> {
  const keys = await Promise.all(bitsList.map((bits) => generateKeyPairAsync(bits, `node-bench-${bits}`)));
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwks = createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'bench', alg: 'ES256', use: 'sig' }] });
  const decision = await new SignJWT({ node: 'n', policy: 'p', ct_hash: createHash('sha256').update('c').digest('base64url'), ok: true })
    .setProtectedHeader({ alg: 'ES256', kid: 'bench', typ: 'he-decision+jwt' })
    .setIssuer('https://veil.bench')
    .setIssuedAt()
    .setExpirationTime('5m')
    .setJti('j')
    .sign(privateKey);
  const rows: string[][] = [];
  for (const [k, bits] of bitsList.entries()) {
    const pk = keys[k]!.publicKey;
    const c = encrypt(pk, 34n);
    const gte = await time(ITERATIONS, () => prepareQuery(pk, c, 'gte', 18n));
    const lte = await time(ITERATIONS, () => prepareQuery(pk, c, 'lte', 18n));
    const sample = prepareQuery(pk, c, 'gte', 18n);
    rows.push([
      `${bits}`,
      "build c' (gte: blind, re-randomise, coin, commitment)",
      ms(gte.p50),
      ms(gte.p95),
      ms(gte.cpuMs),
      `c' ${sample.ciphertext.length} chars (${ciphertextToBase64url(pk, c).length} as in the token)`,
    ]);
    rows.push([`${bits}`, "build c' (lte: one more multiplyPlain by -1)", ms(lte.p50), ms(lte.p95), ms(lte.cpuMs), '']);
  }
  const verify = await time(ITERATIONS, () => jwtVerify(decision, jwks, { issuer: 'https://veil.bench', typ: 'he-decision+jwt' }));
  rows.push(['-', 'verify the decision JWT (jose, ES256)', ms(verify.p50), ms(verify.p95), ms(verify.cpuMs), `JWT ${decision.length} chars`]);
  return rows;
}

/** createPolicyNode().decide() against a running Veil, fresh tokens (Veil answers once per token). */
async function endToEndRows(bits: PaillierKeyBits, queries: number): Promise<string[][]> {
  const stores = await createTestStores();
  const veil = await startTestVeil(stores, { HE_KEY_BITS: String(bits), HE_DECISIONS_PER_SUBJECT_PER_DAY: '1000', LOG_LEVEL: 'warn' });
  try {
    const world = await HeWorld.create(veil);
    const nodeClient = await world.node('bench node');
    await world.policy(nodeClient, { id: 'age-gate', claim: 'age', op: 'gte' });
    const events: PolicyQueryEvent[] = [];
    const node = createPolicyNode({ issuer: veil.issuer, credentials: { clientId: nodeClient.clientId, clientSecret: nodeClient.secret }, onQuery: (e) => events.push(e) });
    let tokens = await world.tokens(await world.user({ age: 34 }));
    const prepared: IssuedTokens[] = [];
    for (let i = 0; i < queries + 1; i++) {
      prepared.push(tokens);
      tokens = await world.refreshed(tokens);
    }
    // The first query fetches discovery and keys: warm-up, not counted.
    await node.decide({ hecToken: prepared[queries]!.companion, policy: 'age-gate', claim: 'age', op: 'gte', threshold: 18 });
    events.length = 0;
    const whole = await time(queries, async (i) => {
      const yes = await node.decide({ hecToken: prepared[i]!.companion, policy: 'age-gate', claim: 'age', op: 'gte', threshold: 18 });
      if (!yes) throw new Error('34 >= 18 was answered no');
    });
    const build = summarize(
      events.map((e) => e.buildMs),
      0,
    );
    const trip = summarize(
      events.map((e) => e.roundTripMs),
      0,
    );
    const e = events.at(-1)!;
    return [
      [`${bits}`, "build c' inside decide() (node CPU, synchronous)", ms(build.p50), ms(build.p95), '', ''],
      [`${bits}`, 'round trip POST /he/decide (Veil included)', ms(trip.p50), ms(trip.p95), '', `request ${e.requestBytes} B (companion + c'), answer ${e.responseBytes} B`],
      [`${bits}`, 'decide() as the caller sees it (verify companion and decision)', ms(whole.p50), ms(whole.p95), `${ms(whole.cpuMs)} (node + Veil)`, ''],
    ];
  } finally {
    await veil.stop();
    await stores.cleanup();
  }
}

/** Every node-side row: in process for each key size, then end to end on a real Veil per key size. */
export async function nodeQueryRows(bitsList: PaillierKeyBits[] = [2048, 3072], queries = QUERIES): Promise<string[][]> {
  const rows = await arithmeticRows(bitsList);
  for (const bits of bitsList) rows.push(...(await endToEndRows(bits, queries)));
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(textTable(NODE_HEAD, await nodeQueryRows()));
  process.exit(0);
}
