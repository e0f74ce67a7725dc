/**
 * A bounded pool of precomputed Paillier randomness factors for the active HE key, filled by
 * worker threads (randomness-worker.ts), so issuing a token with confidential claims costs a
 * multiplication, never a modular exponentiation on the event loop.
 *
 * The workers start and the pool fills from the first encrypted claim on (or `warm`), so a
 * deployment without confidential claims pays nothing; then it is kept full.
 *
 * When the pool is empty (a burst above the workers' sustained rate), `take` waits for the next
 * factor a worker delivers: the event loop stays free, the request waits, and the miss is counted
 * (`stats().misses`). Each factor is handed out once and then forgotten (reused randomness would
 * link tokens and leak differences of values).
 *
 * Randomness (HE_RANDOMNESS): `standard` is ρ^n mod n² for a fresh uniform ρ, computed by CRT
 * with the primes (Veil's own threads only); `short-exponent` is h^a for a per-process h = ρ0^n
 * and a uniform a of 2·security bits (224 at 2048, 256 at 3072), several times cheaper, resting on
 * the short-exponent indistinguishability assumption documented in docs/CONFIDENTIAL_CLAIMS.md.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { shortExponentBase, type PaillierPublicKey, type PaillierSecretKey } from '@veil/resource-server/paillier';
import type { FactorJob, FactorReply, WorkerKey } from './randomness-worker.js';

export type RandomnessMode = 'standard' | 'short-exponent';

export interface RandomnessPoolOptions {
  /** Factors kept ready for the active key (0: each computed on demand, in a worker). */
  size: number;
  workers: number;
  mode: RandomnessMode;
}

export interface PoolStats {
  ready: number;
  served: number;
  /** Takes that found the pool empty and waited for a worker. */
  misses: number;
}

// Small batches: a waiting take is served by the next factor any worker delivers.
const BATCH = 4;

interface Slot {
  kid: string;
  key: WorkerKey;
  ready: bigint[];
  waiters: Array<{ resolve(f: bigint): void; reject(e: Error): void }>;
  inflight: number;
}

export class RandomnessPool {
  readonly #workers = new Set<Worker>();
  readonly #file: URL;
  readonly #jobs = new Map<number, { slot: Slot; count: number; worker: Worker }>();
  readonly #busy = new Map<Worker, number>();
  #slot: Slot | undefined;
  #nextId = 1;
  #served = 0;
  #misses = 0;
  #deaths = 0;
  #broken: Error | undefined;
  #closed = false;
  #started = false;

  constructor(private readonly options: RandomnessPoolOptions) {
    this.#file = new URL(`./randomness-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);
  }

  /** Workers start, and the pool fills, at the first take (or warm): a deployment that issues no
   *  confidential claims spends no thread and no CPU on them. */
  #start(): void {
    if (this.#started) return;
    this.#started = true;
    for (let i = 0; i < Math.max(1, this.options.workers); i++) this.#spawn();
  }

