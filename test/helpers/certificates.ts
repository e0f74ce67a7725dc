/** A throw-away self-signed certificate for 127.0.0.1 and localhost (openssl), for TLS tests. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface TestCertificate {
  dir: string;
  certFile: string;
  keyFile: string;
  /** The certificate, for a client to trust. */
  cert: Buffer;
  remove(): Promise<void>;
}

export async function selfSignedCertificate(prefix: string): Promise<TestCertificate> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  return { dir, certFile, keyFile, cert: await fs.readFile(certFile), remove: () => fs.rm(dir, { recursive: true, force: true }) };
}
