/**
 * The CLI's edge of the error model. Every failure is reduced to the admin API's own error shape
 * ({error, error_description}) so `--json` consumers parse one format whatever went wrong, and to
 * an exit code. An admin API error keeps the server's code verbatim; a Veil error raised here
 * (configuration, key files, migrations, an unreachable server) answers the CLI's code from the
 * table below.
 */
import { CommanderError } from 'commander';
import { GENERIC_MESSAGE, VeilError, toVeilError, type VeilErrorCode } from '../errors/veil-error.js';
import { AdminApiError } from './admin-client.js';

/** A failure the CLI itself detected (a usage mistake, a missing token file...). */
export class CliError extends VeilError {}

export interface ErrorReport {
  error: string;
  error_description: string;
}

interface CliErrorRow {
  /** The `error` of the report. */
  error: string;
  exitCode: number;
}

const fail = (error: string): CliErrorRow => ({ error, exitCode: 1 });

/** Every failure exits 1 (commander's own usage errors keep commander's code). */
export const CLI_ERRORS: Record<VeilErrorCode, CliErrorRow> = {
  invalid_input: fail('invalid_usage'),
  invalid_client_metadata: fail('invalid_client_metadata'),
  unauthorized: fail('unauthorized'),
  forbidden: fail('forbidden'),
  not_found: fail('not_found'),
  method_not_allowed: fail('invalid_request'),
  conflict: fail('conflict'),
  payload_too_large: fail('invalid_request'),
  unsupported_media_type: fail('unsupported_media_type'),
  misdirected_request: fail('misdirected_request'),
  grant_revoked: fail('invalid_grant'),
  store_unavailable: fail('database_error'),
  key_unavailable: fail('key_error'),
  unreachable: fail('server_unreachable'),
  key_error: fail('key_error'),
  master_key_error: fail('key_error'),
  invalid_config: fail('invalid_configuration'),
  migration_failed: fail('migration_failed'),
  internal: fail('internal_error'),
};

export interface CliFailure {
  report: ErrorReport;
  exitCode: number;
}

/**
 * The report and exit code for anything thrown. The operator runs the CLI on their own behalf,
 * so a Veil error's message is shown whether or not a server would expose it; an unexpected
 * error shows only a generic message (never a stack trace).
 */
export function renderCliError(err: unknown): CliFailure {
  if (err instanceof AdminApiError) return { report: { error: err.error, error_description: err.error_description }, exitCode: 1 };
  if (err instanceof CommanderError) {
    // Commander quotes a mistyped option whole, value included: `--pasword=hunter2` must not
    // come back on the terminal (or in a CI log).
    const description = err.message.replace(/^error: /, '').replace(/'(--?[^'=\s]+)=[^']*'/g, "'$1=…'");
    return { report: { error: 'invalid_usage', error_description: description }, exitCode: err.exitCode };
  }
  const e = toVeilError(err);
  const row = CLI_ERRORS[e.code];
  return { report: { error: row.error, error_description: e.code === 'internal' ? GENERIC_MESSAGE : e.message }, exitCode: row.exitCode };
}

/** The JSON form. */
export function toErrorReport(err: unknown): ErrorReport {
  return renderCliError(err).report;
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
