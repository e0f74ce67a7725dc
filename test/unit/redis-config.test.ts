/**
 * The Redis topology settings: REDIS_URL, REDIS_SENTINELS (+ REDIS_SENTINEL_MASTER and the
 * passwords) or REDIS_CLUSTER_NODES, at most one; conflicting or incomplete settings are a
 * ConfigError naming the variables. (Connecting to each topology: test/integration/redis-topologies.test.ts.)
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';

function configError(env: Record<string, string>): string {
  try {
    loadConfig({ NODE_ENV: 'test', ...env });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

describe('Redis topology configuration', () => {
  test('REDIS_SENTINELS with REDIS_SENTINEL_MASTER: a Sentinel topology, passwords kept apart', () => {
    const c = loadConfig({
      NODE_ENV: 'test',
      REDIS_SENTINELS: '10.0.0.1:26379, 10.0.0.2:26380,[::1]:26381',
      REDIS_SENTINEL_MASTER: 'veil',
      REDIS_PASSWORD: 'server-secret',
      REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
    });
    assert.deepEqual(c.redis, {
      kind: 'sentinel',
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: '10.0.0.2', port: 26380 },
        { host: '::1', port: 26381 },
      ],
      masterName: 'veil',
      password: 'server-secret',
      sentinelPassword: 'sentinel-secret',
      waitReplicas: 1,
      keyPrefix: 'veil:',
    });
  });

  test('REDIS_CLUSTER_NODES: a Cluster topology', () => {
    const c = loadConfig({ NODE_ENV: 'test', REDIS_CLUSTER_NODES: 'redis-a:7000,redis-b:7001', REDIS_KEY_PREFIX: 'id:' });
    assert.deepEqual(c.redis, {
      kind: 'cluster',
      nodes: [
        { host: 'redis-a', port: 7000 },
        { host: 'redis-b', port: 7001 },
      ],
      password: undefined,
      keyPrefix: 'id:',
    });
  });

  test('none of them: the embedded store; empty values count as unset', () => {
    assert.equal(loadConfig({ NODE_ENV: 'test', REDIS_URL: '', REDIS_SENTINELS: ' ', REDIS_CLUSTER_NODES: '' }).redis, undefined);
  });

  test('two topologies at once are refused, naming both', () => {
    assert.match(configError({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_CLUSTER_NODES: '127.0.0.1:7000' }), /REDIS_URL and REDIS_CLUSTER_NODES: set one Redis topology/);
    assert.match(
      configError({ REDIS_SENTINELS: '127.0.0.1:26379', REDIS_SENTINEL_MASTER: 'm', REDIS_CLUSTER_NODES: '127.0.0.1:7000' }),
      /REDIS_SENTINELS and REDIS_CLUSTER_NODES: set one Redis topology/,
    );
  });

  test('incomplete or stray settings are refused, naming the variable', () => {
    assert.match(configError({ REDIS_SENTINELS: '127.0.0.1:26379' }), /REDIS_SENTINEL_MASTER: required with REDIS_SENTINELS/);
    assert.match(configError({ REDIS_SENTINEL_MASTER: 'veil' }), /REDIS_SENTINEL_MASTER: only used with REDIS_SENTINELS/);
    assert.match(configError({ REDIS_CLUSTER_NODES: '127.0.0.1:7000', REDIS_SENTINEL_PASSWORD: 'x' }), /REDIS_SENTINEL_PASSWORD: only used with REDIS_SENTINELS/);
    assert.match(configError({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_PASSWORD: 'x' }), /REDIS_PASSWORD: only used with .*put the password in REDIS_URL/);
  });

  test('a node that is not host:port is refused, quoting it', () => {
    assert.match(configError({ REDIS_CLUSTER_NODES: '127.0.0.1:7000,redis-b' }), /REDIS_CLUSTER_NODES: "redis-b" is not host:port/);
    assert.match(configError({ REDIS_SENTINELS: '127.0.0.1:99999', REDIS_SENTINEL_MASTER: 'm' }), /REDIS_SENTINELS: "127.0.0.1:99999" is not host:port/);
  });

  test('a key prefix with braces is refused: Veil places its own hash tags', () => {
    assert.match(configError({ REDIS_CLUSTER_NODES: '127.0.0.1:7000', REDIS_KEY_PREFIX: 'veil{x}:' }), /REDIS_KEY_PREFIX: must not contain \{ or \}/);
  });

  test('Sentinel or Cluster satisfy production and several workers, like REDIS_URL', () => {
    const production = {
      NODE_ENV: 'production',
      ISSUER: 'https://id.example.com',
      DATABASE_URL: 'postgresql://veil@db.internal:5432/veil',
      COOKIE_KEYS: 'a'.repeat(32),
      VEIL_MASTER_KEY_FILE: '/run/secrets/veil-master-key',
      TRUST_PROXY: 'true',
      WEB_CONCURRENCY: '2',
    };
    assert.equal(loadConfig({ ...production, REDIS_CLUSTER_NODES: '10.0.0.1:7000' }).redis?.kind, 'cluster');
    assert.equal(loadConfig({ ...production, REDIS_SENTINELS: '10.0.0.1:26379', REDIS_SENTINEL_MASTER: 'veil' }).redis?.kind, 'sentinel');
    assert.throws(() => loadConfig(production), /REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES: required when NODE_ENV=production/);
  });
});
