/**
 * Typed client for the admin HTTP API (docs/ADMIN_API.md). It owns everything HTTP-shaped so the
 * commands only deal in typed values and two error classes: AdminApiError (the server answered
 * with an error) and AdminUnreachableError (it did not answer at all).
 */

import type { HeKeyInfo } from '../admin/routes/he-keys.js';
import type {
  AuditEvent,
  Client,
  CreateClientRequest as CreateClientBody,
  UpdateClientRequest as UpdateClientBody,
  CreatedClient,
  CreatedResource,
  CreateResourceBody,
  CreateUserBody,
  Resource,
  User,
} from '../admin/contract.js';
export type { AuditEvent, Client, CreateClientBody, UpdateClientBody, CreatedClient, CreatedResource, CreateResourceBody, CreateUserBody, Resource, User };

import type { PublicKeyInfo, UpdateResourceBody, UserAttributes } from '../admin/contract.js';
export type { UpdateResourceBody };
import { codeForStatus, VeilError } from '../errors/veil-error.js';
import type { CreatePolicyRequest, Policy } from '../admin/routes/policies.js';
export type { CreatePolicyRequest, Policy };

/** The server answered with an error (already in the API's shape: the CLI reports it verbatim). */
export class AdminApiError extends VeilError {
  constructor(
    status: number,
    readonly error: string,
    readonly error_description: string,
  ) {
    super(codeForStatus(status), error_description, { status, expose: true });
  }
}

/** No HTTP answer at all: refused, DNS failure, timeout... */
export class AdminUnreachableError extends VeilError {
  constructor(
    readonly url: string,
    /** The system error (ECONNREFUSED, ENOTFOUND, ETIMEDOUT...), when there is one. */
    readonly networkCode: string | undefined,
    message: string,
  ) {
    super('unreachable', message, { expose: true });
  }
}

export interface AuditQuery {
  since: string;
  until?: string | undefined;
  type?: string | undefined;
  limit?: number | undefined;
}

export interface AdminClientOptions {
  baseUrl: string;
  token?: string | undefined;
  timeoutMs?: number;
}

export class AdminClient {
  private readonly base: URL;
  /** Path prefix without trailing slash ('' at the root); kept apart because URL forces '/'. */
  private readonly basePath: string;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;
  /** Base URL as shown to humans: no credentials, query or trailing slash. */
  readonly displayUrl: string;

