/**
 * Veil Gate in tests: writes a gate configuration (and the key and secret files it names) into a
 * temporary directory, loads it through `loadGateConfig` as `veil gate` does, starts the gate with
 * its logs captured, and sends check requests with exactly the headers a gateway would send
 * (node:http, so Host and every other header are the test's).
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { exportJWK, type CryptoKey, type JWK } from 'jose';
import { loadGateConfig, type GateConfig } from '../../src/gate/config.js';
import { startGate, type RunningGate } from '../../src/gate/server.js';
import { createLogger } from '../../src/observability/logger.js';
import { assertNoSecretsLogged, rememberSecret } from './secrets.js';

export interface TestGate extends RunningGate {
  config: GateConfig;
  dir: string;
  /** The gate's log lines (JSON), as written. */
  logs: string[];
  /** Closes the gate, then fails if any secret the helpers saw appears in its logs. */
  stop(): Promise<void>;
}

/** A directory for one gate's configuration files. */
export async function gateDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'veil-gate-'));
}

/** Writes a resource server's private key as the JWK file the gate's `decryptionKeys` names. */
export async function writeDecryptionKey(dir: string, name: string, privateKey: CryptoKey, kid: string): Promise<string> {
  const jwk: JWK = { ...(await exportJWK(privateKey)), kid, use: 'enc' };
  const file = path.join(dir, name);
  await fs.writeFile(file, JSON.stringify(jwk), { mode: 0o600 });
  return name;
}

/** Writes a secret file (client secret, introspection secret); returns its name relative to `dir`. */
export async function writeSecret(dir: string, name: string, secret: string): Promise<string> {
  rememberSecret(secret, name);
  await fs.writeFile(path.join(dir, name), `${secret}\n`, { mode: 0o600 });
  return name;
}

/** Writes `config` as `dir/gate.json`, loads it like `veil gate --config` and starts the gate. */
export async function startTestGate(dir: string, config: Record<string, unknown>, options: { env?: NodeJS.ProcessEnv; logLevel?: string } = {}): Promise<TestGate> {
  const file = path.join(dir, 'gate.json');
  await fs.writeFile(file, JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, ...config }, null, 2));
  const loaded = await loadGateConfig(file, options.env ?? {});
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  const gate = await startGate(loaded, { logger: createLogger(options.logLevel ?? 'debug', sink) });
  return Object.assign(gate, {
    config: loaded,
    dir,
    logs,
    async stop() {
      await gate.close();
      assertNoSecretsLogged(logs);
    },
  });
}

export interface CheckAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json(): Record<string, string>;
}

/** One raw HTTP request to the gate: `headers` are sent exactly as given (Host included). */
export function rawRequest(url: string, method: string, requestPath: string, headers: Record<string, string>): Promise<CheckAnswer> {
  const target = new URL(url);
  for (const [name, value] of Object.entries(headers)) if (/^authorization$/i.test(name)) rememberSecret(value.replace(/^Bearer /i, ''), 'access token');
  return new Promise((resolve, reject) => {
    const req = http.request({ host: target.hostname, port: target.port, method, path: requestPath, headers, setHost: false, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) as Record<string, string> }));
    });
    req.on('error', reject);
    req.end();
  });
}

export interface OriginalRequestSpec {
  method?: string;
  /** The original request target (path and query). */
  uri: string;
  host: string;
  authorization?: string;
  /** More headers of the original request, which gateways pass along. */
  extra?: Record<string, string>;
}

/**
 * The check request each gateway sends for one original request:
 * - nginx auth_request: a subrequest with the original method to the `/check` location, the
 *   original headers, Host set to the proxied address, and the X-Original-* headers the
 *   configuration sets (docs/GATEWAY.md);
 * - Traefik ForwardAuth: a GET to the address with the original headers and X-Forwarded-Method,
 *   -Proto, -Host, -Uri, -For (https://doc.traefik.io/traefik/middlewares/http/forwardauth/);
 * - Envoy ext_authz (HTTP): the original method, path_prefix + original path, the original Host,
 *   Authorization and an empty body (content-length: 0).
 */
export function gatewayCheck(gate: { url: string }, dialect: 'nginx' | 'traefik' | 'envoy', spec: OriginalRequestSpec): Promise<CheckAnswer> {
  const method = spec.method ?? 'GET';
  const gateHost = new URL(gate.url).host;
  const auth: Record<string, string> = spec.authorization !== undefined ? { authorization: spec.authorization } : {};
  const extra = spec.extra ?? {};
  switch (dialect) {
    case 'nginx':
      return rawRequest(gate.url, method, '/check', {
        host: gateHost,
        connection: 'close',
        'x-original-method': method,
        'x-original-uri': spec.uri,
        'x-original-host': spec.host,
        'user-agent': 'curl/8.5.0',
        accept: '*/*',
        ...auth,
        ...extra,
      });
    case 'traefik':
      return rawRequest(gate.url, 'GET', '/check/traefik', {
        host: gateHost,
        'user-agent': 'curl/8.5.0',
        accept: '*/*',
        ...auth,
        ...extra,
        'x-forwarded-for': '203.0.113.7',
        'x-forwarded-host': spec.host,
        'x-forwarded-method': method,
        'x-forwarded-port': '443',
        'x-forwarded-proto': 'https',
        'x-forwarded-uri': spec.uri,
        'accept-encoding': 'gzip',
      });
    case 'envoy':
      return rawRequest(gate.url, method, `/check/envoy${spec.uri}`, {
        host: spec.host,
        'content-length': '0',
        'x-forwarded-proto': 'https',
        'x-request-id': '6d1f0a36-3c2b-4a57-9a43-2f7e2b1c9d10',
        'x-envoy-expected-rq-timeout-ms': '250',
        ...auth,
        ...extra,
      });
  }
}

/** Response headers every answer has, whatever the decision (node:http's and the gate's own). */
const STANDARD = new Set(['date', 'connection', 'keep-alive', 'content-length', 'cache-control', 'transfer-encoding']);

/** The answer's headers minus the standard ones: what a gateway could copy upstream. */
export function decisionHeaders(answer: CheckAnswer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(answer.headers)) if (!STANDARD.has(name) && typeof value === 'string') out[name] = value;
  return out;
}

/** Reads one metric sample's value from a Prometheus text body (0 when absent). */
export function metricValue(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[^{ ]+(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const got: Record<string, string | undefined> = Object.fromEntries([...(m[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((p) => [p[1]!, p[2]!]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[2]);
  }
  return 0;
}
