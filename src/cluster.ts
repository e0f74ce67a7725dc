/**
 * Cluster mode (WEB_CONCURRENCY > 1): the primary process prepares what must happen exactly once
 * (migrations; the master key, signing key ring and cookie key files), then forks one worker per
 * slot with `node:cluster`. Every worker runs `startVeil` over the shared PostgreSQL and Redis;
 * the public port is shared through cluster's round-robin. Only the worker in slot 1 binds the
 * admin listener. A worker that dies is restarted in its slot with exponential backoff;
 * SIGTERM/SIGINT to the primary drains every worker and then exits.
 *
 * The primary serves no requests and opens no store beyond the one-time migration connection.
 */
import cluster, { type Worker } from 'node:cluster';
import type { VeilConfig } from './config.js';
import { applyMigrations, loadKeyMaterial } from './key-material.js';
import type { Logger } from './observability/logger.js';
import { openDatabase } from './store/database.js';

/** Set by the primary on each fork: the worker's slot, 1..WEB_CONCURRENCY (kept across restarts). */
export const WORKER_SLOT_ENV = 'VEIL_WORKER_SLOT';

/** A worker that lived at least this long before dying is restarted after the shortest delay. */
const STABLE_AFTER_MS = 30_000;
const FIRST_RESTART_DELAY_MS = 1_000;
const MAX_RESTART_DELAY_MS = 30_000;

interface ReadyMessage {
  veil: 'ready';
  publicUrl: string;
  adminUrl: string;
}

/** In a worker: its slot (1-based); slot 1 serves the admin API. */
export function workerSlot(): number {
  const slot = Number(process.env[WORKER_SLOT_ENV]);
  return Number.isInteger(slot) && slot >= 1 ? slot : (cluster.worker?.id ?? 1);
}

/** In a worker: tell the primary that this worker listens. */
export function reportReady(publicUrl: string, adminUrl: string): void {
  const message: ReadyMessage = { veil: 'ready', publicUrl, adminUrl };
  process.send?.(message);
}

/** Restart delay after the `failures`-th quick death in a row: 1 s, 2 s, 4 s ... at most 30 s. */
export function restartDelay(failures: number): number {
  return Math.min(MAX_RESTART_DELAY_MS, FIRST_RESTART_DELAY_MS * 2 ** Math.max(0, failures - 1));
}

/** What runs once, before any worker exists, so that workers never race each other for it. */
async function prepare(config: VeilConfig, logger: Logger): Promise<void> {
  // The pool connects on first use: with KEYS_STORE=file and migrations off it never does.
  const database = await openDatabase(config.database);
  try {
    if (config.migrateOnStart) await applyMigrations(database, logger);
    // The same key material, in the same order, as startVeil (src/app.ts) loads it.
    await loadKeyMaterial(config, logger, database);
  } finally {
    await database.close();
  }
}

interface Slot {
  worker: Worker | undefined;
  startedAt: number;
  ready: boolean;
  /** Deaths in a row, each within STABLE_AFTER_MS of its start. */
  failures: number;
  restartTimer: NodeJS.Timeout | undefined;
}

/**
 * Runs the primary. Rejects if the one-time preparation fails (the caller reports it as a
 * start-up failure); otherwise never resolves: it exits the process itself, 0 after a clean
 * drain, 1 when a worker could not start or a drain failed.
 */
export async function runPrimary(config: VeilConfig, logger: Logger): Promise<never> {
  const started = performance.now();
  await prepare(config, logger);

  const slots = new Map<number, Slot>();
  for (let n = 1; n <= config.workers; n++) slots.set(n, { worker: undefined, startedAt: 0, ready: false, failures: 0, restartTimer: undefined });
  let clusterReady = false;
  let stopping = false;
  let exitCode = 0;
  let publicUrl = '';
  let adminUrl = '';

  const running = () => [...slots].flatMap(([n, s]) => (s.worker && s.worker.process.exitCode === null && s.worker.process.signalCode === null ? [{ n, worker: s.worker }] : []));

  const finishIfDone = () => {
    if (stopping && running().length === 0) {
      logger.info({ exitCode }, 'stopped');
      process.exit(exitCode);
    }
  };

  const stop = (reason: string, code: number) => {
    if (stopping) return;
    stopping = true;
    exitCode = code;
    logger.info({ reason, workers: running().length }, 'shutting down');
    for (const slot of slots.values()) clearTimeout(slot.restartTimer);
    // Each worker drains its own listeners (SHUTDOWN_TIMEOUT_SECONDS), closes its stores, exits 0.
    for (const { worker } of running()) worker.process.kill('SIGTERM');
    setTimeout(
      () => {
        for (const { n, worker } of running()) {
          logger.error({ slot: n, pid: worker.process.pid }, 'worker did not stop in time; killing it');
          worker.process.kill('SIGKILL');
        }
        exitCode = 1;
      },
      (config.shutdownTimeoutSeconds + 5) * 1000,
    ).unref();
    finishIfDone();
  };

  const fork = (n: number) => {
    const slot = slots.get(n)!;
    const worker = cluster.fork({ [WORKER_SLOT_ENV]: String(n) });
    Object.assign(slot, { worker, startedAt: Date.now(), ready: false, restartTimer: undefined });
    logger.info({ slot: n, pid: worker.process.pid }, 'worker started');
    worker.on('message', (message: Partial<ReadyMessage>) => {
      if (message?.veil !== 'ready') return;
      slot.ready = true;
      if (n === 1) adminUrl = message.adminUrl ?? '';
      publicUrl ||= message.publicUrl ?? '';
      if (!clusterReady && [...slots.values()].every((s) => s.ready)) {
        clusterReady = true;
        logger.info(
          { workers: slots.size, issuer: config.issuer, public: publicUrl, admin: adminUrl || 'none', startupMs: Math.round(performance.now() - started) },
          'cluster is ready',
        );
      }
    });
    worker.on('exit', (code, signal) => {
      // `exitCode`, not `code`: the logger redacts every field named `code` (authorization codes).
      const fields = { slot: n, pid: worker.process.pid, exitCode: code, signal };
      if (stopping) {
        // Killed by our SIGTERM before it had installed its handler: it was still starting.
        if (code !== 0 && signal !== 'SIGTERM') exitCode = 1;
        logger.info(fields, 'worker stopped');
        return finishIfDone();
      }
      if (!clusterReady) {
        // A worker that cannot start (port taken, store down, bad key file) will not do better
        // in a retry loop: fail the whole start instead.
        logger.fatal(fields, 'worker failed to start; stopping the cluster');
        return stop('a worker failed to start', 1);
      }
      slot.failures = Date.now() - slot.startedAt < STABLE_AFTER_MS ? slot.failures + 1 : 1;
      const delay = restartDelay(slot.failures);
      logger.error({ ...fields, restartInMs: delay }, 'worker exited; restarting it');
      slot.restartTimer = setTimeout(() => {
        if (!stopping) fork(n);
      }, delay);
    });
  };

  process.on('SIGTERM', () => stop('SIGTERM', 0));
  process.on('SIGINT', () => stop('SIGINT', 0));
  logger.info({ workers: config.workers }, 'starting cluster');
  for (const n of slots.keys()) fork(n);
  return new Promise<never>(() => {});
}
