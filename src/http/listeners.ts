/**
 * Veil's HTTP listeners: bound with request limits, TLS when configured, and drained gracefully
 * on shutdown.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

export type Listener = http.Server | https.Server;
type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const LIMITS = { maxHeaderSize: 16 * 1024, requestTimeout: 30_000, headersTimeout: 15_000 };

export function createListener(handler: Handler, tls?: { cert: string | Buffer; key: string | Buffer }): Listener {
  return tls ? https.createServer({ ...LIMITS, cert: tls.cert, key: tls.key }, handler) : http.createServer(LIMITS, handler);
}

/** Binds, and answers the URL it serves (a wildcard host shown as 127.0.0.1). */
export async function listen(server: Listener, host: string, port: number): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const scheme = server instanceof https.Server ? 'https' : 'http';
  return `${scheme}://${shownHost === '0.0.0.0' ? '127.0.0.1' : shownHost}:${address.port}`;
}

/**
 * Graceful drain: stop accepting, close keep-alive connections as soon as they are idle (also
 * those whose request finishes during the drain), let in-flight requests finish, and cut what is
 * left when `timeoutMs` is up.
 */
export function drainServer(server: Listener, timeoutMs: number, onDeadline: () => void): Promise<void> {
  return new Promise((resolve) => {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearInterval(idle);
      clearTimeout(deadline);
      clearTimeout(giveUp);
      resolve();
    };
    server.close(finish);
    server.closeIdleConnections();
    const idle = setInterval(() => server.closeIdleConnections(), 100);
    const deadline = setTimeout(() => {
      onDeadline();
      server.closeAllConnections();
    }, timeoutMs);
    // Sockets that never became HTTP connections (e.g. a TLS handshake left hanging) are not
    // closed by closeAllConnections; do not wait for them forever.
    const giveUp = setTimeout(finish, timeoutMs + 2000);
  });
}
