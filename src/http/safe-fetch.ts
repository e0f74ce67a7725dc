/**
 * Outbound HTTP to URLs that admins (or clients' metadata) name: jwks_uri and the like. Such a
 * URL must not turn Veil into a proxy into its own network (SSRF), so:
 * - only http(s), https only when required (production), no credentials in the URL;
 * - the host is resolved once, every address is checked, and the connection goes to exactly
 *   the checked addresses (a custom `lookup`), so DNS rebinding cannot swap the target between
 *   the check and the connect; IP literals are checked before any socket exists;
 * - redirects are never followed, the body is capped while streaming, and one deadline covers
 *   connect, headers and body.
 * Failures after a connection say nothing about what came back (callers answer one generic
 * error), so a caller learns nothing of what the target serves.
 */
import { promises as dns, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { VeilError } from '../errors/veil-error.js';

export const DEFAULT_MAX_BYTES = 64 * 1024;
export const DEFAULT_TIMEOUT_MS = 4000;

export interface OutboundPolicy {
  /** Loopback, private (RFC 1918, CGNAT) and ULA addresses allowed: development only. */
  allowPrivate: boolean;
  /** Plain http refused (production). */
  requireHttps: boolean;
  /** Response body cap, counted while streaming. Default 64 KiB. */
  maxBytes?: number;
  /** One deadline for connect, headers and body. Default 4 s. */
  timeoutMs?: number;
  /** The resolver (tests); default dns.lookup with every address. */
  resolve?: (hostname: string) => Promise<LookupAddress[]>;
}

/** Refused before any connection: the message is about the URL only, so it is safe to show. */
export class OutboundRefused extends VeilError {
  constructor(readonly detail: string) {
    super('invalid_input', `the URL ${detail}`);
  }
}

/** Failed while or after connecting. The reason is for logs; it never quotes the response. */
export class OutboundFailed extends VeilError {
  constructor(readonly reason: 'dns' | 'network' | 'timeout' | 'redirect' | 'too_large' | 'bad_response') {
    super('unreachable', `outbound request failed: ${reason}`);
  }
}

function blockList(v4: [string, number][], v6: [string, number][]): { v4: BlockList; v6: BlockList } {
  const lists = { v4: new BlockList(), v6: new BlockList() };
  for (const [net, prefix] of v4) lists.v4.addSubnet(net, prefix, 'ipv4');
  for (const [net, prefix] of v6) lists.v6.addSubnet(net, prefix, 'ipv6');
  return lists;
}

// Never reachable through any setting: nothing a JWK Set legitimately lives on. Link-local holds
// cloud metadata services (169.254.169.254); the IPv6 forms that embed an IPv4 address
// (mapped, compatible, NAT64, 6to4, Teredo) would smuggle a private IPv4 past the v4 rules.
const FORBIDDEN = blockList(
  [
    ['0.0.0.0', 8],
    ['169.254.0.0', 16],
    ['192.0.0.0', 24],
    ['192.0.2.0', 24],
    ['198.18.0.0', 15],
    ['198.51.100.0', 24],
    ['203.0.113.0', 24],
    ['224.0.0.0', 4],
    ['240.0.0.0', 4],
  ],
  [
    ['::', 96],
    ['::ffff:0:0', 96],
    ['64:ff9b::', 96],
    ['64:ff9b:1::', 48],
    ['100::', 64],
    ['2001::', 32],
    ['2001:db8::', 32],
    ['2002::', 16],
    ['fe80::', 10],
    ['fec0::', 10],
    ['ff00::', 8],
  ],
);

/** Reachable only with `allowPrivate` (local development and tests). */
const PRIVATE = blockList(
  [
    ['10.0.0.0', 8],
    ['100.64.0.0', 10],
    ['127.0.0.0', 8],
    ['172.16.0.0', 12],
    ['192.168.0.0', 16],
  ],
  [
    ['::1', 128],
    ['fc00::', 7],
  ],
);

export type AddressClass = 'public' | 'private' | 'forbidden';

export function classifyAddress(address: string): AddressClass {
  const family = isIP(address);
  if (family === 4) {
    // Only v4 rules for a v4 address: BlockList matches v4 addresses against v4-mapped v6 rules.
    if (FORBIDDEN.v4.check(address, 'ipv4')) return 'forbidden';
    return PRIVATE.v4.check(address, 'ipv4') ? 'private' : 'public';
  }
  if (family === 6) {
    if (PRIVATE.v6.check(address, 'ipv6')) return 'private'; // before ::/96, which holds ::1
    if (FORBIDDEN.v6.check(address, 'ipv6')) return 'forbidden';
    return 'public';
  }
  return 'forbidden';
}

function assertAddressAllowed(address: string, policy: OutboundPolicy): void {
  const kind = classifyAddress(address);
  if (kind === 'forbidden') throw new OutboundRefused('points to a link-local, multicast, unspecified or reserved address, which is not allowed');
  if (kind === 'private' && !policy.allowPrivate) {
    throw new OutboundRefused('points to a loopback or private address, which is not allowed (RESOURCE_JWKS_ALLOW_PRIVATE=true allows it in development)');
  }
}

/** The checks that need no network: scheme, https when required, no credentials, IP literals. */
export function checkUrlPolicy(input: string | URL, policy: OutboundPolicy): URL {
  const url = URL.parse(String(input));
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) throw new OutboundRefused('must be an http or https URL');
  if (policy.requireHttps && url.protocol !== 'https:') throw new OutboundRefused('must be https when NODE_ENV=production');
  if (url.username || url.password) throw new OutboundRefused('must not contain credentials');
  const host = hostOf(url);
  if (!host) throw new OutboundRefused('has no host');
  if (isIP(host)) assertAddressAllowed(host, policy);
  return url;
}

