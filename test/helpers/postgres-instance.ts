/**
 * A private PostgreSQL server (Debian's binaries, trust authentication, its own data directory
 * and port) that a test may stop and start without disturbing the machine's shared one on 5432,
 * which other test files use at the same time. As root the server runs as the `postgres` user
 * (PostgreSQL refuses to run as root).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './net.js';

const run = promisify(execFile);

export interface PostgresInstance {
  port: number;
  /** A connection URL for database `name` (default `postgres`). */
  url(name?: string): string;
  /** Stops the server: `fast` disconnects every client and shuts down cleanly; `immediate` is a crash. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops it for good and removes its data directory. */
  close(): Promise<void>;
}

/** The newest installed PostgreSQL's binaries (`/usr/lib/postgresql/<version>/bin`). */
async function binDir(): Promise<string> {
  const root = '/usr/lib/postgresql';
  const versions = (await fs.readdir(root).catch(() => [])).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  if (!versions.length) throw new Error(`no PostgreSQL server binaries under ${root} (Debian's postgresql package)`);
  return path.join(root, versions[0]!, 'bin');
}

export async function startPostgresInstance(): Promise<PostgresInstance> {
  const bin = await binDir();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-pg-'));
  const data = path.join(dir, 'data');
  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await fs.chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const pg = (tool: string, args: string[]) => (asRoot ? run('runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args]) : run(path.join(bin, tool), args));

  await pg('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
  // Loopback TCP only, the socket in the private directory; no fsync: the data is a test's.
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
  const start = async () => {
    await pg('pg_ctl', ['-D', data, '-o', options, '-l', path.join(dir, 'server.log'), '-w', '-t', '30', 'start']);
  };
  const stop = async (mode: 'fast' | 'immediate' = 'fast') => {
    await pg('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '30', 'stop']);
  };
  await start();
  return {
    port,
    url: (name = 'postgres') => `postgresql://postgres@127.0.0.1:${port}/${name}`,
    start,
    stop,
    async close() {
      await stop('immediate').catch(() => {});
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
