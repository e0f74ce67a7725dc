/**
 * Issue 7, finding 4 (and 8's RSA-OAEP rule): a `jwks_uri` is fetched by Veil, so registering one
 * must not turn Veil into a proxy into its own network. Loopback, private, link-local and ULA
 * addresses are refused unless RESOURCE_JWKS_ALLOW_PRIVATE=true, redirects are not followed, the
 * body is capped at 64 KiB and the time at a few seconds, and the error quotes nothing fetched.
 * The same rules hold for a client's `jwks_uri` (at creation and when oidc-provider fetches it).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { compactDecrypt, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import pg from 'pg';
import { generateEncryptionKey } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

type ErrorBody = { error: string; error_description: string };
type Created = { client: { client_id: string }; client_secret?: string };

const GENERIC = 'the jwks_uri could not be fetched or is not a valid JWK Set';

/** A local HTTP server whose handler the test picks; counts the requests it saw. */
async function localServer(handler: http.RequestListener) {
  let hits = 0;
  const server = http.createServer((req, res) => {
    hits += 1;
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get hits() {
      return hits;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const jsonHandler =
  (body: unknown): http.RequestListener =>
  (_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(body));
  };

describe('jwks_uri fetching is not an SSRF', () => {
  let stores: TestStores;
  /** RESOURCE_JWKS_ALLOW_PRIVATE=false, the default (the test helper turns it on for other tests). */
  let strict: TestVeil;
  /** RESOURCE_JWKS_ALLOW_PRIVATE=true, as in development, so local test servers can be reached. */
  let lenient: TestVeil;
  let goodKey: Awaited<ReturnType<typeof generateEncryptionKey>>;
  let good: Awaited<ReturnType<typeof localServer>>;

  before(async () => {
    stores = await createTestStores();
    // One master key, so a client written by one Veil can be read by the other.
    const VEIL_MASTER_KEY = randomBytes(32).toString('base64url');
    strict = await startTestVeil(stores, { VEIL_MASTER_KEY, RESOURCE_JWKS_ALLOW_PRIVATE: 'false' });
    lenient = await startTestVeil(stores, { VEIL_MASTER_KEY, RESOURCE_JWKS_ALLOW_PRIVATE: 'true' });
    goodKey = await generateEncryptionKey('ec');
    good = await localServer(jsonHandler({ keys: [goodKey.publicJwk] }));
  });

  after(async () => {
    await good?.close();
    await strict?.stop();
    await lenient?.stop();
    await stores?.cleanup();
  });

  const resourceCount = async () => (await strict.admin<{ resources: unknown[] }>('GET', '/admin/resources')).body.resources.length;
  const clientCount = async () => (await strict.admin<{ clients: unknown[] }>('GET', '/admin/clients')).body.clients.length;
  let n = 0;
  const register = (veil: TestVeil, jwksUri: string, extra: Record<string, unknown> = {}) =>
    veil.admin<ErrorBody & { resource?: { alg: string } }>('POST', '/admin/resources', {
      identifier: `https://ssrf-${++n}.example/api`,
      name: 'SSRF probe',
      scopes: ['read'],
      jwks_uri: jwksUri,
      ...extra,
    });

  /** A 400 with the generic message, that quotes nothing fetched and stores nothing. */
  async function assertRefused(res: { status: number; body: ErrorBody }, countBefore: number, description: RegExp | string = GENERIC) {
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error, 'invalid_request');
    if (typeof description === 'string') assert.equal(res.body.error_description, description);
    else assert.match(res.body.error_description, description);
    assert.equal(await resourceCount(), countBefore, 'nothing stored');
  }

  test('the admin listener /metrics (loopback) is refused, and the answer echoes nothing of it', async () => {
    const before = await resourceCount();
    const res = await register(strict, `${strict.adminUrl}/metrics`);
    await assertRefused(res, before, /loopback|private|not allowed/i);
    assert.doesNotMatch(JSON.stringify(res.body), /HELP|TYPE|process_|veil_|Unexpected token/);
  });

  test('a hostname that resolves to loopback (localhost) is refused before any request is sent', async () => {
    const before = await resourceCount();
    const res = await register(strict, `http://localhost:${good.port}/jwks.json`);
    await assertRefused(res, before, /loopback|private|not allowed/i);
    assert.equal(good.hits, 0, 'no request reached the server');
  });

  test('private, link-local, ULA and IPv4-mapped literal addresses are refused at validation, without connecting', async () => {
    const before = await resourceCount();
    for (const uri of [
      'http://10.0.0.1/jwks.json',
      'http://169.254.169.254/latest/meta-data/',
      'http://[fd00::1]/jwks.json',
      'http://[::ffff:127.0.0.1]/jwks.json',
      'http://[::ffff:10.0.0.1]/jwks.json',
      'http://[fe80::1]/jwks.json',
      'http://0.0.0.0/jwks.json',
    ]) {
      const started = performance.now();
      const res = await register(strict, uri);
      // A connection attempt to an unroutable address would hang until the fetch timeout.
      assert.ok(performance.now() - started < 1000, `${uri} refused at once`);
      await assertRefused(res, before, /loopback|private|not allowed/i);
    }
  });

  test('link-local (cloud metadata) stays refused even with RESOURCE_JWKS_ALLOW_PRIVATE=true', async () => {
    const before = await resourceCount();
    const started = performance.now();
    const res = await register(lenient, 'http://169.254.169.254/latest/meta-data/');
    assert.ok(performance.now() - started < 1000);
    await assertRefused(res, before, /not allowed/i);
  });

  test('with RESOURCE_JWKS_ALLOW_PRIVATE=true a local JWK Set works', async () => {
    const res = await register(lenient, `${good.url}/jwks.json`);
    assert.equal(res.status, 201, JSON.stringify(res.body));
  });

  test('a redirect is not followed', async () => {
    const target = await localServer(jsonHandler({ keys: [goodKey.publicJwk] }));
    const redirecting = await localServer((_req, res) => res.writeHead(302, { location: `${target.url}/jwks.json` }).end());
    try {
      const before = await resourceCount();
      await assertRefused(await register(lenient, `${redirecting.url}/jwks.json`), before);
      assert.equal(redirecting.hits, 1);
      assert.equal(target.hits, 0, 'the redirect target was never asked');
    } finally {
      await redirecting.close();
      await target.close();
    }
  });

  test('a body over 64 KiB is refused, with or without a Content-Length', async () => {
    const padded = { keys: [goodKey.publicJwk], padding: 'x'.repeat(70 * 1024) };
    const withLength = await localServer(jsonHandler(padded));
    const chunked = await localServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.write(JSON.stringify(padded).slice(0, 40 * 1024));
      res.end(JSON.stringify(padded).slice(40 * 1024));
    });
    try {
      const before = await resourceCount();
      await assertRefused(await register(lenient, `${withLength.url}/jwks.json`), before);
      await assertRefused(await register(lenient, `${chunked.url}/jwks.json`), before);
    } finally {
      await withLength.close();
      await chunked.close();
    }
  });

  test('a server that does not answer is given up on within a few seconds', async () => {
    const slow = await localServer(() => {
      /* never answers */
    });
    try {
      const before = await resourceCount();
      const started = performance.now();
      const res = await register(lenient, `${slow.url}/jwks.json`);
      const took = performance.now() - started;
      await assertRefused(res, before);
      assert.ok(took < 6000, `gave up after ${Math.round(took)} ms`);
    } finally {
      await slow.close();
    }
  });

  test('a body that is not a JWK Set is refused without being quoted', async () => {
    const prom = await localServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('# HELP secret_marker internal\nsecret_marker 1\n'));
    const notASet = await localServer(jsonHandler({ hello: 'secret_marker' }));
    try {
      const before = await resourceCount();
      for (const server of [prom, notASet]) {
        const res = await register(lenient, `${server.url}/jwks.json`);
        await assertRefused(res, before);
        assert.doesNotMatch(JSON.stringify(res.body), /secret_marker|HELP|Unexpected token/);
      }
    } finally {
      await prom.close();
      await notASet.close();
    }
  });

  test('https is required in production', async () => {
    const { loadConfig } = await import('../../src/config.js');
    const { checkUrlPolicy } = await import('../../src/http/safe-fetch.js');
    assert.equal(loadConfig({ RESOURCE_JWKS_ALLOW_PRIVATE: 'true' }).resourceJwks.allowPrivate, true);
    assert.equal(loadConfig({}).resourceJwks.allowPrivate, false);
    assert.throws(() => checkUrlPolicy('http://api.example.com/jwks.json', { requireHttps: true, allowPrivate: false }), /https/);
    assert.doesNotThrow(() => checkUrlPolicy('https://api.example.com/jwks.json', { requireHttps: true, allowPrivate: false }));
  });

  describe('RSA-OAEP (SHA-1) is refused for new resource servers', () => {
    const rsaJwk = async (alg?: string) => {
      const { publicKey } = await generateKeyPair('RSA-OAEP-256', { extractable: true });
      return { ...(await exportJWK(publicKey)), kid: `rsa-${++n}`, use: 'enc', ...(alg ? { alg } : {}) } as JWK;
    };
    const registerJwk = async (jwk: JWK, alg?: string) =>
      strict.admin<ErrorBody & { resource?: { alg: string } }>('POST', '/admin/resources', {
        identifier: `https://oaep-${++n}.example/api`,
        name: 'OAEP',
        scopes: ['read'],
        jwk,
        ...(alg ? { alg } : {}),
      });

    test('an explicit alg RSA-OAEP is refused; RSA-OAEP-256 is accepted', async () => {
      const before = await resourceCount();
      await assertRefused(await registerJwk(await rsaJwk(), 'RSA-OAEP'), before, /RSA-OAEP.*SHA-1/);
      const ok = await registerJwk(await rsaJwk(), 'RSA-OAEP-256');
      assert.equal(ok.status, 201, JSON.stringify(ok.body));
      assert.equal(ok.body.resource!.alg, 'RSA-OAEP-256');
    });

    test('a JWK whose own alg is RSA-OAEP is refused, inline or from a jwks_uri', async () => {
      const before = await resourceCount();
      await assertRefused(await registerJwk(await rsaJwk('RSA-OAEP')), before, /RSA-OAEP.*SHA-1/);
      const server = await localServer(jsonHandler({ keys: [await rsaJwk('RSA-OAEP')] }));
      try {
        await assertRefused(await register(lenient, `${server.url}/jwks.json`), before, /RSA-OAEP.*SHA-1/);
      } finally {
        await server.close();
      }
    });

    test('a resource server registered with RSA-OAEP before the rule keeps getting tokens sealed with it', async () => {
      const { privateKey, publicKey } = await generateKeyPair('RSA-OAEP', { extractable: true });
      const jwk = { ...(await exportJWK(publicKey)), kid: 'legacy-oaep', use: 'enc', alg: 'RSA-OAEP' };
      const identifier = 'https://legacy-oaep.example/api';
      const db = new pg.Client({ connectionString: stores.databaseUrl });
      await db.connect();
      try {
        await db.query(
          `INSERT INTO resource_servers (identifier, name, scopes, access_token_ttl, encryption_jwk, encryption_alg, encryption_enc, updated_at)
           VALUES ($1, 'Legacy', ARRAY['read'], 300, $2, 'RSA-OAEP', 'A256GCM', now())`,
          [identifier, JSON.stringify(jwk)],
        );
      } finally {
        await db.end();
      }
      const c = await strict.admin<Created>('POST', '/admin/clients', { client_name: 'legacy', grant_types: ['client_credentials'], resources: [identifier] });
      assert.equal(c.status, 201, JSON.stringify(c.body));
      const res = await fetch(`${strict.issuer}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${c.body.client.client_id}:${c.body.client_secret}`).toString('base64')}`,
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', resource: identifier }).toString(),
      });
      const body = (await res.json()) as { access_token?: string };
      assert.equal(res.status, 200, JSON.stringify(body));
      const { protectedHeader } = await compactDecrypt(body.access_token!, privateKey);
      assert.equal(protectedHeader.alg, 'RSA-OAEP');
    });
  });

  describe('client jwks_uri (private_key_jwt)', () => {
    let signingKey: CryptoKey;
    let publicJwk: JWK;
    let jwks: Awaited<ReturnType<typeof localServer>>;

    before(async () => {
      const pair = await generateKeyPair('ES256', { extractable: true });
      signingKey = pair.privateKey;
      publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'c1', alg: 'ES256', use: 'sig' };
      jwks = await localServer(jsonHandler({ keys: [publicJwk] }));
    });
    after(() => jwks?.close());

    const createClient = (veil: TestVeil, jwksUri: string) =>
      veil.admin<Created & ErrorBody>('POST', '/admin/clients', {
        client_name: 'pkjwt-uri',
        grant_types: ['client_credentials'],
        token_endpoint_auth_method: 'private_key_jwt',
        jwks_uri: jwksUri,
      });

    const assertion = (veil: TestVeil, clientId: string) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: 'c1' })
        .setIssuer(clientId)
        .setSubject(clientId)
        .setAudience(veil.issuer)
        .setJti(randomBytes(16).toString('hex'))
        .setIssuedAt()
        .setExpirationTime('1m')
        .sign(signingKey);

    const tokenRequest = async (veil: TestVeil, clientId: string) => {
      const res = await fetch(`${veil.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: clientId,
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: await assertion(veil, clientId),
        }).toString(),
      });
      return { status: res.status, body: (await res.json()) as Record<string, string> };
    };

    test('a loopback or private client jwks_uri is refused at creation', async () => {
      const before = await clientCount();
      for (const uri of [`${jwks.url}/jwks.json`, `http://localhost:${jwks.port}/jwks.json`, 'http://10.0.0.1/jwks.json', 'http://[fd00::1]/jwks.json']) {
        const res = await createClient(strict, uri);
        assert.equal(res.status, 400, `${uri}: ${JSON.stringify(res.body)}`);
        assert.match(res.body.error_description, /loopback|private|not allowed/i);
      }
      assert.equal(await clientCount(), before, 'no client stored');
      assert.equal(jwks.hits, 0);
    });

    test('with RESOURCE_JWKS_ALLOW_PRIVATE=true a local client jwks_uri works at /token', async () => {
      const c = await createClient(lenient, `${jwks.url}/jwks.json`);
      assert.equal(c.status, 201, JSON.stringify(c.body));
      const res = await tokenRequest(lenient, c.body.client.client_id);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.ok(res.body.access_token);
    });

    test('when oidc-provider fetches a client jwks_uri the same rules hold', async () => {
      // Registered where private addresses are allowed, used where they are not: no fetch, no token.
      const c = await createClient(lenient, `${jwks.url}/jwks.json`);
      assert.equal(c.status, 201, JSON.stringify(c.body));
      const hitsBefore = jwks.hits;
      const res = await tokenRequest(strict, c.body.client.client_id);
      assert.equal(res.status, 401, JSON.stringify(res.body));
      assert.equal(res.body.error, 'invalid_client');
      assert.equal(res.body.access_token, undefined);
      assert.equal(jwks.hits, hitsBefore, 'the strict Veil sent nothing to the loopback jwks_uri');

      // An oversized client JWK Set is refused too, even where private addresses are allowed.
      const big = await localServer(jsonHandler({ keys: [publicJwk], padding: 'x'.repeat(70 * 1024) }));
      try {
        const d = await createClient(lenient, `${big.url}/jwks.json`);
        assert.equal(d.status, 201, JSON.stringify(d.body));
        const refused = await tokenRequest(lenient, d.body.client.client_id);
        assert.equal(refused.status, 401, JSON.stringify(refused.body));
        assert.equal(refused.body.error, 'invalid_client');
        assert.doesNotMatch(JSON.stringify(refused.body), /xxxx/);
      } finally {
        await big.close();
      }
    });
  });
});