/** WHATWG URL keeps IPv6 literals in brackets and normalises every IPv4 spelling. */
function hostOf(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

/** Resolves the host once and checks every address it has: one refused address refuses the URL. */
async function vetAddresses(url: URL, policy: OutboundPolicy): Promise<LookupAddress[]> {
  const host = hostOf(url);
  if (isIP(host)) return [{ address: host, family: isIP(host) }];
  let addresses: LookupAddress[];
  try {
    addresses = await (policy.resolve ?? ((h: string) => dns.lookup(h, { all: true, verbatim: true })))(host);
  } catch {
    throw new OutboundFailed('dns');
  }
  if (!addresses.length) throw new OutboundFailed('dns');
  for (const { address } of addresses) assertAddressAllowed(address, policy);
  return addresses;
}

/** For validation at registration: the URL and everything its host resolves to are allowed. */
export async function assertSafeUrl(input: string | URL, policy: OutboundPolicy): Promise<void> {
  await vetAddresses(checkUrlPolicy(input, policy), policy);
}

/** A `lookup` that answers only with the vetted addresses, whatever the name. */
function pinnedLookup(addresses: LookupAddress[]): LookupFunction {
  return ((_hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options?.all) callback(null, addresses);
    else callback(null, addresses[0]!.address, addresses[0]!.family);
  }) as LookupFunction;
}

export interface SafeFetchInit {
  method?: string;
  headers?: ConstructorParameters<typeof Headers>[0];
  body?: string | Uint8Array | URLSearchParams;
  signal?: AbortSignal;
}

const NULL_BODY_STATUS = new Set([204, 205, 304]);

/**
 * fetch-shaped: resolves with a WHATWG Response whose body is already read (and capped), so it
 * can stand in for `fetch` in jose's and oidc-provider's hooks. Redirects reject.
 */
export async function safeFetch(input: string | URL, policy: OutboundPolicy, init: SafeFetchInit = {}): Promise<Response> {
  const url = checkUrlPolicy(input, policy);
  const addresses = await vetAddresses(url, policy);
  const maxBytes = policy.maxBytes ?? DEFAULT_MAX_BYTES;
  const deadline = AbortSignal.timeout(policy.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const signal = init.signal ? AbortSignal.any([init.signal, deadline]) : deadline;
  const headers: Record<string, string> = { 'user-agent': 'veil', accept: 'application/json' };
  new Headers(init.headers).forEach((value, name) => {
    if (value) headers[name] = value; // oidc-provider blanks user-agent; ours stays
  });
  const body = init.body === undefined ? undefined : init.body instanceof URLSearchParams ? init.body.toString() : init.body;

  return new Promise<Response>((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(err);
    };
    const onAbort = () => fail(deadline.aborted ? new OutboundFailed('timeout') : new OutboundFailed('network'));
    const req = (url.protocol === 'https:' ? https : http).request(
      url,
      {
        method: init.method ?? 'GET',
        headers,
        lookup: pinnedLookup(addresses),
        // A fresh connection each time: a pooled socket could outlive the check it was made under.
        agent: false,
        maxHeaderSize: 16 * 1024,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400) return fail(new OutboundFailed('redirect'));
        if (status < 200 || status > 599) return fail(new OutboundFailed('bad_response'));
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > maxBytes) return fail(new OutboundFailed('too_large'));
        const chunks: Buffer[] = [];
        let received = 0;
        res.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received > maxBytes) fail(new OutboundFailed('too_large'));
          else chunks.push(chunk);
        });
        res.on('error', () => fail(new OutboundFailed('network')));
        res.on('aborted', () => fail(new OutboundFailed('network')));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          signal.removeEventListener('abort', onAbort);
          const responseHeaders = new Headers();
          for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
            try {
              responseHeaders.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
            } catch {
              // A header the WHATWG rules refuse is dropped, not fatal.
            }
          }
          resolve(new Response(NULL_BODY_STATUS.has(status) ? null : Buffer.concat(chunks), { status, headers: responseHeaders }));
        });
      },
    );
    req.on('error', () => (signal.aborted ? onAbort() : fail(new OutboundFailed('network'))));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    req.end(body);
  });
}

/**
 * A `fetch` for libraries that take one (oidc-provider's `fetch` option): the same rules. Their
 * own `dispatcher` is ignored; only string, bytes and URLSearchParams bodies are sent.
 */
export function outboundFetch(policy: OutboundPolicy): (input: string | URL | Request, init?: RequestInit) => Promise<Response> {
  return async (input, init = {}) => {
    const url = input instanceof Request ? input.url : input;
    const body = init.body;
    if (body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof Uint8Array) && !(body instanceof URLSearchParams)) {
      throw new TypeError('outboundFetch sends string, bytes or URLSearchParams bodies only');
    }
    return safeFetch(url, policy, { method: init.method, headers: init.headers, body: body ?? undefined, signal: init.signal ?? undefined });
  };
}
