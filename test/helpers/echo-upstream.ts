/**
 * The API behind a gateway in the gate's tests: answers every request with JSON naming the
 * method, the path (with its query) and every header it received, and keeps the same record, so
 * a test can tell exactly what a gateway let through and whether a refused request reached it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EchoedRequest {
  method: string;
  path: string;
  /** Lower-case names, as node:http gives them; repeated headers joined as node:http joins them. */
  headers: http.IncomingHttpHeaders;
}

export interface EchoUpstream {
  url: string;
  port: number;
  /** Every request received, oldest first. */
  requests: EchoedRequest[];
  close(): Promise<void>;
}

export async function startEchoUpstream(): Promise<EchoUpstream> {
  const requests: EchoedRequest[] = [];
  const server = http.createServer((req, res) => {
    // The body is not echoed; read it so keep-alive connections stay usable.
    req.resume();
    req.on('end', () => {
      const echoed: EchoedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers };
      requests.push(echoed);
      const body = JSON.stringify(echoed);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
