/**
 * One measurement: autocannon, in this process, against one target for a fixed time after a
 * warm-up, with the server's CPU use over the measured window.
 */
import autocannon from 'autocannon';
import { coreTimes, pinning, type ServerProcess } from './processes.js';

export interface LoadSettings {
  connections: number;
  seconds: number;
  warmupSeconds: number;
}

export function loadSettings(env: NodeJS.ProcessEnv = process.env): LoadSettings {
  const num = (name: string, fallback: number) => {
    const v = env[name];
    if (v === undefined || v === '') return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${v}`);
    return n;
  };
  return { seconds: num('BENCH_SECONDS', 10), warmupSeconds: num('BENCH_WARMUP_SECONDS', 2), connections: Math.round(num('BENCH_CONNECTIONS', 10)) };
}

export interface Target {
  name: string;
  server: ServerProcess;
  url: string;
  path: string;
  headers: Record<string, string>;
  /** A fixed body, or ... */
  body?: string;
  /** ... a body per request (e.g. the next refresh token), with a hook on each response. */
  requests?: autocannon.Request[];
  /** Called before each run (warm-up and measured), e.g. to hand out fresh refresh tokens. */
  beforeRun?: () => void;
}

export interface Measurement {
  name: string;
  /** 2xx responses per second over the measured window. */
  rps: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  p50: number;
  p99: number;
  seconds: number;
  /** Server CPU use over the measured window, as a fraction of one core. */
  serverCpu: number | undefined;
  /** This process's (the load generator's) CPU use, as a fraction of one core. */
  clientCpu: number;
  /** CPU use on the server's core by anything but the server (other processes on a shared machine). */
  otherOnServerCore: number | undefined;
  statusCodes: Record<string, number>;
  /** Set when any response was not 2xx, or a connection failed: the figures are not valid. */
  failure?: string;
}

function once(target: Target, connections: number, duration: number, sample: { body?: string }): Promise<autocannon.Result> {
  // Keep the first non-2xx body, so a failure says what the server answered.
  const keep = (status: number, body: string) => {
    if ((status < 200 || status > 299) && sample.body === undefined) sample.body = `${status} ${body.slice(0, 300)}`;
  };
  const base: autocannon.Request[] = target.requests ?? [{ method: 'POST', path: target.path, headers: target.headers, body: target.body }];
  const requests: autocannon.Request[] = base.map((r) => ({
    ...r,
    onResponse: (status, body, context, headers) => {
      keep(status, body);
      if (typeof r.onResponse === 'function') r.onResponse(status, body, context, headers);
    },
  }));
  return autocannon({
    url: `${target.url}${target.path}`,
    connections,
    pipelining: 1,
    duration,
    timeout: 30,
    method: 'POST',
    headers: target.headers,
    ...(target.body !== undefined ? { body: target.body } : {}),
    requests,
  });
}

function codes(r: autocannon.Result): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [code, s] of Object.entries(r.statusCodeStats ?? {})) out[code] = s.count ?? 0;
  return out;
}

export async function measure(target: Target, settings: LoadSettings): Promise<Measurement> {
  target.beforeRun?.();
  const sample: { body?: string } = {};
  const warm = await once(target, settings.connections, settings.warmupSeconds, sample);
  const warmFailure = warm.non2xx || warm.errors ? `warm-up got ${warm.non2xx} non-2xx responses and ${warm.errors} errors ${JSON.stringify(codes(warm))}` : undefined;

  target.beforeRun?.();
  const cpu0 = target.server.cpuSeconds();
  const self0 = process.cpuUsage();
  const core0 = pinning ? coreTimes(pinning.server) : undefined;
  const wall0 = performance.now();
  const r = await once(target, settings.connections, settings.seconds, sample);
  const wall = (performance.now() - wall0) / 1000;
  const cpu1 = target.server.cpuSeconds();
  const self = process.cpuUsage(self0);
  const core1 = pinning ? coreTimes(pinning.server) : undefined;
  const serverCpu = cpu0 !== undefined && cpu1 !== undefined ? (cpu1 - cpu0) / wall : undefined;
  const coreBusy = core0 && core1 && core1.total > core0.total ? (core1.busy - core0.busy) / (core1.total - core0.total) : undefined;

  const m: Measurement = {
    name: target.name,
    rps: r['2xx'] / r.duration,
    ok: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    p50: r.latency.p50,
    p99: r.latency.p99,
    seconds: r.duration,
    serverCpu,
    clientCpu: (self.user + self.system) / 1e6 / wall,
    otherOnServerCore: coreBusy !== undefined && serverCpu !== undefined ? Math.max(0, coreBusy - serverCpu) : undefined,
    statusCodes: codes(r),
  };
  if (m.non2xx || m.errors || m.ok === 0) {
    m.failure = `${m.non2xx} non-2xx responses, ${m.errors} errors (${m.timeouts} timeouts), ${m.ok} 2xx ${JSON.stringify(m.statusCodes)}`;
  }
  if (warmFailure) m.failure = m.failure ? `${warmFailure}; ${m.failure}` : warmFailure;
  if (m.failure && sample.body) m.failure += `; first non-2xx: ${sample.body}`;
  return m;
}
