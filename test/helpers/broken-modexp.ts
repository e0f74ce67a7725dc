/**
 * Preload (`node --import`) that breaks OpenSSL's modexp as Veil reaches it: every
 * DiffieHellman.computeSecret answer has its last bit flipped. Veil's Paillier self-test must
 * catch it and refuse to start (test/integration/he-keys.test.ts).
 */
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';

const original = crypto.createDiffieHellman;
crypto.createDiffieHellman = ((...args: Parameters<typeof original>) => {
  const dh = original(...args);
  const computeSecret = dh.computeSecret.bind(dh) as (key: Buffer) => Buffer;
  dh.computeSecret = ((key: Buffer) => {
    const out = Buffer.from(computeSecret(key));
    out[out.length - 1]! ^= 1;
    return out;
  }) as typeof dh.computeSecret;
  return dh;
}) as typeof original;
syncBuiltinESMExports();
