/**
 * `veil migrate`: applies pending database migrations directly, with no server running.
 * The store modules are imported lazily so that the HTTP-only commands never load Prisma/pg.
 */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';

export function registerMigrate(program: Command, ctx: CliContext): void {
  program
    .command('migrate')
    .description('apply pending database migrations (reads .env and the environment; no server needed)')
    .action(async () => {
      // Same configuration source as the server: .env never overrides the real environment.
      const { default: dotenv } = await import('dotenv');
      dotenv.config({ quiet: true });
      const { loadConfig } = await import('../../config.js');
      const { openDatabase } = await import('../../store/database.js');
      const { readMigrations, migrate } = await import('../../store/migrator.js');
      const { VeilError } = await import('../../errors/veil-error.js');

      let result;
      try {
        const config = loadConfig();
        const db = await openDatabase(config.database);
        try {
          const runner = await db.openSqlRunner();
          try {
            result = await migrate(runner, await readMigrations());
          } finally {
            await runner.close();
          }
        } finally {
          await db.close();
        }
      } catch (err) {
        // A bad configuration or migration says so itself (cli/errors.ts reports it); anything
        // else is the database: pg/PGlite messages never include the URL's password.
        if (err instanceof VeilError && err.code !== 'store_unavailable') throw err;
        throw new CliError('store_unavailable', `cannot migrate the database: ${(err as Error).message}`, { cause: err });
      }

      const { applied, alreadyApplied } = result;
      ctx
        .output()
        .result({ applied, already_applied: alreadyApplied }, () => [`applied: ${applied.length ? applied.join(', ') : 'none'}`, `already applied: ${alreadyApplied.length}`]);
    });
}
