/**
 * The resource-server SDK's verification, in process: ES256-signed tokens sealed with
 * ECDH-ES+A256KW / A256GCM to a P-256 key (Veil's defaults), verified by `@veil/resource-server`.
 * Distinct tokens (cold: every one decrypted and verified) and one token repeated (verified-token
 * cache hits); the cold case also with the cache off. The same two again with a `status` claim
 * (Token Status List, 1,000,000 entries), the list fetched once and cached for its ttl.
 *
 *   npm run bench:sdk                      (builds first; no database needed)
 *   BENCH_SDK_TOKENS=8000 npm run bench:sdk   (distinct tokens per cold run; default 5000)
 *   BENCH_CPU_PROF=1 node --cpu-prof --import tsx bench/sdk.ts   (a CPU profile; docs left alone)
 *
 * Tokens are sealed beforehand with Veil's own sealer, then verified with 16 in flight (as an API
 * serving concurrent requests would), the whole process pinned to one core (taskset) so the
 * figures are per core even though WebCrypto works on libuv's thread pool. Veil's JWKS is served
 * from 127.0.0.1 by this process. Prints a table and writes its section of docs/BENCHMARKS.md.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { createVerifier, type AccessTokenVerifier } from '@veil/resource-server';
import { sealAccessToken, signJwt, type SealingKey, type SigningKey } from '../src/crypto/sealer.js';
import { compressList } from '../src/status-list/format.js';
import { REPO_ROOT } from '../test/helpers/process.js';
import { pinning, pinSelf } from './lib/processes.js';
import { table, textTable, writeSection } from './lib/report.js';

const GOALS = { cold: 2000, cached: 50_000 };
const DISTINCT = Number(process.env.BENCH_SDK_TOKENS ?? 5000);
const REPEATS = 200_000;
const IN_FLIGHT = 16;
const AUDIENCE = 'https://api.bench';

pinSelf();

async function keys() {
  const signing = await generateKeyPair('ES256', { extractable: true });
  const encryption = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256', extractable: true });
  const signingJwk = await exportJWK(signing.publicKey);
  const signingKid = await calculateJwkThumbprint(signingJwk);
  const encryptionJwk = await exportJWK(encryption.publicKey);
  const encryptionKid = await calculateJwkThumbprint(encryptionJwk);
  const { KeyObject } = await import('node:crypto');
  const signer: SigningKey = { kid: signingKid, alg: 'ES256', key: KeyObject.from(signing.privateKey) };
  const recipient: SealingKey = { kid: encryptionKid, alg: 'ECDH-ES+A256KW', enc: 'A256GCM', key: KeyObject.from(encryption.publicKey) };
  const privateJwk = { ...(await exportJWK(encryption.privateKey)), kid: encryptionKid, alg: 'ECDH-ES+A256KW', use: 'enc' } as JWK & { kid: string };
  return { signer, recipient, privateJwk, publicSigningJwk: { ...signingJwk, kid: signingKid, alg: 'ES256', use: 'sig' } };
}

const STATUS_LIST_ENTRIES = 1_000_000;
/** The one status list the bench serves (set once the issuer's URL is known). */
let statusListToken = '';

/** Veil's JWKS endpoint and one status list, as far as the SDK is concerned. */
async function serveJwks(jwk: JWK): Promise<{ issuer: string; close(): Promise<void> }> {
  const body = JSON.stringify({ keys: [jwk] });
  const server = http.createServer((req, res) =>
    req.url?.startsWith('/status-lists/')
      ? res.writeHead(200, { 'content-type': 'application/statuslist+jwt', 'cache-control': 'public, max-age=600' }).end(statusListToken)
      : res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=600' }).end(body),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    issuer: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

interface Rate {
  /** Verifications per second of wall-clock time (on the one pinned core). */
  wall: number;
  /** Verifications per second of CPU time, all threads (main and WebCrypto's pool) counted. */
  cpu: number;
}

/** Verifies `count` tokens (tokens[i % length]) with IN_FLIGHT at a time. */
async function throughput(verifier: AccessTokenVerifier, tokens: string[], count: number): Promise<Rate> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      await verifier.verify(tokens[i % tokens.length]!);
    }
  };
  const started = process.hrtime.bigint();
  const cpuBefore = process.cpuUsage();
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const cpu = process.cpuUsage(cpuBefore);
  return { wall: count / (Number(process.hrtime.bigint() - started) / 1e9), cpu: count / ((cpu.user + cpu.system) / 1e6) };
}

const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');
const fmtUs = (perSecond: number) => `${(1e6 / perSecond).toFixed(1)} µs`;

