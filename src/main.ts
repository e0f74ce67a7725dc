/**
 * Process entry: load config, start Veil, shut down gracefully on SIGINT/SIGTERM. With
 * WEB_CONCURRENCY > 1 this process becomes the cluster primary (`cluster.ts`) and each worker
 * it forks runs this file again, taking the worker branch.
 */
import cluster from 'node:cluster';
import { config as loadDotenv } from 'dotenv';
import { startVeil, type Veil } from './app.js';
import { reportReady, runPrimary, workerSlot } from './cluster.js';
import { ConfigError, loadConfig } from './config.js';
import { VeilError } from './errors/veil-error.js';
import { createLogger, errorFields, type Logger } from './observability/logger.js';

loadDotenv({ quiet: true });

function startupFailed(logger: Logger, err: unknown): never {
  // A VeilError says what went wrong (a key file, the master key, a migration, a store); anything else is a bug.
  const known = err instanceof VeilError;
  logger.fatal({ err: errorFields(err) }, known ? 'start-up failed' : 'start-up failed unexpectedly');
  process.exit(1);
}

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`veil: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const base = createLogger(config.logLevel, undefined, { format: config.logFormat, production: config.production });

  if (config.workers > 1 && cluster.isPrimary) {
    const logger = base.child({ worker: 0 });
    await runPrimary(config, logger).catch((err: unknown) => startupFailed(logger, err));
    return;
  }

  // A cluster worker: the primary has applied the migrations and created the key files already.
  const slot = cluster.isWorker ? workerSlot() : undefined;
  const logger = slot === undefined ? base : base.child({ worker: slot });
  let veil: Veil;
  try {
    veil = await startVeil(slot === undefined ? config : { ...config, migrateOnStart: false }, {
      logger,
      // One admin listener per deployment: in a cluster, the worker in slot 1 serves it.
      admin: slot === undefined || slot === 1,
    });
  } catch (err) {
    startupFailed(logger, err);
  }
  if (slot !== undefined) reportReady(veil.publicUrl, veil.adminUrl);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, timeoutSeconds: config.shutdownTimeoutSeconds }, 'shutting down');
    // close() waits for in-flight requests up to SHUTDOWN_TIMEOUT_SECONDS; this only guards
    // against a store close that hangs after that.
    setTimeout(
      () => {
        logger.error('shutdown did not finish in time; exiting');
        process.exit(1);
      },
      (config.shutdownTimeoutSeconds + 5) * 1000,
    ).unref();
    await veil.close();
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

await main();
