/**
 * The `veil` command line: a thin client of the admin HTTP API (docs/ADMIN_API.md), plus the
 * offline `migrate`. `main()` never calls process.exit: it returns the exit code, so tests can
 * run it in-process and bin/veil.js just sets process.exitCode.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { registerAudit } from './commands/audit.js';
import { registerClients } from './commands/clients.js';
import { registerGate } from './commands/gate.js';
import { registerKeys } from './commands/keys.js';
import { registerMigrate } from './commands/migrate.js';
import { registerPolicies } from './commands/policies.js';
import { registerResources } from './commands/resources.js';
import { registerUsers } from './commands/users.js';
import { adminClientFrom, type CliContext, type GlobalOptions } from './context.js';
import { Output, reportError, type CliIo } from './output.js';

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:3001';

/** Commander codes for help/version output: already printed, nothing to report. */
const SILENT_CODES = new Set(['commander.help', 'commander.helpDisplayed', 'commander.version']);

export const processIo: CliIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  async readStdin() {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
    return Buffer.concat(chunks).toString('utf8');
  },
};

export function buildProgram(io: CliIo): Command {
  const program = new Command('veil');
  // Must precede the subcommands: .command() copies these settings into each child.
  program
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout(text),
      writeErr: (text) => io.stderr(text),
      // main() reports errors itself, in human or --json form.
      outputError: () => {},
    })
    .description('Administer a Veil authorization server through its admin API')
    .version(packageVersion(), '-V, --version')
    .addOption(new Option('--admin-url <url>', 'admin API base URL').env('VEIL_ADMIN_URL').default(DEFAULT_ADMIN_URL))
    // .env() shows only the variable's name in --help, never its value.
    .addOption(
      new Option(
        '--admin-token <token>',
        'admin API bearer token (prefer the env var: argv is visible to other users); unset: ADMIN_TOKEN, ADMIN_TOKEN_FILE, then KEYS_DIR/admin-token for a local admin URL',
      ).env('VEIL_ADMIN_TOKEN'),
    )
    .option('--json', 'print exactly one JSON document to stdout (errors as JSON on stderr)');

  const globals = () => program.opts<GlobalOptions>();
  const ctx: CliContext = {
    io,
    output: () => new Output(io, globals().json === true),
    client: () => adminClientFrom(globals()),
  };
  registerUsers(program, ctx);
  registerClients(program, ctx);
  registerResources(program, ctx);
  registerPolicies(program, ctx);
  registerAudit(program, ctx);
  registerKeys(program, ctx);
  registerMigrate(program, ctx);
  registerGate(program, ctx);
  return program;
}

/**
 * Runs the CLI. `argv` is in process.argv form: [node, script, ...args].
 * Resolves to the exit code: 0 success, else the one cli/errors.ts gives the failure.
 */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'node' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError && SILENT_CODES.has(err.code)) return err.exitCode;
    return reportError(io, wantsJson(argv), err);
  }
}

/** Scanned from argv because a usage error can abort parsing before `--json` is recorded. */
function wantsJson(argv: string[]): boolean {
  const args = argv.slice(2);
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).includes('--json');
}

function packageVersion(): string {
  try {
    // ../../package.json from both src/cli/ (tsx) and dist/cli/ (compiled).
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}
