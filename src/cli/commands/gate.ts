/**
 * `veil gate --config gate.json`: runs the gate (src/gate/), the forward-auth decision service for
 * nginx, Traefik and Envoy, until SIGTERM or SIGINT, then drains and exits 0. Unlike the other
 * commands it is a server, not an admin API client: it never builds the admin client, and its
 * modules load only when it runs.
 */
import { Option, type Command } from 'commander';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';

/** Resolves on the first SIGTERM or SIGINT. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(signal);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

export function registerGate(program: Command, _ctx: CliContext): void {
  program
    .command('gate')
    .description('run Veil Gate, the forward-auth decision service for nginx auth_request, Traefik ForwardAuth and Envoy ext_authz (until SIGTERM/SIGINT)')
    .addOption(new Option('--config <file>', 'the gate configuration file (JSON; see docs/GATEWAY.md)').env('GATE_CONFIG'))
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).env('GATE_LOG_LEVEL').default('info'))
    .action(async (options: { config?: string; logLevel: string }) => {
      if (!options.config) throw new CliError('invalid_input', 'give the configuration file: veil gate --config gate.json (or set GATE_CONFIG)');
      const { loadGateConfig } = await import('../../gate/config.js');
      const { startGate } = await import('../../gate/server.js');
      const { createLogger } = await import('../../observability/logger.js');
      const config = await loadGateConfig(options.config, process.env);
      const logger = createLogger(options.logLevel, undefined, { production: process.env.NODE_ENV === 'production' });
      // Listening before the signal handlers would let an early SIGTERM kill the process mid-start;
      // registering first means it is answered by a clean drain once started.
      const signal = untilSignal();
      const gate = await startGate(config, { logger });
      logger.info({ signal: await signal }, 'veil gate: signal received');
      await gate.close();
    });
}
