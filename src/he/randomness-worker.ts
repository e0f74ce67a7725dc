/**
 * Worker thread of the randomness pool (randomness-pool.ts): computes Paillier randomness
 * factors off the main thread. Jobs: `{ id, key, count }` where `key` says how: `crt` (ρ^n by CRT
 * with the primes, standard randomness) or `short` (h^a, short-exponent randomness). Replies
 * `{ id, factors }` (bigints travel by structured clone).
 */
import { parentPort } from 'node:worker_threads';
import { keyPairFromPrimes, randomFactorCrt, randomFactorShort, type PaillierPublicKey, type PaillierSecretKey } from '@veil/resource-server/paillier';

export type WorkerKey = { kid: string; mode: 'crt'; p: bigint; q: bigint } | { kid: string; mode: 'short'; n: bigint; h: bigint };
export interface FactorJob {
  id: number;
  key: WorkerKey;
  count: number;
}
export type FactorReply = { id: number; factors: bigint[] } | { id: number; error: string };

const secrets = new Map<string, PaillierSecretKey>();
const publics = new Map<string, PaillierPublicKey>();

function factor(key: WorkerKey): bigint {
  if (key.mode === 'crt') {
    let sk = secrets.get(key.kid);
    if (!sk) {
      sk = keyPairFromPrimes(key.p, key.q, key.kid).secretKey;
      secrets.set(key.kid, sk);
    }
    return randomFactorCrt(sk);
  }
  let pk = publics.get(key.kid);
  if (!pk) {
    pk = { kid: key.kid, n: key.n, n2: key.n * key.n, bits: key.n.toString(2).length };
    publics.set(key.kid, pk);
  }
  return randomFactorShort(pk, key.h);
}

parentPort?.on('message', (job: FactorJob) => {
  let reply: FactorReply;
  try {
    const factors: bigint[] = [];
    for (let i = 0; i < job.count; i++) factors.push(factor(job.key));
    reply = { id: job.id, factors };
  } catch (err) {
    reply = { id: job.id, error: (err as Error).name };
  }
  parentPort!.postMessage(reply);
});
