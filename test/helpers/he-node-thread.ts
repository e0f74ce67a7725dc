/**
 * A confidential-claim policy node in its own worker thread, given exactly its public inputs
 * (test/helpers/he-node-worker.ts), and the check that it holds nothing else: the partial-trust
 * tests (he-partial-trust*.test.ts) run their nodes this way.
 */
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import type { Node } from './he-decisions.js';
import type { NodeRequest, NodeWorkerData } from './he-node-worker.js';

const WORKER = new URL('./he-node-worker.ts', import.meta.url).href;

export type NodeThreadRequest = NodeRequest extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;

/** A node in its own worker thread, with exactly `data` and an empty environment. */
export class NodeThread {
  readonly #worker: Worker;
  readonly #waiting = new Map<number, { resolve: (answer: unknown) => void; reject: (err: unknown) => void }>();
  #serial = 0;

  constructor(readonly data: NodeWorkerData) {
    // Node 20 does not carry tsx's loader into workers: the worker registers it, then loads the
    // node's module. Nothing else is passed (env empty, workerData as given).
    const load = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(WORKER)}); })`;
    this.#worker = new Worker(load, { eval: true, workerData: data, env: {} });
    this.#worker.on('message', (msg: { id: number; answer: unknown }) => {
      this.#waiting.get(msg.id)?.resolve(msg.answer);
      this.#waiting.delete(msg.id);
    });
    this.#worker.on('error', (err) => {
      for (const w of this.#waiting.values()) w.reject(err);
      this.#waiting.clear();
    });
  }

  ask<T>(request: NodeThreadRequest): Promise<T> {
    const id = ++this.#serial;
    return new Promise<T>((resolve, reject) => {
      this.#waiting.set(id, { resolve: resolve as (answer: unknown) => void, reject });
      this.#worker.postMessage({ ...request, id });
    });
  }

  stop(): Promise<number> {
    return this.#worker.terminate();
  }
}

/** A JWK member that would make a key private (RSA/EC/OKP `d` and CRT members, Paillier p, q, λ, μ). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'lambda', 'mu', 'hp', 'hq'];

export function assertOnlyPublicInputs(inputs: { workerData: NodeWorkerData; env: Record<string, string> }, credentials: Node) {
  assert.deepEqual(Object.keys(inputs.workerData).sort(), ['credentials', 'heJwks', 'issuer', 'jwks']);
  assert.deepEqual(inputs.workerData.credentials, { clientId: credentials.clientId, clientSecret: credentials.secret });
  assert.deepEqual(inputs.env, {}, 'the node thread runs with an empty environment');
  for (const key of inputs.workerData.heJwks.keys as Array<Record<string, unknown>>) {
    assert.deepEqual(Object.keys(key).sort(), ['alg', 'kid', 'kty', 'n', 'use'], 'an HE key is n and its names only');
    assert.equal(key.kty, 'Paillier');
  }
  for (const key of inputs.workerData.jwks.keys) for (const m of PRIVATE_MEMBERS) assert.equal((key as Record<string, unknown>)[m], undefined, `JWKS member ${m}`);
}
