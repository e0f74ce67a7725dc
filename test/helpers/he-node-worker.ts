/**
 * A policy node in a worker thread (test/integration/he-partial-trust.test.ts). Its only inputs
 * are its workerData: Veil's issuer URL (where its decision endpoint is), Veil's public HE key
 * set, Veil's public signing JWKS and its own client credentials; it runs with an empty
 * environment. It builds queries with the SDK's node code (createPolicyNode, prepareQuery) and
 * keeps its private coins to itself: the thread that decrypts sees c' only.
 *
 * Messages (each with an `id` echoed in the answer):
 *   inputs                 what the node holds (workerData and process.env), for the test to check
 *   build {items}          c' for each (c, op, t); the coins stay here under the batch id
 *   read {batch, bits}     the node's answers from the decrypting thread's bits for that batch
 *   decide {input}         one decision through Veil's POST /he/decide (createPolicyNode)
 *   raw {token, policy, kid, ciphertext, t}   (the malicious node) POST /he/decide with the
 *                          unblinded Enc(x − t): whatever Veil answers, as it came
 *   replay {issuer, signing, runs}  the same node code against another decision service, with
 *                          the coins given (the node's-view test)
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createPolicyNode, prepareQuery, readDecision, PolicyNodeError, type DecideInput, type PolicyOp, type PreparedQuery } from '@veil/resource-server';
import {
  add,
  ciphertextFromBase64url,
  ciphertextToBase64url,
  encrypt,
  publicKeyFromJwk,
  randomFactorShort,
  shortExponentBase,
  type PaillierPublicKey,
} from '@veil/resource-server/paillier';
import type { JSONWebKeySet } from 'jose';

export interface NodeWorkerData {
  issuer: string;
  credentials: { clientId: string; clientSecret: string };
  heJwks: { keys: unknown[] };
  jwks: JSONWebKeySet;
}

export type NodeRequest =
  | { id: number; type: 'inputs' }
  | { id: number; type: 'build'; items: Array<{ c: string; op: PolicyOp; t: string }> }
  | { id: number; type: 'read'; batch: number; bits: boolean[] }
  | { id: number; type: 'decide'; input: DecideInput }
  | { id: number; type: 'raw'; token: string; policy: string; kid: string; ciphertext: string; t: string }
  | { id: number; type: 'replay'; issuer: string; signing: JSONWebKeySet; runs: Array<{ input: DecideInput; coin: boolean }> };

const data = workerData as NodeWorkerData;
const keys = new Map<string, PaillierPublicKey>(data.heJwks.keys.map((jwk) => [publicKeyFromJwk(jwk).kid, publicKeyFromJwk(jwk)]));
const activeKey = (): PaillierPublicKey => [...keys.values()][0]!;
const node = createPolicyNode({ issuer: data.issuer, credentials: data.credentials, keys: { he: data.heJwks, signing: data.jwks } });
const batches = new Map<number, PreparedQuery[]>();
const shortBases: Record<string, bigint> = {};

const failure = (err: unknown) =>
  err instanceof PolicyNodeError ? { error: { code: err.code, oauthError: err.oauthError, status: err.status } } : { error: { code: 'crash', message: String(err) } };

async function handle(msg: NodeRequest): Promise<unknown> {
  switch (msg.type) {
    case 'inputs':
      return { workerData: data, env: { ...process.env } };
    case 'build': {
      const pk = activeKey();
      // Re-randomised with short-exponent factors (the issuer's HE_RANDOMNESS=short-exponent kind):
      // the 10,000 arithmetic cases check decisions, which any n-th residue leaves unchanged, and
      // a full-size ρ^n each would be two thirds of the test's time.
      const base = (shortBases[pk.kid] ??= shortExponentBase(pk));
      const queries = msg.items.map((item) => prepareQuery(pk, ciphertextFromBase64url(pk, item.c), item.op, BigInt(item.t), undefined, randomFactorShort(pk, base)));
      batches.set(msg.id, queries);
      return { batch: msg.id, ciphertexts: queries.map((q) => q.ciphertext) };
    }
    case 'read': {
      const queries = batches.get(msg.batch)!;
      batches.delete(msg.batch);
      return { results: queries.map((q, i) => readDecision(q, msg.bits[i]!)) };
    }
    case 'decide':
      try {
        const proof = await node.decideWithProof(msg.input);
        return { result: proof.result, coin: proof.coin, decisionJwt: proof.decisionJwt };
      } catch (err) {
        return failure(err);
      }
    case 'raw': {
      const pk = keys.get(msg.kid) ?? activeKey();
      const unblinded = add(pk, ciphertextFromBase64url(pk, msg.ciphertext), encrypt(pk, -BigInt(msg.t)));
      const auth = `Basic ${Buffer.from(`${encodeURIComponent(data.credentials.clientId)}:${encodeURIComponent(data.credentials.clientSecret)}`).toString('base64')}`;
      const res = await fetch(`${data.issuer}/he/decide`, {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body: JSON.stringify({ token: msg.token, policy: msg.policy, kid: msg.kid, ciphertext: ciphertextToBase64url(pk, unblinded) }),
      });
      return { status: res.status, body: await res.json() };
    }
    case 'replay': {
      const coins = msg.runs.map((r) => r.coin);
      const replayNode = createPolicyNode({ issuer: msg.issuer, credentials: data.credentials, keys: { he: data.heJwks, signing: msg.signing }, coin: () => coins.shift()! });
      const outputs: unknown[] = [];
      for (const run of msg.runs) {
        try {
          const proof = await replayNode.decideWithProof(run.input);
          outputs.push({ result: proof.result, coin: proof.coin });
        } catch (err) {
          outputs.push(failure(err));
        }
      }
      return { outputs };
    }
  }
}

parentPort!.on('message', (msg: NodeRequest) => {
  handle(msg).then(
    (answer) => parentPort!.postMessage({ id: msg.id, answer }),
    (err: unknown) => parentPort!.postMessage({ id: msg.id, answer: { error: { code: 'crash', message: String(err) } } }),
  );
});
