/**
 * The run-mode settings in loadConfig: WEB_CONCURRENCY, TLS_CERT/TLS_KEY, TRUST_PROXY,
 * SHUTDOWN_TIMEOUT_SECONDS, and the production rule tying an https ISSUER to one of them.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';

const STORES = { DATABASE_URL: 'postgresql://veil@db.internal:5432/veil', REDIS_URL: 'redis://cache.internal:6379' };
const PRODUCTION = { ...STORES, NODE_ENV: 'production', ISSUER: 'https://id.example.com', COOKIE_KEYS: 'k'.repeat(32), VEIL_MASTER_KEY_FILE: '/run/secrets/veil-master-key' };

function configError(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe('run-mode defaults', () => {
  test('one process, no TLS, no proxy trust, 10 s drain', () => {
    const c = loadConfig({});
    assert.equal(c.workers, 1);
    assert.equal(c.tls, undefined);
    assert.equal(c.trustProxy, false);
    assert.equal(c.shutdownTimeoutSeconds, 10);
  });
});

describe('WEB_CONCURRENCY', () => {
  test('a number, or auto for one worker per core', () => {
    assert.equal(loadConfig({ ...STORES, WEB_CONCURRENCY: '2' }).workers, 2);
    assert.equal(loadConfig({ ...STORES, WEB_CONCURRENCY: 'auto' }).workers, os.availableParallelism());
    assert.equal(loadConfig({ WEB_CONCURRENCY: '' }).workers, 1);
  });

  test('anything else is refused', () => {
    for (const bad of ['0', '-1', '1.5', 'two', 'AUTO ']) assert.match(configError({ ...STORES, WEB_CONCURRENCY: bad }), /WEB_CONCURRENCY/, bad);
  });

  test('more than one worker on embedded stores is refused, naming what is missing', () => {
    const both = configError({ WEB_CONCURRENCY: '2' });
    assert.match(both, /WEB_CONCURRENCY: 2 workers need shared stores; set DATABASE_URL and REDIS_URL/);
    const redisOnly = configError({ WEB_CONCURRENCY: '2', DATABASE_URL: STORES.DATABASE_URL });
    assert.match(redisOnly, /set REDIS_URL \(/);
    assert.equal(loadConfig({ WEB_CONCURRENCY: '1' }).workers, 1);
  });
});

describe('TLS_CERT / TLS_KEY', () => {
  let dir: string;
  let cert: string;
  let key: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veil-tls-config-'));
    cert = path.join(dir, 'cert.pem');
    key = path.join(dir, 'key.pem');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', key, '-out', cert],
      { stdio: 'ignore' },
    );
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('both readable: loaded into the config', () => {
    const c = loadConfig({ TLS_CERT: cert, TLS_KEY: key });
    assert.equal(c.tls?.certFile, cert);
    assert.equal(c.tls?.keyFile, key);
    assert.match(c.tls.cert.toString(), /BEGIN CERTIFICATE/);
  });

  test('one without the other is refused', () => {
    assert.match(configError({ TLS_CERT: cert }), /TLS_KEY: required with TLS_CERT/);
    assert.match(configError({ TLS_KEY: key }), /TLS_CERT: required with TLS_KEY/);
  });

  test('an unreadable file is named with the reason', () => {
    const missing = path.join(dir, 'missing.pem');
    assert.match(configError({ TLS_CERT: missing, TLS_KEY: key }), new RegExp(`TLS_CERT: cannot read ${missing.replace(/[.]/g, '\\.')} \\(ENOENT\\)`));
  });

  test('a key that is not a key, or does not match the certificate, is refused', () => {
    assert.match(configError({ TLS_CERT: cert, TLS_KEY: cert }), /TLS_CERT\/TLS_KEY: not a usable PEM certificate and matching private key/);
    const other = path.join(dir, 'other-key.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', other], { stdio: 'ignore' });
    assert.match(configError({ TLS_CERT: cert, TLS_KEY: other }), /TLS_CERT\/TLS_KEY: not a usable/);
  });

  test('production with an https ISSUER needs TLS_CERT/TLS_KEY or TRUST_PROXY', () => {
    assert.match(configError(PRODUCTION), /TLS_CERT\/TLS_KEY or TRUST_PROXY: neither is set/);
    assert.equal(loadConfig({ ...PRODUCTION, TLS_CERT: cert, TLS_KEY: key }).tls?.certFile, cert);
    assert.equal(loadConfig({ ...PRODUCTION, TRUST_PROXY: 'true' }).trustProxy, true);
  });
});

describe('SHUTDOWN_TIMEOUT_SECONDS', () => {
  test('a positive whole number of seconds', () => {
    assert.equal(loadConfig({ SHUTDOWN_TIMEOUT_SECONDS: '30' }).shutdownTimeoutSeconds, 30);
    assert.match(configError({ SHUTDOWN_TIMEOUT_SECONDS: '0' }), /SHUTDOWN_TIMEOUT_SECONDS/);
  });
});
