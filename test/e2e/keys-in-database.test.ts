/**
 * Issue 12, acceptance 2: two Veil processes (dist/, as on two hosts) with separate KEYS_DIRs
 * and KEYS_STORE=database on one PostgreSQL and Redis. A rotation through one process's admin
 * API is used by the other without a restart, tokens signed before keep verifying, retirement
 * propagates. `veil keys migrate-to-database` moves a file ring (and refuses another ring);
 * a keys table that cannot be opened, or a ring under another master key, stops start-up.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import pg from 'pg';
import { loadOrCreateKeyRing } from '../../src/crypto/key-ring.js';
import { FileKeyStore } from '../../src/crypto/key-store-file.js';
import { loadOrCreateCookieKeys } from '../../src/crypto/keys.js';
import { Envelope, generateMasterKey, parseMasterKeys } from '../../src/crypto/master-key.js';
import { httpAuthorizationCodeFlow, tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { freePort } from '../helpers/net.js';
import { ManagedProcess, REPO_ROOT, runCli } from '../helpers/process.js';
import { introspect, openSealed, registerResourceServer, type TestResourceServer } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import type { TestVeil } from '../helpers/veil.js';

const MASTER_KEY = generateMasterKey();
const ADMIN_TOKEN = 'keys-in-database-admin-token-0123456789';

interface Host {
  process: ManagedProcess;
  url: string;
  keysDir: string;
  admin<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
}

let root: string;

async function hostEnv(stores: TestStores, issuer: string | undefined, extra: Record<string, string> = {}, fixedPort?: number) {
  const port = fixedPort ?? (await freePort());
  const adminPort = await freePort();
  const keysDir = await fs.mkdtemp(path.join(root, 'keys-'));
  return {
    port,
    adminPort,
    keysDir,
    env: {
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: String(port),
      ISSUER: issuer ?? `http://127.0.0.1:${port}`,
      ADMIN_PORT: String(adminPort),
      ADMIN_TOKEN,
      KEYS_DIR: keysDir,
      KEYS_STORE: 'database',
      // Far longer than the test: a rotation must arrive by the Redis announcement.
      KEYS_RELOAD_SECONDS: '120',
      VEIL_MASTER_KEY: MASTER_KEY,
      DATABASE_URL: stores.databaseUrl,
      REDIS_URL: stores.redisUrl,
      REDIS_KEY_PREFIX: stores.keyPrefix,
      VEIL_SEED: 'off',
      RESOURCE_JWKS_ALLOW_PRIVATE: 'true',
      COOKIE_KEYS: '',
      ...extra,
    },
  };
}

async function startHost(stores: TestStores, issuer?: string, fixedPort?: number, extra: Record<string, string> = {}): Promise<Host> {
  const { port, adminPort, keysDir, env } = await hostEnv(stores, issuer, extra, fixedPort);
  const child = new ManagedProcess(process.execPath, ['dist/main.js'], env);
  await child.waitFor(/Veil is ready/, 60_000);
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  return {
    process: child,
    url: `http://127.0.0.1:${port}`,
    keysDir,
    async admin<T>(method: string, p: string, body?: unknown) {
      const res = await fetch(`${adminUrl}${p}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
    },
  };
}

/** Starts Veil once and waits for it to exit (start-up failures). */
function startOnce(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'dist/main.js')], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

async function sql<T>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows as T[];
  } finally {
    await client.end();
  }
}

const jwksOf = async (url: string) => (await (await fetch(`${url}/jwks`)).json()) as JSONWebKeySet;
const kidsOf = async (url: string) => (await jwksOf(url)).keys.map((k) => k.kid!).sort();

