/**
 * A real nginx (Debian's /usr/sbin/nginx, built with auth_request) for the gate's tests and
 * benchmark: started as a non-daemon child in its own process group, with its own prefix
 * directory in a temp dir (configuration, pid, logs and every temp path inside it), so it runs as
 * a normal user or as root without touching /var or /etc/nginx. `close()` stops it (SIGQUIT, then
 * SIGKILL) and removes the directory; a test process that dies first takes it down too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './net.js';
import { REPO_ROOT } from './process.js';

export const NGINX_BINARY = '/usr/sbin/nginx';

/** The nginx configuration docs/GATEWAY.md shows: the tests run this very file. */
export const NGINX_GATEWAY_TEMPLATE = path.join(REPO_ROOT, 'docs/gateway/nginx.conf');

/** envsubst's form (what the official nginx image substitutes); nginx's own `$var`s have no braces. */
const PLACEHOLDER = /\$\{([A-Z][A-Z0-9_]*)\}/g;

/**
 * The template with every `${NAME}` replaced. Fails on a placeholder left without a value or a
 * value the template does not use, so the test and the documented file cannot drift apart.
 */
export async function renderNginxTemplate(values: Record<string, string>, file = NGINX_GATEWAY_TEMPLATE): Promise<string> {
  const template = await fs.readFile(file, 'utf8');
  const used = new Set<string>();
  const missing = new Set<string>();
  const rendered = template.replace(PLACEHOLDER, (_match, name: string) => {
    used.add(name);
    const value = values[name];
    if (value === undefined) {
      missing.add(name);
      return '';
    }
    return value;
  });
  if (missing.size) throw new Error(`${file}: no value for ${[...missing].join(', ')}`);
  const unused = Object.keys(values).filter((name) => !used.has(name));
  if (unused.length) throw new Error(`${file} has no placeholder ${unused.join(', ')}`);
  return rendered;
}

export interface RunningNginx {
  url: string;
  port: number;
  /** The prefix directory (configuration, logs, temp paths). */
  dir: string;
  pid: number;
  errorLog(): Promise<string>;
  accessLog(): Promise<string>;
  close(): Promise<void>;
}

export interface NginxOptions {
  /**
   * `server { }` blocks (and `upstream`s) for the `http { }` context, listening on `${port}`;
   * a function gets the port chosen for it.
   */
  http: string | ((port: number) => string | Promise<string>);
  /** Default: a free port on 127.0.0.1. */
  port?: number;
  /** nginx worker processes. Default 1. */
  workers?: number;
  /** Pin nginx (master and workers) to this core with taskset (benchmarks). */
  cpu?: number;
  startTimeoutMs?: number;
}

/** Process groups still running, killed if the test process exits without closing them. */
const running = new Set<number>();
process.once('exit', () => {
  for (const pgid of running) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

/** The main configuration: everything nginx writes lives under `dir`. */
function mainConfig(dir: string, workers: number): string {
  const at = (name: string) => path.join(dir, name);
  return `# written by test/helpers/nginx.ts
worker_processes ${workers};
error_log ${at('error.log')} info;
events { worker_connections 1024; }
http {
  access_log ${at('access.log')};
  client_body_temp_path ${at('temp/client_body')};
  proxy_temp_path ${at('temp/proxy')};
  fastcgi_temp_path ${at('temp/fastcgi')};
  uwsgi_temp_path ${at('temp/uwsgi')};
  scgi_temp_path ${at('temp/scgi')};
  include ${at('http.conf')};
}
`;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    /* already gone */
  }
}

export async function startNginx(options: NginxOptions): Promise<RunningNginx> {
  // A free port can be taken between the probe and nginx's bind: try a new one a few times.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options, options.port ?? (await freePort()));
    } catch (err) {
      if (options.port !== undefined || attempt >= 3 || !/Address already in use/.test(String(err))) throw err;
    }
  }
}

async function startOnce(options: NginxOptions, port: number): Promise<RunningNginx> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-nginx-'));
  // As root the master hands the workers to `nobody`; they must be able to reach the temp paths.
  await fs.chmod(dir, 0o755);
  await fs.mkdir(path.join(dir, 'temp'));
  const conf = path.join(dir, 'nginx.conf');
  await fs.writeFile(path.join(dir, 'http.conf'), typeof options.http === 'function' ? await options.http(port) : options.http);
  await fs.writeFile(conf, mainConfig(dir, options.workers ?? 1));

  // -e: the log used before the configuration is read (the built-in one is under /var/log).
  const args = ['-p', `${dir}/`, '-c', conf, '-e', path.join(dir, 'error.log'), '-g', `daemon off; master_process on; pid ${path.join(dir, 'nginx.pid')};`];
  // taskset execs nginx: the child's pid is still the master's, and its process group nginx's.
  const [command, argv] = options.cpu === undefined ? [NGINX_BINARY, args] : ['taskset', ['-c', String(options.cpu), NGINX_BINARY, ...args]];
  const child = spawn(command, argv, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const spawnFailure = new Promise<Error>((resolve) => child.once('error', resolve));
  if (child.pid === undefined) {
    const err = await spawnFailure;
    await fs.rm(dir, { recursive: true, force: true });
    throw new Error(`cannot run ${NGINX_BINARY} (scripts/test-prereqs.sh installs it): ${err.message}`);
  }
  const pgid = child.pid;
  running.add(pgid);
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // SIGQUIT: graceful shutdown of the master and its workers; SIGKILL for what is left.
      killGroup(pgid, 'SIGQUIT');
      const timer = setTimeout(() => killGroup(pgid, 'SIGKILL'), 5000);
      await exited(child);
      clearTimeout(timer);
    }
    // Workers orphaned by a killed master would still be in the group.
    killGroup(pgid, 'SIGKILL');
    running.delete(pgid);
  };
  const read = (name: string) => fs.readFile(path.join(dir, name), 'utf8').catch(() => '');

  const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
  let failure: Error | undefined;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      failure = new Error(`nginx exited (${child.exitCode ?? child.signalCode}) while starting:\n${output}${await read('error.log')}`);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    if (await canConnect(port)) break;
    if (Date.now() > deadline) {
      failure = new Error(`nginx did not listen on ${port} within the start timeout:\n${output}${await read('error.log')}`);
      break;
    }
  }
  if (failure) {
    await stop();
    await fs.rm(dir, { recursive: true, force: true });
    throw failure;
  }

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dir,
    pid: pgid,
    errorLog: () => read('error.log'),
    accessLog: () => read('access.log'),
    async close() {
      await stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** nginx with docs/gateway/nginx.conf: `gatePort`'s gate deciding, `upstreamPort`'s API behind it. */
export function startGatewayNginx(options: { gatePort: number; upstreamPort: number; workers?: number; cpu?: number }): Promise<RunningNginx> {
  return startNginx({
    ...(options.workers !== undefined && { workers: options.workers }),
    ...(options.cpu !== undefined && { cpu: options.cpu }),
    http: (port) => renderNginxTemplate({ VEIL_LISTEN: `127.0.0.1:${port}`, VEIL_GATE: `127.0.0.1:${options.gatePort}`, VEIL_UPSTREAM: `127.0.0.1:${options.upstreamPort}` }),
  });
}
