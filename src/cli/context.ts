/**
 * What every command needs from the program. Global options are only known once commander has
 * parsed argv, so the context hands them out lazily, from inside the actions.
 */
import { AdminClient } from './admin-client.js';
import { CliError } from './errors.js';
import type { CliIo, Output } from './output.js';

export interface GlobalOptions {
  adminUrl: string;
  adminToken?: string;
  json?: boolean;
}

export interface CliContext {
  io: CliIo;
  output(): Output;
  client(): AdminClient;
}

export function adminClientFrom(options: GlobalOptions): AdminClient {
  try {
    return new AdminClient({ baseUrl: options.adminUrl, token: options.adminToken });
  } catch (err) {
    // Bad --admin-url / token: the caller's mistake, not an internal error.
    throw new CliError('invalid_usage', (err as Error).message);
  }
}