  constructor(options: AdminClientOptions) {
    let base: URL;
    try {
      base = new URL(options.baseUrl);
    } catch {
      throw new TypeError('--admin-url must be an absolute http:// or https:// URL');
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new TypeError('--admin-url must be an absolute http:// or https:// URL');
    }
    // fetch refuses URLs with userinfo anyway; say why instead of failing obscurely.
    if (base.username || base.password) {
      throw new TypeError('--admin-url must not contain credentials: use --admin-token');
    }
    base.search = '';
    base.hash = '';
    this.base = base;
    this.basePath = base.pathname.replace(/\/+$/, '');
    this.displayUrl = base.origin + this.basePath;

    // Same normalisation as the server's ADMIN_TOKEN (trimmed, blank = unset).
    const token = options.token?.trim();
    // Checked here because undici's "invalid header value" error would echo the token.
    if (token && !/^[\x21-\x7e]+$/.test(token)) {
      throw new TypeError('the admin token contains characters that cannot be sent in an HTTP header');
    }
    this.token = token || undefined;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  async listUsers(): Promise<User[]> {
    return field<User[]>(await this.request('GET', '/admin/users'), 'users');
  }

  async createUser(body: CreateUserBody): Promise<User> {
    return field<User>(await this.request('POST', '/admin/users', body), 'user');
  }

  /** `GET /admin/users?email=`: the account with this address, or undefined. */
  async findUserByEmail(email: string): Promise<User | undefined> {
    return field<User[]>(await this.request('GET', '/admin/users', undefined, { email }), 'users')[0];
  }

  /** `POST /admin/users/:id/disable` or `/enable`. */
  async setUserDisabled(id: string, disabled: boolean): Promise<User> {
    const path = `/admin/users/${encodeURIComponent(id)}/${disabled ? 'disable' : 'enable'}`;
    return field<User>(await this.request('POST', path, {}), 'user');
  }

  /** `GET /admin/users/:id/attributes`. */
  async getUserAttributes(id: string): Promise<UserAttributes> {
    return (await this.request('GET', `/admin/users/${encodeURIComponent(id)}/attributes`)) as UserAttributes;
  }

  /** `PUT /admin/users/:id/attributes/:name`: the value as typed (the server checks it). */
  async setUserAttribute(id: string, name: string, value: string): Promise<UserAttributes> {
    return (await this.request('PUT', `/admin/users/${encodeURIComponent(id)}/attributes/${encodeURIComponent(name)}`, { value })) as UserAttributes;
  }

  async deleteUserAttribute(id: string, name: string): Promise<void> {
    await this.request('DELETE', `/admin/users/${encodeURIComponent(id)}/attributes/${encodeURIComponent(name)}`);
  }

  async listClients(): Promise<Client[]> {
    return field<Client[]>(await this.request('GET', '/admin/clients'), 'clients');
  }

  async createClient(body: CreateClientBody): Promise<CreatedClient> {
    const res = await this.request('POST', '/admin/clients', body);
    const client = field<Client>(res, 'client');
    const secret = (res as { client_secret?: unknown }).client_secret;
    return typeof secret === 'string' ? { client, client_secret: secret } : { client };
  }

  /** `PATCH /admin/clients/:clientId`: the fields given replace the client's. */
  async updateClient(clientId: string, body: UpdateClientBody): Promise<Client> {
    return field<Client>(await this.request('PATCH', `/admin/clients/${encodeURIComponent(clientId)}`, body), 'client');
  }

  async deleteClient(clientId: string): Promise<void> {
    await this.request('DELETE', `/admin/clients/${encodeURIComponent(clientId)}`);
  }

  async listKeys(): Promise<PublicKeyInfo[]> {
    return field<PublicKeyInfo[]>(await this.request('GET', '/admin/keys'), 'keys');
  }

  async rotateKeys(algs?: string[]): Promise<{ activated: PublicKeyInfo[]; keys: PublicKeyInfo[] }> {
    const res = await this.request('POST', '/admin/keys/rotate', algs?.length ? { algs } : {});
    return { activated: field<PublicKeyInfo[]>(res, 'activated'), keys: field<PublicKeyInfo[]>(res, 'keys') };
  }

  async rotateHeKey(): Promise<{ activated: HeKeyInfo; keys: HeKeyInfo[] }> {
    const res = await this.request('POST', '/admin/keys/he/rotate', {});
    return { activated: field<HeKeyInfo>(res, 'activated'), keys: field<HeKeyInfo[]>(res, 'keys') };
  }

  async retireKey(kid: string, force: boolean): Promise<PublicKeyInfo[]> {
    return field<PublicKeyInfo[]>(await this.request('POST', `/admin/keys/${encodeURIComponent(kid)}/retire`, { force }), 'keys');
  }

  async listResources(): Promise<Resource[]> {
    return field<Resource[]>(await this.request('GET', '/admin/resources'), 'resources');
  }

  async createResource(body: CreateResourceBody): Promise<CreatedResource> {
    const res = await this.request('POST', '/admin/resources', body);
    const resource = field<Resource>(res, 'resource');
    return {
      resource,
      introspection_client_id: field<string>(res, 'introspection_client_id'),
      introspection_client_secret: field<string>(res, 'introspection_client_secret'),
    };
  }

  /** `PATCH /admin/resources/:identifier`: the fields given replace the resource server's. */
  async updateResource(identifier: string, body: UpdateResourceBody): Promise<Resource> {
    return field<Resource>(await this.request('PATCH', `/admin/resources/${encodeURIComponent(identifier)}`, body), 'resource');
  }

  async deleteResource(identifier: string): Promise<void> {
    // Identifiers are URIs: encodeURIComponent keeps their "/" and ":" inside one path segment.
    await this.request('DELETE', `/admin/resources/${encodeURIComponent(identifier)}`);
  }

  /** `GET /admin/policies` (optionally one node's). */
  async listPolicies(node?: string): Promise<Policy[]> {
    return field<Policy[]>(await this.request('GET', '/admin/policies', undefined, node === undefined ? undefined : { node }), 'policies');
  }

  async createPolicy(body: CreatePolicyRequest): Promise<Policy> {
    return field<Policy>(await this.request('POST', '/admin/policies', body), 'policy');
  }

  async deletePolicy(id: string): Promise<void> {
    await this.request('DELETE', `/admin/policies/${encodeURIComponent(id)}`);
  }

  /** `GET /admin/audit`: `since`/`until` are ISO 8601 times or durations (1h, 7d), newest first. */
  async listAuditEvents(query: AuditQuery): Promise<AuditEvent[]> {
    const params: Record<string, string> = { since: query.since };
    if (query.until !== undefined) params.until = query.until;
    if (query.type !== undefined) params.type = query.type;
    if (query.limit !== undefined) params.limit = String(query.limit);
    return field<AuditEvent[]>(await this.request('GET', '/admin/audit', undefined, params), 'events');
  }

  /** One request; resolves to the parsed JSON body (undefined for 204), throws the typed errors. */
  private async request(method: string, path: string, body?: unknown, query?: Record<string, string>): Promise<unknown> {
    const url = new URL(this.base.href);
    url.pathname = this.basePath + path;
    if (query) url.search = new URLSearchParams(query).toString();
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token) headers.authorization = `Bearer ${this.token}`;

    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        // Never follow a redirect: it could carry the bearer token somewhere else.
        redirect: 'error',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw this.unreachable(err);
    }

