/** Small networking helpers for tests: free ports, a relying-party callback server, a cuttable TCP proxy. */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A relying party's redirect target: answers 200 and records every URL it was sent to. */
export async function startCallbackServer(): Promise<{ url: string; hits: URL[]; close(): Promise<void> }> {
  const hits: URL[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host}`);
    hits.push(url);
    res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>RP</title><p>relying party callback</p>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * A TCP proxy in front of a real service (PostgreSQL, Redis). `cut()` drops every connection and
 * refuses new ones, as if the service went down; `restore()` brings it back. `cutWhen(match)`
 * cuts at the first chunk a client sends that `match` accepts (that chunk is not forwarded): an
 * outage at an exact point of a request. `retarget(port)` sends new connections to another
 * server (a failover, as the client sees it once it reconnects).
 */
export async function startTcpProxy(targetHost: string, targetPort: number) {
  const sockets = new Set<net.Socket>();
  let up = true;
  let target = { host: targetHost, port: targetPort };
  let trigger: ((chunk: Buffer) => boolean) | undefined;
  const cut = () => {
    up = false;
    for (const s of sockets) s.destroy();
    sockets.clear();
  };
  const server = net.createServer((client) => {
    if (!up) return client.destroy();
    const upstream = net.connect(target.port, target.host);
    sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.on('data', (chunk: Buffer) => {
      if (trigger?.(chunk)) {
        trigger = undefined;
        cut();
        return;
      }
      upstream.write(chunk);
    });
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    cut,
    /** Cuts (as `cut()`) when a client next sends a chunk `match` accepts; resolves once it has. */
    cutWhen(match: (chunk: Buffer) => boolean): Promise<void> {
      return new Promise<void>((resolve) => {
        trigger = (chunk) => match(chunk) && (resolve(), true);
      });
    },
    restore() {
      up = true;
    },
    retarget(newPort: number, host = targetHost) {
      target = { host, port: newPort };
    },
    close: () =>
      new Promise<void>((resolve) => {
        up = false;
        trigger = undefined;
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
