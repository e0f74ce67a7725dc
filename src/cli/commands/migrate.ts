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
      const { loadConfig, ConfigError } = await import('../../config.js');
      const { openDatabase } = await import('../../store/database.js');
      const { readMigrations, migrate, MigrationError } = await import('../../store/migrator.js');

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
        if (err instanceof ConfigError) throw new CliError('invalid_configuration', err.message);
        if (err instanceof MigrationError) throw new CliError('migration_failed', err.message);
        // Typically the database is unreachable; pg/PGlite messages never include the URL's password.
        throw new CliError('database_error', `cannot migrate the database: ${(err as Error).message}`);
      }

      const { applied, alreadyApplied } = result;
      ctx.output().result({ applied, already_applied: alreadyApplied }, () => [
        `applied: ${applied.length ? applied.join(', ') : 'none'}`,
        `already applied: ${alreadyApplied.length}`,
      ]);
    });
}
