/**
 * loadConfig(env): the one place every default and every validation rule lives.
 * Each case passes an explicit environment, never process.env.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, derivedLifetimes, loadConfig, MAX_RESOURCE_ACCESS_TOKEN_TTL, type VeilConfig } from '../../src/config.js';

const COOKIE_KEY_A = 'a'.repeat(32);
const COOKIE_KEY_B = 'b'.repeat(40);

/** A production environment that satisfies every production rule. */
const PRODUCTION: Record<string, string> = {
  NODE_ENV: 'production',
  ISSUER: 'https://id.example.com',
  DATABASE_URL: 'postgresql://veil@db.internal:5432/veil',
  REDIS_URL: 'rediss://cache.internal:6380',
  COOKIE_KEYS: `${COOKIE_KEY_A},${COOKIE_KEY_B}`,
  VEIL_MASTER_KEY_FILE: '/run/secrets/veil-master-key',
  // TLS ends at a proxy in front (the other choice, TLS_CERT/TLS_KEY, is in run-mode-config.test.ts).
  TRUST_PROXY: 'true',
};

/** Asserts loadConfig(env) throws a ConfigError and returns its message. */
function configError(env: Record<string, string>): string {
  let caught: unknown;
  try {
    loadConfig(env);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError for ${JSON.stringify(env)}, got ${String(caught)}`);
  assert.equal(caught.name, 'ConfigError');
  return caught.message;
}

describe('loadConfig defaults', () => {
  const config: VeilConfig = loadConfig({});

  test('listens on port 3000 with issuer http://localhost:3000 in development', () => {
    assert.equal(config.env, 'development');
    assert.equal(config.production, false);
    assert.equal(config.http.port, 3000);
    assert.equal(config.http.host, '0.0.0.0');
    assert.equal(config.issuer, 'http://localhost:3000');
  });

  test('uses embedded PGlite and the in-process store when DATABASE_URL and REDIS_URL are unset', () => {
    assert.deepEqual(config.database, { kind: 'pglite', dataDir: path.join(path.resolve('.veil-data'), 'pglite') });
    assert.equal(config.redis, undefined);
  });

  test('seeds demo data by default in development with embedded stores', () => {
    assert.equal(config.seed, true);
    assert.equal(config.migrateOnStart, true);
  });

  test('has OWASP-minimum argon2 parameters, a loopback admin listener and no cookie keys', () => {
    assert.deepEqual(config.argon2, { memoryCost: 19456, timeCost: 2, parallelism: 1 });
    assert.deepEqual(config.admin, { host: '127.0.0.1', port: 3001, token: undefined, allowedHosts: [], tls: undefined });
    assert.equal(config.cookieKeys, undefined);
    assert.equal(config.brand.color, '#4f46e5');
  });

  test('empty DATABASE_URL / REDIS_URL count as unset', () => {
    const c = loadConfig({ DATABASE_URL: '', REDIS_URL: '  ' });
    assert.equal(c.database.kind, 'pglite');
    assert.equal(c.redis, undefined);
  });
});

describe('loadConfig with explicit values', () => {
  test('uses PostgreSQL and Redis when their URLs are given, and then never seeds', () => {
    const c = loadConfig({
      DATABASE_URL: 'postgres://u@127.0.0.1:5432/veil',
      REDIS_URL: 'redis://127.0.0.1:6379',
      REDIS_KEY_PREFIX: 'custom:',
    });
    assert.deepEqual(c.database, { kind: 'postgres', url: 'postgres://u@127.0.0.1:5432/veil' });
    assert.deepEqual(c.redis, { kind: 'url', url: 'redis://127.0.0.1:6379', keyPrefix: 'custom:' });
    assert.equal(c.seed, false);
  });

  test('an unset ISSUER follows PORT', () => {
    assert.equal(loadConfig({ PORT: '8080' }).issuer, 'http://localhost:8080');
  });

  test('parses PORT as a number and strips trailing slashes from ISSUER', () => {
    const c = loadConfig({ PORT: '8080', ISSUER: 'https://id.example.com/' });
    assert.equal(c.http.port, 8080);
    assert.equal(c.issuer, 'https://id.example.com');
  });

  test('splits COOKIE_KEYS on commas', () => {
    const c = loadConfig({ COOKIE_KEYS: ` ${COOKIE_KEY_A} , ${COOKIE_KEY_B} ` });
    assert.deepEqual(c.cookieKeys, [COOKIE_KEY_A, COOKIE_KEY_B]);
  });

  test('VEIL_SEED=off turns seeding off', () => {
    assert.equal(loadConfig({ VEIL_SEED: 'off' }).seed, false);
  });
});

describe('loadConfig rejects a wrong value with a ConfigError naming the variable', () => {
  const cases: Array<[string, Record<string, string>]> = [
    ['PORT', { PORT: 'abc' }],
    ['PORT', { PORT: '70000' }],
    ['ISSUER', { ISSUER: 'ftp://x' }],
    ['ISSUER', { ISSUER: 'not a url' }],
    ['DATABASE_URL', { DATABASE_URL: 'mysql://x' }],
    ['REDIS_URL', { REDIS_URL: 'memcached://x' }],
    ['BRAND_COLOR', { BRAND_COLOR: 'red' }],
    ['ARGON2_MEMORY_KIB', { ARGON2_MEMORY_KIB: '1024' }],
    ['ARGON2_ITERATIONS', { ARGON2_ITERATIONS: '1' }],
    ['COOKIE_KEYS', { COOKIE_KEYS: `${COOKIE_KEY_A},short` }],
    ['ADMIN_TOKEN', { ADMIN_TOKEN: 'too-short' }],
    ['NODE_ENV', { NODE_ENV: 'staging' }],
    ['VEIL_SEED', { VEIL_SEED: 'maybe' }],
  ];
  for (const [variable, env] of cases) {
    test(`${variable}=${Object.values(env)[0]}`, () => {
      assert.match(configError(env), new RegExp(`\\b${variable}\\b`));
    });
  }

  test('a correct variable next to a wrong one is not blamed', () => {
    const message = configError({ PORT: '8080', BRAND_COLOR: 'red' });
    assert.match(message, /BRAND_COLOR/);
    assert.doesNotMatch(message, /PORT/);
  });

  test('every offending variable is named at once', () => {
    const message = configError({ PORT: 'abc', BRAND_COLOR: 'red', DATABASE_URL: 'mysql://x' });
    for (const v of ['PORT', 'BRAND_COLOR', 'DATABASE_URL']) assert.match(message, new RegExp(v));
  });
});

describe('loadConfig in production (NODE_ENV=production)', () => {
  function without(...names: string[]): Record<string, string> {
    const env = { ...PRODUCTION };
    for (const n of names) delete env[n];
    return env;
  }

  test('refuses the embedded stores, naming DATABASE_URL and REDIS_URL', () => {
    const message = configError(without('DATABASE_URL', 'REDIS_URL'));
    assert.match(message, /DATABASE_URL/);
    assert.match(message, /REDIS_URL/);
  });

  test('refuses embedded PGlite alone', () => {
    const message = configError(without('DATABASE_URL'));
    assert.match(message, /DATABASE_URL/);
    assert.doesNotMatch(message, /REDIS_URL/);
  });

  test('refuses the in-process store alone', () => {
    const message = configError(without('REDIS_URL'));
    assert.match(message, /REDIS_URL/);
    assert.doesNotMatch(message, /DATABASE_URL/);
  });

  test('refuses an http:// issuer', () => {
    assert.match(configError({ ...PRODUCTION, ISSUER: 'http://id.example.com' }), /ISSUER/);
  });

  test('refuses to start without COOKIE_KEYS', () => {
    assert.match(configError(without('COOKIE_KEYS')), /COOKIE_KEYS/);
  });

  test('refuses to start without a master key, and with two sources of one', () => {
    assert.match(configError(without('VEIL_MASTER_KEY_FILE')), /VEIL_MASTER_KEY or VEIL_MASTER_KEY_FILE: required/);
    assert.match(configError({ ...PRODUCTION, VEIL_MASTER_KEY: 'x' }), /set one, not both/);
  });

  test('refuses VEIL_SEED=on', () => {
    assert.match(configError({ ...PRODUCTION, VEIL_SEED: 'on' }), /VEIL_SEED/);
  });

  test('passes with everything set, and never seeds', () => {
    const c = loadConfig(PRODUCTION);
    assert.equal(c.production, true);
    assert.equal(c.env, 'production');
    assert.equal(c.issuer, 'https://id.example.com');
    assert.deepEqual(c.database, { kind: 'postgres', url: PRODUCTION.DATABASE_URL });
    assert.deepEqual(c.redis, { kind: 'url', url: PRODUCTION.REDIS_URL, keyPrefix: 'veil:' });
    assert.deepEqual(c.cookieKeys, [COOKIE_KEY_A, COOKIE_KEY_B]);
    assert.equal(c.seed, false);
  });

  test('passes with VEIL_SEED=off, and does not seed', () => {
    assert.equal(loadConfig({ ...PRODUCTION, VEIL_SEED: 'off' }).seed, false);
  });
});

describe('loadConfig admin listener', () => {
  const TOKEN = 't'.repeat(32);

  test('a non-loopback ADMIN_HOST without ADMIN_TOKEN is refused', () => {
    const message = configError({ ADMIN_HOST: '0.0.0.0' });
    assert.match(message, /ADMIN_TOKEN/);
    assert.match(message, /0\.0\.0\.0/);
  });

  test('a host name that merely starts with "127." is not loopback', () => {
    assert.match(configError({ ADMIN_HOST: '127.example.com' }), /ADMIN_TOKEN/);
  });

  test('a non-loopback ADMIN_HOST needs TLS as well as the token', () => {
    const message = configError({ ADMIN_HOST: '0.0.0.0', ADMIN_TOKEN: TOKEN });
    assert.match(message, /ADMIN_TLS_CERT\/ADMIN_TLS_KEY: required when ADMIN_HOST \(0\.0\.0\.0\)/);
    assert.doesNotMatch(message, new RegExp(TOKEN));
    assert.match(configError({ ADMIN_HOST: '0.0.0.0', ADMIN_TOKEN: TOKEN, ADMIN_TLS_CERT: '/nonexistent/cert.pem' }), /ADMIN_TLS_KEY: required with ADMIN_TLS_CERT/);
    assert.match(
      configError({ ADMIN_HOST: '0.0.0.0', ADMIN_TOKEN: TOKEN, ADMIN_TLS_CERT: '/nonexistent/cert.pem', ADMIN_TLS_KEY: '/nonexistent/key.pem' }),
      /ADMIN_TLS_CERT: cannot read/,
    );
  });

  test('ADMIN_TOKEN_FILE is read; with ADMIN_TOKEN it is refused; its content is never quoted', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veil-config-'));
    try {
      const file = path.join(dir, 'token');
      fs.writeFileSync(file, `${TOKEN}\n`);
      assert.equal(loadConfig({ ADMIN_TOKEN_FILE: file }).admin.token, TOKEN);
      assert.match(configError({ ADMIN_TOKEN_FILE: file, ADMIN_TOKEN: TOKEN }), /ADMIN_TOKEN and ADMIN_TOKEN_FILE: set one/);
      fs.writeFileSync(file, 'short-secret\n');
      const message = configError({ ADMIN_TOKEN_FILE: file });
      assert.match(message, /ADMIN_TOKEN_FILE: .* at least 16/);
      assert.doesNotMatch(message, /short-secret/);
      assert.match(configError({ ADMIN_TOKEN_FILE: path.join(dir, 'missing') }), /ADMIN_TOKEN_FILE: cannot read .*ENOENT/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('ADMIN_ALLOWED_HOSTS: host or host:port entries, lower-cased', () => {
    assert.deepEqual(loadConfig({ ADMIN_ALLOWED_HOSTS: 'Admin.Internal, veil.example:8443,[::1]:9000' }).admin.allowedHosts, ['admin.internal', 'veil.example:8443', '[::1]:9000']);
    assert.deepEqual(loadConfig({}).admin.allowedHosts, []);
    assert.match(configError({ ADMIN_ALLOWED_HOSTS: 'http://admin.internal' }), /ADMIN_ALLOWED_HOSTS/);
  });

  test('loopback ADMIN_HOSTs need no token', () => {
    for (const host of ['127.0.0.1', '127.0.0.2', '::1', 'localhost']) {
      assert.equal(loadConfig({ ADMIN_HOST: host }).admin.token, undefined, host);
    }
  });

  test('derived lifetimes follow the configured ones', () => {
    const defaults = derivedLifetimes(loadConfig({}).ttl);
    assert.equal(defaults.revokedGrant, 14 * 24 * 3600 + 60, 'the refresh token lifetime plus clock slack');
    assert.equal(defaults.signingKeyGrace, MAX_RESOURCE_ACCESS_TOKEN_TTL, "an API's longest access token outlives the default ID token");
    const long = derivedLifetimes(loadConfig({ ID_TOKEN_TTL: '200000', REFRESH_TOKEN_TTL: '60', ACCESS_TOKEN_TTL: '600', AUTHORIZATION_CODE_TTL: '60' }).ttl);
    assert.equal(long.signingKeyGrace, 200000);
    assert.equal(long.revokedGrant, 660, 'the access token outlives a short refresh token');
  });
});