  #spawn(): void {
    // Run from TypeScript sources (tests, benchmarks), the worker registers tsx's loader first:
    // Node 20 does not carry `--import tsx` into worker threads. Built code loads the .js directly.
    const worker = this.#file.pathname.endsWith('.ts')
      ? new Worker(`import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(this.#file.href)}); })`, {
          eval: true,
        })
      : new Worker(this.#file);
    worker.unref();
    worker.on('message', (reply: FactorReply) => this.#onReply(worker, reply));
    worker.on('error', (err) => this.#lost(worker, err));
    worker.on('exit', () => this.#lost(worker, new Error('randomness worker exited')));
    this.#workers.add(worker);
    this.#busy.set(worker, 0);
  }

  /** A worker died: its jobs are lost (their waiters fail), a replacement starts; after a few deaths the pool gives up. */
  #lost(worker: Worker, err: Error): void {
    if (!this.#workers.delete(worker) || this.#closed) return;
    this.#busy.delete(worker);
    for (const [id, job] of this.#jobs) {
      if (job.worker !== worker) continue;
      this.#jobs.delete(id);
      job.slot.inflight = Math.max(0, job.slot.inflight - job.count);
    }
    this.#failAll(err);
    if (++this.#deaths > 3) {
      this.#broken = new Error(`randomness workers keep failing: ${err.message}`);
      return;
    }
    this.#spawn();
    this.#refill();
  }

  /** Points the pool at the active key; factors of a previous key are dropped. */
  use(secretKey: PaillierSecretKey): void {
    const pk = secretKey.publicKey;
    if (this.#slot?.kid === pk.kid) return;
    const key: WorkerKey =
      this.options.mode === 'standard' ? { kid: pk.kid, mode: 'crt', p: secretKey.p, q: secretKey.q } : { kid: pk.kid, mode: 'short', n: pk.n, h: shortExponentBase(pk) };
    const previous = this.#slot;
    this.#slot = { kid: pk.kid, key, ready: [], waiters: [], inflight: 0 };
    // Waiters for the old key get nothing from the new one: they fail, and the encryptor retries.
    for (const w of previous?.waiters.splice(0) ?? []) w.reject(new Error('HE key changed'));
    this.#refill();
  }

  /** One fresh factor for `pk` (the key `use` was given): at once from the pool, else from the next worker reply. */
  take(pk: PaillierPublicKey): Promise<bigint> {
    const slot = this.#slot;
    if (this.#closed) return Promise.reject(new Error('randomness pool closed'));
    if (this.#broken) return Promise.reject(this.#broken);
    if (!slot || slot.kid !== pk.kid) return Promise.reject(new Error(`no randomness pool for HE key ${pk.kid}`));
    this.#start();
    this.#served++;
    const factor = slot.ready.shift();
    if (factor !== undefined) {
      this.#refill();
      return Promise.resolve(factor);
    }
    this.#misses++;
    return new Promise((resolve, reject) => {
      slot.waiters.push({ resolve, reject });
      this.#refill();
    });
  }

  stats(): PoolStats {
    return { ready: this.#slot?.ready.length ?? 0, served: this.#served, misses: this.#misses };
  }

  /** Resolves once the pool holds `count` factors (or its size): benchmarks and start-up warm-up. */
  async warm(count = this.options.size, timeoutMs = 120_000): Promise<void> {
    this.#start();
    this.#refill();
    const deadline = Date.now() + timeoutMs;
    while ((this.#slot?.ready.length ?? 0) < Math.min(count, this.options.size) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#failAll(new Error('randomness pool closed'));
    await Promise.all([...this.#workers].map((w) => w.terminate()));
  }

  #refill(): void {
    const slot = this.#slot;
    if (!slot || this.#closed || this.#broken || this.#workers.size === 0) return;
    const wanted = () => Math.max(this.options.size, 0) + slot.waiters.length - slot.ready.length - slot.inflight;
    while (wanted() > 0) {
      // The least busy worker; jobs queue in each worker in order.
      const worker = [...this.#busy.entries()].sort((a, b) => a[1] - b[1])[0]![0];
      const count = Math.min(BATCH, wanted());
      const job: FactorJob = { id: this.#nextId++, key: slot.key, count };
      this.#jobs.set(job.id, { slot, count, worker });
      this.#busy.set(worker, (this.#busy.get(worker) ?? 0) + count);
      slot.inflight += count;
      worker.postMessage(job);
    }
  }

  #onReply(worker: Worker, reply: FactorReply): void {
    const job = this.#jobs.get(reply.id);
    if (!job) return;
    this.#jobs.delete(reply.id);
    const { slot, count } = job;
    this.#busy.set(worker, Math.max(0, (this.#busy.get(worker) ?? 0) - count));
    slot.inflight = Math.max(0, slot.inflight - count);
    if ('error' in reply) {
      for (const w of slot.waiters.splice(0)) w.reject(new Error(`randomness worker failed: ${reply.error}`));
      return;
    }
    for (const factor of reply.factors) {
      const waiter = slot.waiters.shift();
      if (waiter) waiter.resolve(factor);
      else if (slot === this.#slot) slot.ready.push(factor);
    }
    this.#refill();
  }

  #failAll(err: Error): void {
    const slot = this.#slot;
    for (const w of slot?.waiters.splice(0) ?? []) w.reject(err);
  }
}
