/** Process entry: load config, start Veil, shut down gracefully on SIGINT/SIGTERM. */
import { config as loadDotenv } from 'dotenv';
import { startVeil } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { KeyFileError } from './crypto/keys.js';
import { createLogger, errorFields } from './observability/logger.js';
import { MigrationError } from './store/migrator.js';
import { StoreUnavailableError } from './store/errors.js';

loadDotenv({ quiet: true });

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
  const logger = createLogger(config.logLevel);
  let veil;
  try {
    veil = await startVeil(config, { logger });
  } catch (err) {
    const known = err instanceof KeyFileError || err instanceof MigrationError || err instanceof StoreUnavailableError;
    logger.fatal(
      { err: errorFields(err) },
      known ? 'start-up failed' : 'start-up failed unexpectedly',
    );
    process.exit(1);
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    await veil.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

await main();