    const text = await res.text();
    const parsed = parseJson(text);
    if (res.ok) {
      if (text === '') return undefined;
      if (parsed === undefined) {
        throw new AdminApiError(res.status, 'invalid_response', 'the admin API returned a response that is not JSON');
      }
      return parsed;
    }
    if (isErrorBody(parsed)) {
      throw new AdminApiError(res.status, parsed.error, parsed.error_description ?? parsed.error);
    }
    // Not Veil's error shape (a proxy page, say): keep what little we know.
    throw new AdminApiError(res.status, 'server_error', `unexpected HTTP ${res.status} ${res.statusText}`.trim());
  }

  private unreachable(err: unknown): AdminUnreachableError {
    const where = `the Veil admin API at ${this.displayUrl}`;
    if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
      return new AdminUnreachableError(this.displayUrl, 'ETIMEDOUT', `${where} did not answer within ${this.timeoutMs / 1000}s`);
    }
    const code = networkCode(err);
    if (code === 'ECONNREFUSED') {
      return new AdminUnreachableError(this.displayUrl, code, `cannot reach ${where}: is the server running?`);
    }
    const detail = code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? `host not found (${code})` : (code ?? rootMessage(err));
    return new AdminUnreachableError(this.displayUrl, code, `cannot reach ${where}: ${detail}`);
  }
}

function field<T>(body: unknown, key: string): T {
  if (typeof body === 'object' && body !== null && key in body) return (body as Record<string, T>)[key] as T;
  throw new AdminApiError(200, 'invalid_response', `the admin API response has no "${key}" field`);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isErrorBody(v: unknown): v is { error: string; error_description?: string } {
  return typeof v === 'object' && v !== null && typeof (v as { error?: unknown }).error === 'string';
}

/**
 * undici reports socket failures as TypeError('fetch failed') with the system error as `cause`,
 * sometimes wrapped in an AggregateError (one per address tried for "localhost").
 */
function networkCode(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('E')) return code;
    if (current instanceof AggregateError && current.errors.length) {
      current = current.errors[0];
      continue;
    }
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function rootMessage(err: unknown): string {
  let current: unknown = err;
  while ((current as { cause?: unknown })?.cause) current = (current as { cause: unknown }).cause;
  return current instanceof Error ? current.message : String(current);
}
