/**
 * A slow client over a raw TCP socket: sends the request headers and part of the body, then
 * waits to be told to send the rest. The server sees a request in flight for as long as the
 * test likes, with no test-only code path on the server side.
 */
import net from 'node:net';

export interface SlowRequest {
  /** Sends the rest of the body. */
  finish(): void;
  /** Everything the server sent, once it has closed the connection (or the connection broke). */
  response: Promise<{ raw: string; status: number | undefined; body: string }>;
  socket: net.Socket;
}

export async function startSlowRequest(port: number, options: { path: string; headers: Record<string, string>; body: string; host?: string }): Promise<SlowRequest> {
  const socket = net.connect(port, options.host ?? '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let raw = '';
  socket.on('data', (d) => (raw += d.toString()));
  const response = new Promise<{ raw: string; status: number | undefined; body: string }>((resolve) => {
    socket.on('error', () => {});
    socket.once('close', () => {
      const status = raw.match(/^HTTP\/1\.1 (\d{3})/)?.[1];
      resolve({ raw, status: status ? Number(status) : undefined, body: raw.split('\r\n\r\n').slice(1).join('\r\n\r\n') });
    });
  });
  const body = Buffer.from(options.body);
  const head = [
    `POST ${options.path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    `Content-Length: ${body.length}`,
    ...Object.entries(options.headers).map(([k, v]) => `${k}: ${v}`),
    '',
    '',
  ].join('\r\n');
  const half = Math.floor(body.length / 2);
  socket.write(head);
  socket.write(body.subarray(0, half));
  return {
    socket,
    response,
    finish: () => void socket.write(body.subarray(half)),
  };
}

/** Resolves true if a new TCP connection to the port is refused (the listener is closed). */
export function connectionRefused(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

export const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