let exitCode = 0;
const { signer, recipient, privateJwk, publicSigningJwk } = await keys();
const jwks = await serveJwks(publicSigningJwk);
try {
  const started = new Date();
  const statusUri = `${jwks.issuer}/status-lists/AAAAAAAAAAAAAAAAAAAAAA`;
  {
    // What Veil renders: 2 bits per entry, ZLIB level 9, signed with the access-token key; every entry VALID.
    const now = Math.floor(Date.now() / 1000);
    const lst = compressList(Buffer.alloc(STATUS_LIST_ENTRIES / 4));
    statusListToken = signJwt({ iss: jwks.issuer, sub: statusUri, iat: now, exp: now + 3600, ttl: 3600, status_list: { bits: 2, lst } }, signer, 'statuslist+jwt');
  }
  let idx = 0;
  const seal = (withStatus = false) => {
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: jwks.issuer,
      sub: randomUUID(),
      aud: AUDIENCE,
      client_id: 'bench-client',
      iat: now,
      exp: now + 600,
      jti: randomUUID(),
      scope: 'read',
      ...(withStatus && { status: { status_list: { idx: idx++ % STATUS_LIST_ENTRIES, uri: statusUri } } }),
    };
    return sealAccessToken(claims, signer, recipient);
  };
  const batch = (n: number, withStatus = false) => Array.from({ length: n }, () => seal(withStatus));
  const verifier = (cache: boolean) => createVerifier({ issuer: jwks.issuer, audience: AUDIENCE, decryptionKeys: [privateJwk], cache: cache && { maxEntries: DISTINCT + 1000 } });

  console.log(
    `sdk bench: ${fmtInt(DISTINCT)} distinct tokens per cold run, ${fmtInt(REPEATS)} cached verifications, ${IN_FLIGHT} in flight; ${pinning ? `pinned to core ${pinning.client}` : 'NOT pinned'}`,
  );
  const sample = seal();

  const cold = async (cache: boolean, withStatus = false) => {
    const v = verifier(cache);
    await throughput(v, batch(500, withStatus), 500); // warm-up: JWKS (and the status list) fetched, JIT warm
    return throughput(v, batch(DISTINCT, withStatus), DISTINCT);
  };
  const coldCached = await cold(true);
  const coldUncached = await cold(false);
  const hot = verifier(true);
  await throughput(hot, [sample], 20_000);
  const cached = await throughput(hot, [sample], REPEATS);
  if (hot.cacheStats().misses !== 1) throw new Error(`expected one miss for the repeated token, got ${JSON.stringify(hot.cacheStats())}`);
  const coldStatus = await cold(true, true);
  const hotStatus = verifier(true);
  const sampleStatus = seal(true);
  await throughput(hotStatus, [sampleStatus], 20_000);
  const cachedStatus = await throughput(hotStatus, [sampleStatus], REPEATS);

  const goal = (rate: Rate, target: number) => `${rate.cpu >= target ? 'met' : 'MISSED'} (≥ ${fmtInt(target)}/s per core)`;
  const head = ['case', 'per CPU-second', 'CPU per verification', 'wall-clock/s (pinned core)', 'goal'];
  const row = (name: string, rate: Rate, target: number) => [name, fmtInt(rate.cpu), fmtUs(rate.cpu), fmtInt(rate.wall), goal(rate, target)];
  const rows = [
    row('distinct tokens (cold), cache on', coldCached, GOALS.cold),
    row('distinct tokens (cold), cache off', coldUncached, GOALS.cold),
    row('same token repeated (cache hit)', cached, GOALS.cached),
    row('distinct tokens with status (cold), list cached', coldStatus, GOALS.cold),
    row('same token with status (cache hit), list cached', cachedStatus, GOALS.cached),
  ];
  const cpus = os.cpus();
  const md = [
    '## SDK verification',
    '',
    `Measured by \`npm run bench:sdk\` (also part of \`npm run bench\`) on ${started.toISOString().slice(0, 10)}, ${cpus.length} cores (${cpus[0]?.model ?? 'cpu'}), Node ${process.version}; the bench process ${pinning ? `pinned to core ${pinning.client} (taskset, all threads, so WebCrypto's thread pool shares that core)` : 'NOT pinned'}, so wall-clock figures are per core but also pay for whatever else ran on that core. "per CPU-second" divides by the CPU time the process used (every thread), which other processes cannot inflate: it is the per-core figure the goals are judged on.`,
    `\`@veil/resource-server\` \`verify()\` on tokens Veil's sealer made beforehand: ES256-signed, sealed with ECDH-ES+A256KW / A256GCM to a P-256 key (${sample.length} characters); ${IN_FLIGHT} verifications in flight; JWKS from 127.0.0.1, fetched during warm-up. Cold: ${fmtInt(DISTINCT)} distinct tokens, each decrypted and verified (cache on: plus its insertion); cache hit: one token ${fmtInt(REPEATS)} times (SHA-256 of the token, LRU lookup, exp check). With status: the token's \`status\` names a Token Status List of ${fmtInt(STATUS_LIST_ENTRIES)} entries (2 bits), fetched, verified and inflated once (during warm-up) and cached for its ttl; each verification then reads its entry.`,
    '',
    table(head, rows),
    '',
    'A cold verification is jose doing, through WebCrypto, an import of the JWE `epk`, an ECDH derivation, the SHA-256 Concat KDF, an AES key unwrap, the AES-GCM decryption and the ES256 check, each an asynchronous job on the thread pool; the SDK adds a header check, a SHA-256 of the token and the claims checks around them. A CPU profile (`BENCH_CPU_PROF=1 node --cpu-prof --import tsx bench/sdk.ts`) puts nearly all the time in those WebCrypto jobs.',
    '',
  ].join('\n');

  console.log('');
  console.log(textTable(head, rows));
  if (process.env.BENCH_CPU_PROF) console.log('\nprofiling: docs/BENCHMARKS.md left unchanged');
  else {
    await writeSection(path.join(REPO_ROOT, 'docs/BENCHMARKS.md'), 'sdk', md);
    console.log('\nwrote the SDK verification section of docs/BENCHMARKS.md');
  }
} catch (err) {
  console.error('sdk bench failed:', err);
  exitCode = 1;
} finally {
  await jwks.close();
}
process.exit(exitCode);
