/**
 * Micro-benchmark of the sealed-token crypto alone (src/crypto/sealer.ts) against jose doing the
 * same work: signing an ES256 access token, and signing + encrypting it to a P-256, an X25519
 * and an RSA-2048 resource server key. Run with `node --import tsx bench/sealer.ts`; bench/tokens.ts
 * imports runSealerBench() for its report.
 *
 * Cases run interleaved, round after round, and each figure is the median round: the machine is
 * shared and noisy, so compare the ratios of one run rather than absolute figures across runs.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import os from 'node:os';
import { pathToFileURL } from 'node:url';
import { CompactEncrypt, SignJWT, importJWK, type CryptoKey, type JWK } from 'jose';
import { sealAccessToken, signJwt, type KeyManagementAlg, type SealingKey, type SigningKey } from '../src/crypto/sealer.js';

const ROUNDS = 7;
const ROUND_MS = 250;

interface Pair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** Keys re-imported from DER: exporting a KeyObject fresh from generateKeyPairSync as JWK can deadlock Node 20. */
function keyPair(type: 'ec' | 'x25519' | 'rsa', options: { namedCurve?: string; modulusLength?: number } = {}): Pair {
  const generate = generateKeyPairSync as unknown as (t: string, o: object) => { privateKey: Buffer };
  const der = generate(type, { ...options, publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } });
  const privateKey = createPrivateKey({ key: der.privateKey, format: 'der', type: 'pkcs8' });
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

/** The same key as a WebCrypto CryptoKey, jose's native (and fastest) input. */
const joseKey = (key: KeyObject, alg: string) => importJWK(key.export({ format: 'jwk' }) as JWK, alg) as Promise<CryptoKey>;

const kid = () => randomBytes(32).toString('base64url');
const now = Math.floor(Date.now() / 1000);
const claims = {
  iss: 'https://veil.example.com',
  sub: 'd9a8f0b2-6c1e-4f7a-9b3d-2e5c8a1f4b7e',
  aud: 'https://api.example.com',
  client_id: randomBytes(16).toString('base64url'),
  iat: now,
  exp: now + 3600,
  jti: randomBytes(32).toString('base64url'),
  scope: 'read write',
  auth_time: now - 120,
  acr: 'urn:mace:incommon:iap:silver',
  amr: ['pwd'],
};

interface Case {
  name: string;
  run: () => unknown;
}

/** Operations per second of `run` over about `ms` milliseconds (awaiting it only when it returns a promise). */
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

async function buildCases(): Promise<Array<{ veil: Case; jose: Case }>> {
  const es256 = keyPair('ec', { namedCurve: 'P-256' });
  const signer: SigningKey = { kid: kid(), alg: 'ES256', key: es256.privateKey };
  const joseSigningKey = await joseKey(es256.privateKey, 'ES256');
  const joseSign = () => new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: signer.kid }).sign(joseSigningKey);
  const encoder = new TextEncoder();

  const sealing = async (label: string, pair: Pair, alg: KeyManagementAlg) => {
    const recipient: SealingKey = { kid: kid(), alg, enc: 'A256GCM', key: pair.publicKey };
    const joseRecipientKey = await joseKey(pair.publicKey, alg);
    return {
      veil: { name: `${label}: veil sealAccessToken`, run: () => sealAccessToken(claims, signer, recipient) },
      jose: {
        name: `${label}: jose SignJWT + CompactEncrypt`,
        run: async () => new CompactEncrypt(encoder.encode(await joseSign())).setProtectedHeader({ alg, enc: 'A256GCM', kid: recipient.kid, cty: 'JWT' }).encrypt(joseRecipientKey),
      },
    };
  };

  return [
    { veil: { name: 'sign ES256: veil signJwt', run: () => signJwt(claims, signer) }, jose: { name: 'sign ES256: jose SignJWT', run: joseSign } },
    await sealing('ES256 + ECDH-ES+A256KW/A256GCM, P-256', keyPair('ec', { namedCurve: 'P-256' }), 'ECDH-ES+A256KW'),
    await sealing('ES256 + ECDH-ES+A256KW/A256GCM, X25519', keyPair('x25519'), 'ECDH-ES+A256KW'),
    await sealing('ES256 + RSA-OAEP-256/A256GCM, RSA-2048', keyPair('rsa', { modulusLength: 2048 }), 'RSA-OAEP-256'),
  ];
}

/** ops/s per case, in pairs: each veil case followed by the same work done by jose. */
export async function runSealerBench(): Promise<Array<{ name: string; opsPerSec: number }>> {
  const cases = (await buildCases()).flatMap((c) => [c.veil, c.jose]);
  const samples = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  for (const c of cases) await opsPerSec(c.run, 100); // warm-up (JIT, key caches)
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of cases) samples.get(c.name)!.push(await opsPerSec(c.run, ROUND_MS));
  }
  return cases.map((c) => {
    const sorted = samples.get(c.name)!.sort((a, b) => a - b);
    return { name: c.name, opsPerSec: Math.round(sorted[Math.floor(sorted.length / 2)]!) };
  });
}

async function main(): Promise<void> {
  console.log(`sealer micro-benchmark: node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'cpu'}), load ${os.loadavg()[0]!.toFixed(1)}`);
  console.log(`${ROUNDS} interleaved rounds of ${ROUND_MS} ms per case, median round\n`);
  const results = await runSealerBench();
  const fmt = (n: number) => n.toLocaleString('en-US').padStart(10);
  console.log(`${'case'.padEnd(42)}${'veil ops/s'.padStart(12)}${'jose ops/s'.padStart(12)}${'veil/jose'.padStart(11)}`);
  for (let i = 0; i < results.length; i += 2) {
    const [veil, jose] = [results[i]!, results[i + 1]!];
    const label = veil.name.slice(0, veil.name.indexOf(':'));
    console.log(`${label.padEnd(42)}  ${fmt(veil.opsPerSec)}  ${fmt(jose.opsPerSec)}${`${(veil.opsPerSec / jose.opsPerSec).toFixed(2)}x`.padStart(11)}`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
