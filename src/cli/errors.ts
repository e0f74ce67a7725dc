/**
 * Every failure the CLI reports is reduced to the admin API's own error shape
 * ({error, error_description}) so `--json` consumers parse one format whatever went wrong.
 */
import { CommanderError } from 'commander';
import { AdminApiError, AdminUnreachableError } from './admin-client.js';

/** A failure the CLI itself detected; `error` is the machine-readable code. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    readonly error: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ErrorReport {
  error: string;
  error_description: string;
}

/** The JSON form: the API's code verbatim, or a CLI-side code for failures without one. */
export function toErrorReport(err: unknown): ErrorReport {
  if (err instanceof AdminApiError) return { error: err.error, error_description: err.error_description };
  if (err instanceof AdminUnreachableError) return { error: 'server_unreachable', error_description: err.message };
  if (err instanceof CliError) return { error: err.error, error_description: err.message };
  if (err instanceof CommanderError) {
    // Commander quotes a mistyped option whole, value included: `--pasword=hunter2` must not
    // come back on the terminal (or in a CI log).
    return { error: 'invalid_usage', error_description: err.message.replace(/^error: /, '').replace(/'(--?[^'=\s]+)=[^']*'/g, "'$1=…'") };
  }
  return { error: 'internal_error', error_description: err instanceof Error ? err.message : String(err) };
}

/** The human form, with a hint where the fix is on the caller's side. */
export function humanErrorMessage(err: unknown): string {
  const { error_description } = toErrorReport(err);
  if (err instanceof AdminApiError && err.status === 401) {
    return `${error_description} (pass --admin-token or set VEIL_ADMIN_TOKEN; on the server's machine the CLI reads KEYS_DIR/admin-token itself)`;
  }
  if (err instanceof CommanderError && err.code === 'commander.unknownOption') {
    // A key id can begin with '-' (it is base64url): commander then reads it as an option.
    return `${error_description} (an argument that begins with '-', such as a key id, goes after '--': veil keys retire -- -AbC…)`;
  }
  return error_description;
}