async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail('condition not reached in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-keys-db-'));
});
after(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('two hosts with the signing keys in PostgreSQL (no shared KEYS_DIR)', () => {
  let stores: TestStores;
  let a: Host;
  let b: Host;
  let rs: TestResourceServer;
  let worker: HttpFlowClient;
  let web: HttpFlowClient;
  const user = { email: 'keys-db@example.com', password: 'keys without a shared volume' };

  before(async () => {
    stores = await createTestStores();
    // Both start at once on an empty database: they must end up with one ring, not two.
    const aPort = await freePort();
    [a, b] = await Promise.all([startHost(stores, undefined, aPort), startHost(stores, `http://127.0.0.1:${aPort}`)]);
    rs = await registerResourceServer({ admin: (method: string, p: string, body?: unknown) => a.admin(method, p, body) } as unknown as TestVeil, {
      identifier: 'https://keys-db.example/api',
    });
    const w = await a.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'keys-db-worker',
      grant_types: ['client_credentials'],
      resources: [rs.identifier],
    });
    worker = { issuer: a.url, clientId: w.body.client.client_id, clientSecret: w.body.client_secret, redirectUri: 'x' };
    const c = await a.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
      client_name: 'keys-db-web',
      redirect_uris: ['http://127.0.0.1:9/cb'],
      grant_types: ['authorization_code', 'refresh_token'],
    });
    web = { issuer: a.url, clientId: c.body.client.client_id, clientSecret: c.body.client_secret, redirectUri: 'http://127.0.0.1:9/cb' };
    assert.equal((await a.admin('POST', '/admin/users', user)).status, 201);
  });

  after(async () => {
    await Promise.all([a?.process.stop(), b?.process.stop()]);
    await stores?.cleanup();
  });

  const sealedVia = async (url: string) => {
    const res = await tokenRequest({ ...worker, issuer: url }, { grant_type: 'client_credentials', resource: rs.identifier });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.access_token!;
  };
  const innerKid = async (token: string) => (await openSealed(token, rs.privateKey, a.url, rs.identifier)).jwsHeader.kid;
  const rsCreds = () => ({ id: rs.clientId, secret: rs.clientSecret });

  test('one ring in the database, none in either KEYS_DIR; both publish the same JWKS', async () => {
    for (const host of [a, b]) {
      const files = await fs.readdir(host.keysDir);
      assert.ok(!files.includes('signing-keys.json') && !files.includes('cookie-keys.json'), `${host.keysDir} holds no ring or cookie keys: ${files.join(', ')}`);
    }
    const rows = await sql<{ kid: string }>(stores.databaseUrl, 'SELECT kid FROM signing_keys ORDER BY kid');
    assert.equal(rows.length, 4);
    assert.deepEqual(await kidsOf(a.url), rows.map((r) => r.kid).sort());
    assert.deepEqual(await kidsOf(b.url), await kidsOf(a.url));
  });

  test('a rotation through one host is used by the other without restart; earlier tokens keep verifying; retirement propagates', async () => {
    const oldIdToken = (await httpAuthorizationCodeFlow({ ...web, issuer: b.url }, user, 'openid')).id_token;
    const oldSealed = await sealedVia(b.url);
    const oldEsKid = await innerKid(oldSealed);
    const listed = await a.admin<{ keys: { kid: string; alg: string; status: string }[] }>('GET', '/admin/keys');
    const nextEs = listed.body.keys.find((k) => k.alg === 'ES256' && k.status === 'next')!;
    const nextRs = listed.body.keys.find((k) => k.alg === 'RS256' && k.status === 'next')!;

    const rotated = await a.admin<{ activated: { kid: string }[] }>('POST', '/admin/keys/rotate', {});
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    assert.deepEqual(rotated.body.activated.map((k) => k.kid).sort(), [nextEs.kid, nextRs.kid].sort());

    // A signs with the new keys at once; B follows by the Redis announcement (its poll is 120 s).
    assert.equal(await innerKid(await sealedVia(a.url)), nextEs.kid);
    await eventually(async () => ((await innerKid(await sealedVia(b.url))) === nextEs.kid ? true : undefined));
    const newIdToken = (await httpAuthorizationCodeFlow({ ...web, issuer: b.url }, user, 'openid')).id_token;
    assert.equal(decodeProtectedHeader(newIdToken).kid, nextRs.kid);

    // Both JWKS list the new keys (and the next ones published for the following rotation), and
    // everything signed before the rotation still verifies, through JWKS and introspection.
    const kidsA = await kidsOf(a.url);
    assert.deepEqual(await kidsOf(b.url), kidsA);
    assert.equal(kidsA.length, 6);
    for (const url of [a.url, b.url]) {
      const jwks = createLocalJWKSet(await jwksOf(url));
      await jwtVerify(oldIdToken, jwks, { issuer: a.url, audience: web.clientId });
      await jwtVerify(newIdToken, jwks, { issuer: a.url, audience: web.clientId });
      await jwtVerify((await openSealed(oldSealed, rs.privateKey, a.url, rs.identifier)).inner, jwks, { issuer: a.url, audience: rs.identifier });
      assert.equal((await introspect(url, rsCreds(), oldSealed)).body.active, true, `${url} still introspects the token signed before`);
    }

    // Retired through B (forced: its tokens may still live), the old key leaves A's JWKS too.
    assert.equal((await b.admin('POST', `/admin/keys/${oldEsKid}/retire`, { force: true })).status, 200);
    await eventually(async () => (!(await kidsOf(a.url)).includes(oldEsKid!) ? true : undefined));
    assert.ok(!(await kidsOf(b.url)).includes(oldEsKid!));
    assert.equal((await sql(stores.databaseUrl, `SELECT kid FROM signing_keys WHERE kid = '${oldEsKid}'`)).length, 0);
  });

  test('a ring sealed under another master key stops start-up naming VEIL_MASTER_KEY; nothing is overwritten', async () => {
    const before = await sql(stores.databaseUrl, 'SELECT kid, status, private_jwk FROM signing_keys ORDER BY kid');
    const { env } = await hostEnv(stores, undefined, { VEIL_MASTER_KEY: generateMasterKey() });
    const { code, output } = await startOnce(env);
    assert.equal(code, 1, output);
    assert.match(output, /VEIL_MASTER_KEY/);
    assert.match(output, /KEYS_STORE=database/);
    assert.doesNotMatch(output, /at .*\.js:\d+/, 'no stack trace');
    assert.deepEqual(await sql(stores.databaseUrl, 'SELECT kid, status, private_jwk FROM signing_keys ORDER BY kid'), before);
  });
});

