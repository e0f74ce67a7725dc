/**
 * Child processes for the benchmarks: servers pinned to one core with taskset (when present),
 * the benchmark process itself moved to another core, and CPU time read from /proc.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

const hasTaskset = spawnSync('taskset', ['-V'], { stdio: 'ignore' }).status === 0;

/** Core the servers run on, core the load generator runs on; undefined when not pinned. */
export const pinning: { server: number; client: number } | undefined = hasTaskset && os.cpus().length >= 2 ? { server: 0, client: 1 } : undefined;

export function pinningNote(): string {
  if (!pinning) {
    return hasTaskset
      ? 'NOT pinned (fewer than 2 cores): servers and load generator share the machine'
      : 'NOT pinned (taskset not found): servers and load generator share the machine';
  }
  return `each server pinned to core ${pinning.server} (taskset), autocannon in the bench process pinned to core ${pinning.client}; PostgreSQL and Redis are not pinned`;
}

/** Moves this process (every thread) to the load generator's core. */
export function pinSelf(): void {
  if (!pinning) return;
  const r = spawnSync('taskset', ['-a', '-p', '-c', String(pinning.client), String(process.pid)], { stdio: 'ignore' });
  if (r.status !== 0) console.warn(`could not pin the bench process to core ${pinning.client}`);
}

/** A server child in its own process group, on the server core; output is kept for errors. */
export class ServerProcess {
  readonly child: ChildProcess;
  output = '';
  static readonly all = new Set<ServerProcess>();

  constructor(
    readonly name: string,
    args: string[],
    env: Record<string, string>,
    cwd: string,
  ) {
    const [command, argv] = pinning ? ['taskset', ['-c', String(pinning.server), process.execPath, ...args]] : [process.execPath, args];
    this.child = spawn(command, argv, { cwd, env: { ...process.env, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer) => {
      this.output += d.toString();
      if (this.output.length > 200_000) this.output = this.output.slice(-100_000);
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    ServerProcess.all.add(this);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves once `ready()` is true or the output matches; rejects if the process exits first. */
  async waitUntil(what: string, ready: () => boolean | Promise<boolean>, timeoutMs = 90_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`${this.name} exited (${this.child.exitCode ?? this.child.signalCode}) before ${what}:\n${this.output.slice(-4000)}`);
      }
      if (await ready()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${this.name}: timed out waiting for ${what}:\n${this.output.slice(-4000)}`);
  }

  /** CPU seconds (user + system, all threads) the process has used so far; undefined off Linux. */
  cpuSeconds(): number | undefined {
    try {
      const stat = fs.readFileSync(`/proc/${this.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields[11] and fields[12] are utime and stime (fields 14 and 15 of proc(5)).
      return (Number(fields[11]) + Number(fields[12])) / clockTicks;
    } catch {
      return undefined;
    }
  }

  async stop(): Promise<void> {
    ServerProcess.all.delete(this);
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const closed = new Promise<void>((resolve) => this.child.once('close', () => resolve()));
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), 10_000);
    await closed;
    clearTimeout(timer);
  }

  signal(sig: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, sig);
    } catch {
      /* already gone */
    }
  }
}

/** Busy and total jiffies of one core from /proc/stat; undefined off Linux. */
export function coreTimes(core: number): { busy: number; total: number } | undefined {
  try {
    const line = fs
      .readFileSync('/proc/stat', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`cpu${core} `));
    if (!line) return undefined;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

const clockTicks = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

// Never leave a server behind, whatever way the bench ends.
process.once('exit', () => {
  for (const p of ServerProcess.all) p.signal('SIGKILL');
});
