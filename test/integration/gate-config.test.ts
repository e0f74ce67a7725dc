/**
 * The gate's configuration file: every mistake is reported with the file, the JSON path inside it
 * and the problem (or the environment variable that set it); paths resolve against the file's
 * directory; secrets come from files or GATE_CLIENT_SECRET; key files are checked at start.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair } from 'jose';
import { loadGateConfig } from '../../src/gate/config.js';
import { startGate } from '../../src/gate/server.js';
import { createLogger } from '../../src/observability/logger.js';
import { gateDir } from '../helpers/gate.js';

const ISSUER = 'https://id.example.com';
const API = 'https://api.example.com';

describe('gate configuration', () => {
  let dir: string;
  const base = () => ({
    issuer: ISSUER,
    listen: { host: '127.0.0.1', port: 0 },
    audiences: [{ identifier: API, decryptionKeys: ['keys/api.jwk.json'] }],
    routes: [{ host: 'api.example.com', path: '/orders', methods: ['GET'], audience: API, scopes: { all: ['orders:read'] }, headers: { sub: 'X-User', scope: 'X-Scope' } }],
  });
  const write = async (config: unknown, name = 'gate.json') => {
    const file = path.join(dir, name);
    await fs.writeFile(file, typeof config === 'string' ? config : JSON.stringify(config));
    return file;
  };
  const refused = async (config: unknown, message: string | RegExp, env: NodeJS.ProcessEnv = {}) => {
    const file = await write(config);
    await assert.rejects(loadGateConfig(file, env), (err: Error) => {
      if (typeof message === 'string') assert.equal(err.message, message);
      else assert.match(err.message, message);
      return true;
    });
  };

  before(async () => {
    dir = await gateDir();
    await fs.mkdir(path.join(dir, 'keys'));
    const { privateKey } = await generateKeyPair('ECDH-ES+A256KW', { extractable: true });
    await fs.writeFile(path.join(dir, 'keys/api.jwk.json'), JSON.stringify({ ...(await exportJWK(privateKey)), kid: 'api-key-1', use: 'enc' }));
    await fs.writeFile(path.join(dir, 'keys/gate-client.secret'), 'secret-from-the-file\n');
    await fs.writeFile(path.join(dir, 'keys/introspection.secret'), 'introspection-secret\n');
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test("the issue's example shape loads, with paths resolved against the file's directory and defaults filled", async () => {
    const config = await loadGateConfig(
      await write({
        ...base(),
        listen: { host: '127.0.0.1', port: 3400 },
        client: { id: 'gate-client-id', secretFile: 'keys/gate-client.secret' },
        introspect: { enabled: false, cacheSeconds: 5 },
        routes: [
          { ...base().routes[0], headers: { sub: 'X-User', scope: 'X-Scope', client_id: 'X-Client' }, exchange: { resource: 'https://orders.internal', scope: 'orders:read' } },
        ],
      }),
    );
    assert.deepEqual(config.audiences[0]!.decryptionKeys, [path.join(dir, 'keys/api.jwk.json')]);
    assert.deepEqual(config.client, { id: 'gate-client-id', secret: 'secret-from-the-file' });
    assert.equal(config.routes[0]!.name, 'api.example.com/orders');
    assert.equal(config.routes[0]!.keepAuthorization, false);
    assert.equal(config.routes[0]!.public, false);
    assert.deepEqual(config.cache, { maxEntries: 10_000, maxAgeSeconds: 60 });
    assert.deepEqual(config.listen, { host: '127.0.0.1', port: 3400 });
  });

  test('schema errors name the file, the JSON path and the problem', async () => {
    const route = (over: Record<string, unknown>) => ({ ...base(), routes: [{ ...base().routes[0], ...over }] });
    await refused(route({ scopes: { all: 'orders:read' } }), 'gate.json: routes[0].scopes.all: expected an array of strings');
    await refused(route({ scopes: { all: ['orders read'] } }), 'gate.json: routes[0].scopes.all: scopes must be non-empty and without spaces, quotes or backslashes');
    await refused(route({ methods: ['FETCH'] }), 'gate.json: routes[0].methods[0]: expected one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS');
    await refused(route({ headers: { sub: 'X User' } }), 'gate.json: routes[0].headers.sub: expected a header name');
    await refused(route({ headers: { sub: 'Authorization' } }), 'gate.json: routes[0].headers.sub: this header name is reserved');
    await refused(route({ headers: { sub: 'X-User', client_id: 'x-user' } }), 'gate.json: routes[0].headers.client_id: header x-user is already used for claim sub');
    await refused(route({ path: 'orders' }), 'gate.json: routes[0].path: expected a path starting with /');
    await refused(route({ pattern: '/orders/(' }), 'gate.json: routes[0].pattern: expected a valid regular expression');
    await refused(route({ pattern: '/orders/[0-9]+' }), 'gate.json: routes[0].pattern: give either path or pattern, not both');
    await refused(route({ audience: 'https://elsewhere.example' }), 'gate.json: routes[0].audience: https://elsewhere.example is not one of audiences[].identifier');
    await refused(route({ audience: undefined }), 'gate.json: routes[0].audience: required (one of audiences[].identifier), unless the route is public');
    await refused(route({ public: true }), /^gate\.json: routes\[0\]\.audience: a public route takes no token, so it cannot have one$/m);
    await refused(
      route({ exchange: { resource: 'https://orders.internal' } }),
      "gate.json: client: required by routes[0].exchange (the gate's client id and secretFile, or GATE_CLIENT_SECRET)",
    );
    await refused(
      route({ exchange: { resource: 'https://orders.internal' }, keepAuthorization: true }),
      /routes\[0\]\.keepAuthorization: an exchange route passes the exchanged token, not the incoming one/,
    );
    await refused(route({ keepAuthorisation: true }), 'gate.json: routes[0]: Unrecognized key: "keepAuthorisation"');
    await refused({ ...base(), issuer: 'id.example.com' }, 'gate.json: issuer: expected the issuer (an http or https URL)');
    await refused({ ...base(), issuer: undefined }, 'gate.json: issuer: expected the issuer (an http or https URL)');
    await refused({ ...base(), audiences: [] }, 'gate.json: audiences: expected at least one audience');
    await refused({ ...base(), routes: {} }, 'gate.json: routes: expected an array of routes');
    await refused({ ...base(), listen: { port: 70000 } }, /^gate\.json: listen\.port: /);
    await refused(
      { ...base(), introspect: { enabled: true } },
      "gate.json: audiences[0].introspection: required when introspect.enabled is true (the API introspection clientId and secretFile), unless the gate's client (with this API in its exchange_from) is configured",
    );
    await refused({ ...base(), client: { id: 'gate', secret: 'inline' } }, 'gate.json: client: Unrecognized key: "secret"');
  });

  test('the file itself: missing, not JSON, not an object; secret files missing or empty', async () => {
    await assert.rejects(loadGateConfig(path.join(dir, 'absent.json')), /absent\.json: cannot read the configuration file \(ENOENT\)/);
    await refused('{ "issuer": ', /^gate\.json: not valid JSON \(/);
    await refused([], 'gate.json: (top level): Invalid input: expected object, received array');
    await refused(
      { ...base(), introspect: { enabled: true, cacheSeconds: 0 }, audiences: [{ ...base().audiences[0], introspection: { clientId: 'rs_x', secretFile: 'keys/none.secret' } }] },
      `gate.json: audiences[0].introspection.secretFile: cannot read ${path.join(dir, 'keys/none.secret')} (ENOENT)`,
    );
    await fs.writeFile(path.join(dir, 'keys/empty.secret'), '\n');
    await refused(
      { ...base(), client: { id: 'gate', secretFile: 'keys/empty.secret' }, routes: [{ ...base().routes[0], exchange: { resource: 'https://internal' } }] },
      `gate.json: client.secretFile: ${path.join(dir, 'keys/empty.secret')} is empty`,
    );
  });

  test('the same keys through the environment; GATE_CLIENT_SECRET instead of a secret file; env errors name the variable', async () => {
    const file = await write({ ...base(), client: { id: 'gate' }, routes: [{ ...base().routes[0], exchange: { resource: 'https://internal' } }] });
    const config = await loadGateConfig(file, {
      GATE_CLIENT_SECRET: 'secret-from-env',
      GATE_LISTEN_PORT: '4321',
      GATE_LISTEN_HOST: '0.0.0.0',
      GATE_ISSUER: 'https://other-id.example.com',
      GATE_INTROSPECT_ENABLED: 'false',
      GATE_TOKEN_ENDPOINT: 'https://other-id.example.com/token',
    });
    assert.deepEqual(config.client, { id: 'gate', secret: 'secret-from-env' });
    assert.deepEqual(config.listen, { host: '0.0.0.0', port: 4321 });
    assert.equal(config.issuer, 'https://other-id.example.com');
    assert.equal(config.tokenEndpoint, 'https://other-id.example.com/token');
    await refused(base(), 'GATE_LISTEN_PORT (listen.port): expected a port number', { GATE_LISTEN_PORT: 'http' });
    await refused(base(), 'GATE_INTROSPECT_ENABLED (introspect.enabled): expected true or false', { GATE_INTROSPECT_ENABLED: 'maybe' });
    await refused(base(), 'GATE_ISSUER (issuer): expected the issuer (an http or https URL)', { GATE_ISSUER: 'not a url' });
  });

  test('key files are read at start: missing, public-only or without kid name the audience and the file', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ECDH-ES+A256KW', { extractable: true });
    await fs.writeFile(path.join(dir, 'keys/public.jwk.json'), JSON.stringify({ ...(await exportJWK(publicKey)), kid: 'pub' }));
    await fs.writeFile(path.join(dir, 'keys/nokid.jwk.json'), JSON.stringify(await exportJWK(privateKey)));
    await fs.writeFile(path.join(dir, 'keys/set.jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(privateKey)), kid: 'in-a-set' }] }));
    const start = async (key: string) =>
      startGate(await loadGateConfig(await write({ ...base(), audiences: [{ identifier: API, decryptionKeys: [key] }] })), { logger: createLogger('silent') });
    await assert.rejects(start('keys/absent.jwk.json'), { message: `audiences[0].decryptionKeys[0]: cannot read ${path.join(dir, 'keys/absent.jwk.json')} (ENOENT)` });
    await assert.rejects(start('keys/public.jwk.json'), {
      message: `audiences[0].decryptionKeys[0]: a key in ${path.join(dir, 'keys/public.jwk.json')} is a public key; the gate needs the private key to decrypt`,
    });
    await assert.rejects(start('keys/nokid.jwk.json'), {
      message: `audiences[0].decryptionKeys[0]: a key in ${path.join(dir, 'keys/nokid.jwk.json')} has no kid (Veil names the key in the token's kid)`,
    });
    // A JWK Set file works as well as a single JWK.
    const gate = await start('keys/set.jwks.json');
    assert.equal((await fetch(`${gate.url}/healthz`)).status, 200);
    await gate.close();
  });
});
