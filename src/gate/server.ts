/**
 * `startGate`: the gate's HTTP listener. Check endpoints per gateway dialect (`/check` for nginx
 * auth_request, `/check/traefik` for Traefik ForwardAuth, `/check/envoy/<original path>` for Envoy
 * ext_authz), plus `/healthz` and Prometheus `/metrics`. A plain node:http handler: a decision
 * from the caches is a few microseconds of work, which a framework's routing would dominate.
 *
 * The listener must be reachable by the gateway only: any caller that reaches `/check` with a
 * valid token gets the route's identity headers and exchanged token.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createListener, drainServer, listen } from '../http/listeners.js';
import { createLogger, errorFields, type Logger } from '../observability/logger.js';
import type { GateConfig } from './config.js';
import { decide, type Decision } from './decide.js';
import { answerFor, badRequestAnswer, CHECK_PATHS, isBadCheckRequest, originalRequest, type Answer } from './dialects.js';
import { TokenExchanger } from './exchange.js';
import { GateMetrics, type DecisionOutcome, type Dialect } from './metrics.js';
import { PolicyRules } from './policy-rules.js';
import { compileRoutes } from './routes.js';
import { buildVerifiers } from './verifiers.js';

export interface RunningGate {
  url: string;
  port: number;
  close(): Promise<void>;
}

function dialectOf(pathname: string): Dialect | undefined {
  if (pathname === CHECK_PATHS.nginx) return 'nginx';
  if (pathname === CHECK_PATHS.traefik) return 'traefik';
  if (pathname === CHECK_PATHS.envoy || pathname.startsWith(`${CHECK_PATHS.envoy}/`)) return 'envoy';
  return undefined;
}

function send(res: ServerResponse, answer: Answer): void {
  res.writeHead(answer.status, answer.headers);
  res.end(answer.body);
}

function fixedAnswer(status: number, contentType: string, body: string): Answer {
  return { status, headers: { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': String(Buffer.byteLength(body)) }, body };
}

const NOT_FOUND = fixedAnswer(404, 'application/json', JSON.stringify({ error: 'not_found', error_description: 'no such endpoint' }));
const INTERNAL = fixedAnswer(500, 'application/json', JSON.stringify({ error: 'server_error', error_description: 'the gate failed to decide' }));
const HEALTHY = fixedAnswer(200, 'application/json', '{"status":"ok"}');

const outcomeOf = (decision: Decision): DecisionOutcome => (decision.kind === 'allow' ? 'allow' : decision.kind === 'deny' ? 'deny' : 'error');

export async function startGate(config: GateConfig, options: { logger?: Logger } = {}): Promise<RunningGate> {
  const logger = (options.logger ?? createLogger('info')).child({ component: 'gate' });
  // Scraped only after start-up, so the verifiers exist by the time their counters are read.
  const gateMetrics = new GateMetrics(() => verifiers.cacheStats());
  const verifiers = await buildVerifiers(config, (audience, outcome) => gateMetrics.introspection(audience, outcome));
  const exchanger =
    config.client && config.routes.some((r) => r.exchange)
      ? new TokenExchanger({
          issuer: config.issuer,
          ...(config.tokenEndpoint && { tokenEndpoint: config.tokenEndpoint }),
          clientId: config.client.id,
          clientSecret: config.client.secret,
          maxEntries: config.cache.maxEntries,
          onOutcome: (outcome) => gateMetrics.exchange(outcome),
        })
      : undefined;
  const policies =
    config.client && config.routes.some((r) => r.require)
      ? new PolicyRules({ issuer: config.issuer, clientId: config.client.id, clientSecret: config.client.secret, cacheMaxEntries: config.cache.maxEntries })
      : undefined;
  const deps = { routes: compileRoutes(config.routes), verifiers, exchanger, policies };

  async function check(dialect: Dialect, target: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const original = originalRequest(dialect, req, target);
    if (isBadCheckRequest(original)) {
      gateMetrics.decision(dialect, 'error', 'bad_request', 'none', (performance.now() - started) / 1000);
      logger.warn({ dialect, header: original.missing }, `check request refused: ${original.description}`);
      send(res, badRequestAnswer(original));
      return;
    }
    const decision = await decide(deps, original);
    const outcome = outcomeOf(decision);
    const route = decision.route?.name ?? 'none';
    gateMetrics.decision(dialect, outcome, decision.reason, route, (performance.now() - started) / 1000);
    if (decision.kind === 'unavailable') {
      // Fail closed, loudly: the detail names what failed (endpoint, status), never the token.
      logger.error({ dialect, route, reason: decision.reason }, `Veil unreachable, request refused (503): ${decision.detail}`);
    } else if (logger.isLevelEnabled('debug')) {
      logger.debug({ dialect, route, method: original.method, outcome, reason: decision.reason }, 'decision');
    }
    send(res, answerFor(dialect, decision));
  }

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const pathname = q === -1 ? target : target.slice(0, q);
    const dialect = dialectOf(pathname);
    if (dialect) {
      check(dialect, target, req, res).catch((err: unknown) => {
        logger.error({ err: errorFields(err), dialect }, 'check failed');
        if (!res.headersSent) send(res, INTERNAL);
        else res.destroy();
      });
      return;
    }
    if (pathname === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      send(res, HEALTHY);
      return;
    }
    if (pathname === '/metrics' && req.method === 'GET') {
      gateMetrics.registry.metrics().then(
        (text) => send(res, fixedAnswer(200, gateMetrics.registry.contentType, text)),
        (err: unknown) => {
          logger.error({ err: errorFields(err) }, 'metrics failed');
          send(res, INTERNAL);
        },
      );
      return;
    }
    send(res, NOT_FOUND);
  };

  const server = createListener(handler);
  // Gateways keep connections to the gate open; outlive nginx's and Envoy's idle timeouts a little.
  server.keepAliveTimeout = 65_000;
  const url = await listen(server, config.listen.host, config.listen.port);
  const port = Number(new URL(url).port);
  logger.info(
    { url, routes: config.routes.length, audiences: config.audiences.map((a) => a.identifier), introspect: config.introspect.enabled, exchange: exchanger !== undefined },
    'veil gate listening',
  );

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    close() {
      closing ??= (async () => {
        logger.info('veil gate shutting down: finishing checks in flight');
        await drainServer(server, config.shutdownTimeoutSeconds * 1000, () => logger.warn('shutdown timeout: cutting the checks still in flight'));
        exchanger?.clear();
        logger.info('veil gate stopped');
      })();
      return closing;
    },
  };
}
