/**
 * `veil gate` as an operator runs it: bin/veil.js (the built CLI) with `--config` or GATE_CONFIG,
 * JSON logs on stdout, checks answered, and a clean drain and exit 0 on SIGTERM; a broken
 * configuration exits 1 naming the file, the JSON path and the problem. Needs `npm run build`
 * (done by `npm test`).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair } from 'jose';
import { gateDir, gatewayCheck } from '../helpers/gate.js';
import { ManagedProcess, REPO_ROOT, runCli } from '../helpers/process.js';

describe('veil gate (CLI)', () => {
  let dir: string;
  let configFile: string;

  before(async () => {
    dir = await gateDir();
    const { privateKey } = await generateKeyPair('ECDH-ES+A256KW', { extractable: true });
    await fs.writeFile(path.join(dir, 'api.jwk.json'), JSON.stringify({ ...(await exportJWK(privateKey)), kid: 'cli-key' }));
    configFile = path.join(dir, 'gate.json');
    await fs.writeFile(
      configFile,
      JSON.stringify({
        // No Veil is needed to start: keys are fetched on the first token.
        issuer: 'http://127.0.0.1:9',
        listen: { host: '127.0.0.1', port: 0 },
        audiences: [{ identifier: 'https://api.example', decryptionKeys: ['api.jwk.json'] }],
        routes: [
          { name: 'api', host: 'api.example.com', path: '/api', audience: 'https://api.example' },
          { name: 'open', host: 'api.example.com', path: '/open', public: true },
        ],
      }),
    );
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  for (const how of ['--config', 'GATE_CONFIG'] as const) {
    test(`runs with ${how}, answers checks, drains and exits 0 on SIGTERM`, async () => {
      const args = [path.join(REPO_ROOT, 'bin/veil.js'), 'gate', ...(how === '--config' ? ['--config', configFile] : [])];
      const gate = new ManagedProcess(process.execPath, args, how === 'GATE_CONFIG' ? { GATE_CONFIG: configFile } : {});
      try {
        const [, url] = await gate.waitFor(/"url":"(http:\/\/127\.0\.0\.1:\d+)".*"msg":"veil gate listening"/);
        const health = await fetch(`${url}/healthz`);
        assert.equal(health.status, 200);
        assert.equal((await gatewayCheck({ url: url! }, 'nginx', { uri: '/open/x', host: 'api.example.com' })).status, 200);
        const missing = await gatewayCheck({ url: url! }, 'traefik', { uri: '/api/x', host: 'api.example.com' });
        assert.equal(missing.status, 401);
        assert.equal(missing.headers['www-authenticate'], 'Bearer realm="https://api.example"');
      } finally {
        assert.equal(await gate.stop('SIGTERM'), 0, gate.output);
      }
      const lines = gate.output.split('\n').filter(Boolean);
      assert.ok(
        lines.every((l) => l.startsWith('{')),
        'JSON log lines only',
      );
      assert.match(gate.output, /"msg":"veil gate stopped"/);
    });
  }

  test('a broken configuration exits 1 naming the file, the path and the problem; no configuration at all is a usage error', async () => {
    const broken = path.join(dir, 'broken.json');
    await fs.writeFile(
      broken,
      JSON.stringify({ issuer: 'http://127.0.0.1:9', audiences: [{ identifier: 'x', decryptionKeys: ['k'] }], routes: [{ audience: 'x', scopes: { all: 'read' } }] }),
    );
    const bad = await runCli(['gate', '--config', broken]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /broken\.json: routes\[0\]\.scopes\.all: expected an array of strings/);

    const none = await runCli(['gate'], { env: { GATE_CONFIG: '' } });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /give the configuration file: veil gate --config gate\.json \(or set GATE_CONFIG\)/);

    const json = await runCli(['--json', 'gate', '--config', broken]);
    assert.equal(json.code, 1);
    assert.equal((JSON.parse(json.stderr) as { error: string }).error, 'invalid_configuration');
  });
});