describe('veil keys migrate-to-database', () => {
  let stores: TestStores;
  let fileKeysDir: string;
  const hosts: Host[] = [];

  before(async () => {
    stores = await createTestStores();
    // A deployment's existing ring and cookie keys, in files, under the same master key.
    fileKeysDir = path.join(root, 'file-ring');
    const envelope = new Envelope(parseMasterKeys(MASTER_KEY, 'test'));
    await loadOrCreateKeyRing(new FileKeyStore(fileKeysDir), envelope);
    await loadOrCreateCookieKeys(fileKeysDir);
  });

  after(async () => {
    await Promise.all(hosts.map((h) => h.process.stop()));
    await stores?.cleanup();
  });

  test('without the key tables, start-up stops naming KEYS_STORE and writes no key files', async () => {
    const { env, keysDir } = await hostEnv(stores, undefined, { VEIL_MIGRATE_ON_START: 'false' });
    const { code, output } = await startOnce(env);
    assert.equal(code, 1, output);
    assert.match(output, /KEYS_STORE=database/);
    assert.match(output, /migrat/);
    assert.doesNotMatch(output, /at .*\.js:\d+/, 'no stack trace');
    assert.ok(!(await fs.readdir(keysDir)).includes('signing-keys.json'));
  });

  test('moves the file ring; idempotent; refuses another ring; then both hosts serve the same JWKS and poll it for changes', async () => {
    const env = { KEYS_DIR: fileKeysDir, DATABASE_URL: stores.databaseUrl, VEIL_MASTER_KEY: MASTER_KEY, KEYS_STORE: 'file' };
    assert.equal((await runCli(['migrate'], { env })).code, 0);
    const moved = await runCli(['keys', 'migrate-to-database'], { env });
    assert.equal(moved.code, 0, moved.stderr);
    assert.match(moved.stdout, /copied 4 signing keys/);
    assert.match(moved.stdout, /KEYS_STORE=database/);
    const again = await runCli(['keys', 'migrate-to-database', '--json'], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual((JSON.parse(again.stdout) as { signing_keys: string }).signing_keys, 'unchanged');
    // The files stay where they were.
    assert.ok((await fs.readdir(fileKeysDir)).includes('signing-keys.json'));

    // Another deployment's ring is refused, and the database keeps the one it holds.
    const otherDir = path.join(root, 'other-ring');
    await loadOrCreateKeyRing(new FileKeyStore(otherDir), new Envelope(parseMasterKeys(MASTER_KEY, 'test')));
    const rowsBefore = await sql(stores.databaseUrl, 'SELECT kid, status, private_jwk FROM signing_keys ORDER BY kid');
    const refused = await runCli(['keys', 'migrate-to-database'], { env: { ...env, KEYS_DIR: otherDir } });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr + refused.stdout, /different signing-key ring/);
    assert.deepEqual(await sql(stores.databaseUrl, 'SELECT kid, status, private_jwk FROM signing_keys ORDER BY kid'), rowsBefore);

    // Polling every second: a change nobody announces over Redis still arrives.
    const polling = { KEYS_RELOAD_SECONDS: '1' };
    const [c, d] = await Promise.all([startHost(stores, undefined, undefined, polling), startHost(stores, undefined, undefined, polling)]);
    hosts.push(c, d);
    const fileRing = JSON.parse(await fs.readFile(path.join(fileKeysDir, 'signing-keys.json'), 'utf8')) as { keys: { kid: string }[] };
    const expected = fileRing.keys.map((k) => k.kid).sort();
    assert.deepEqual(await kidsOf(c.url), expected);
    assert.deepEqual(await kidsOf(d.url), expected);

    // `veil keys rotate --local` works on the database directly (no announcement): both hosts
    // see the ring's version change and publish the new next key.
    const local = await runCli(['keys', 'rotate', '--local', '--alg', 'ES256', '--json'], { env: { ...env, KEYS_STORE: 'database' } });
    assert.equal(local.code, 0, local.stderr);
    const newNext = (JSON.parse(local.stdout) as { keys: { kid: string; alg: string; status: string }[] }).keys.find((k) => k.alg === 'ES256' && k.status === 'next')!.kid;
    assert.ok(!expected.includes(newNext));
    for (const host of [c, d]) await eventually(async () => ((await kidsOf(host.url)).includes(newNext) ? true : undefined));
    assert.deepEqual(fileRing, JSON.parse(await fs.readFile(path.join(fileKeysDir, 'signing-keys.json'), 'utf8')), 'the files are not touched');
  });
});
