/**
 * Issue 8, acceptance 4: `npm pack` of the resource-server SDK ships only its build, with jose its
 * only dependency; the example API (examples/api) installed alone from that tarball, in a
 * directory outside the repository, verifies a sealed token a real Veil issued and refuses a
 * token for another API, a tampered token and no token.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { exportJWK } from 'jose';
import { tokenRequest, type HttpFlowClient } from '../helpers/http-flow.js';
import { ManagedProcess, REPO_ROOT } from '../helpers/process.js';
import { registerResourceServer, type TestResourceServer } from '../helpers/resource-servers.js';
import { createTestStores, type TestStores } from '../helpers/stores.js';
import { startTestVeil, type TestVeil } from '../helpers/veil.js';

const run = promisify(execFile);
const PACKAGE_DIR = path.join(REPO_ROOT, 'packages/resource-server');
const EXAMPLE_DIR = path.join(REPO_ROOT, 'examples/api');

/** npm with none of the npm_* variables of an enclosing `npm test`, which would point it back at the repository. */
function npm(args: string[], cwd: string) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name)));
  return run('npm', args, { cwd, env, maxBuffer: 16 * 1024 * 1024, timeout: 170_000 });
}

interface PackResult {
  name: string;
  version: string;
  filename: string;
  files: { path: string }[];
}

describe('the @veil/resource-server package, installed alone', () => {
  let tmp: string;
  let pack: PackResult;
  let tarball: string;

  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'veil-sdk-package-'));
    const { stdout } = await npm(['pack', '--json', '--pack-destination', tmp], PACKAGE_DIR);
    // prepack's build output comes first; the JSON array is the last thing printed.
    pack = (JSON.parse(stdout.slice(stdout.lastIndexOf('\n[') + 1)) as PackResult[])[0]!;
    tarball = path.join(tmp, pack.filename);
  });
  after(async () => {
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  test('the tarball holds dist, package.json and README only, and depends on jose alone', async () => {
    assert.equal(pack.name, '@veil/resource-server');
    const files = pack.files.map((f) => f.path).sort();
    const outside = files.filter((f) => !f.startsWith('dist/') && f !== 'package.json' && f !== 'README.md');
    assert.deepEqual(outside, []);
    assert.ok(files.includes('README.md') && files.includes('dist/index.js') && files.includes('dist/index.d.ts'), files.join(' '));
    assert.ok(!files.some((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')), 'no TypeScript sources');

    // What the registry would serve: the package.json inside the tarball.
    const unpacked = path.join(tmp, 'unpacked');
    await fs.mkdir(unpacked);
    await run('tar', ['-xzf', tarball, '-C', unpacked]);
    const manifest = JSON.parse(await fs.readFile(path.join(unpacked, 'package/package.json'), 'utf8')) as Record<string, unknown>;
    const root = JSON.parse(await fs.readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    assert.deepEqual(manifest.dependencies, { jose: root.dependencies.jose });
    assert.equal(manifest.peerDependencies, undefined);
    assert.equal(manifest.optionalDependencies, undefined);
  });

  describe('the example API against a real Veil', () => {
    let stores: TestStores;
    let veil: TestVeil;
    let ours: TestResourceServer;
    let theirs: TestResourceServer;
    let worker: HttpFlowClient;
    let api: ManagedProcess;
    let apiUrl: string;
    const appDir = () => path.join(tmp, 'example-api');

    before(async () => {
      // The example as a stranger would have it: its files, no dependencies yet, then the tarball.
      await fs.mkdir(appDir());
      const manifest = JSON.parse(await fs.readFile(path.join(EXAMPLE_DIR, 'package.json'), 'utf8')) as Record<string, unknown>;
      delete manifest.dependencies;
      await fs.writeFile(path.join(appDir(), 'package.json'), JSON.stringify(manifest, null, 2));
      await fs.copyFile(path.join(EXAMPLE_DIR, 'server.mjs'), path.join(appDir(), 'server.mjs'));
      await npm(['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], appDir());

      stores = await createTestStores();
      veil = await startTestVeil(stores);
      ours = await registerResourceServer(veil, { identifier: 'https://orders.example/api', scopes: ['read'] });
      theirs = await registerResourceServer(veil, { identifier: 'https://billing.example/api', scopes: ['read'] });
      const w = await veil.admin<{ client: { client_id: string }; client_secret: string }>('POST', '/admin/clients', {
        client_name: 'sdk-package-worker',
        grant_types: ['client_credentials'],
        resources: [ours.identifier, theirs.identifier],
        resource_scopes: { [ours.identifier]: ['read'], [theirs.identifier]: ['read'] },
      });
      assert.equal(w.status, 201, JSON.stringify(w.body));
      worker = { issuer: veil.issuer, clientId: w.body.client.client_id, clientSecret: w.body.client_secret, redirectUri: 'x' };

      const privateJwk = { ...(await exportJWK(ours.privateKey)), kid: ours.publicJwk.kid, use: 'enc' };
      api = new ManagedProcess(process.execPath, [path.join(appDir(), 'server.mjs')], {
        VEIL_ISSUER: veil.issuer,
        API_AUDIENCE: ours.identifier,
        API_DECRYPTION_JWKS: JSON.stringify({ keys: [privateJwk] }),
        PORT: '0',
        HOST: '127.0.0.1',
      });
      apiUrl = (await api.waitFor(/listening on (http:\/\/\S+)/))[1]!;
    });

    after(async () => {
      await api?.stop();
      await veil?.stop();
      await stores?.cleanup();
    });

    test('installed alone: only the SDK and jose, from the tarball', async () => {
      const installed = (await fs.readdir(path.join(appDir(), 'node_modules'))).filter((n) => !n.startsWith('.')).sort();
      assert.deepEqual(installed, ['@veil', 'jose']);
      assert.deepEqual(await fs.readdir(path.join(appDir(), 'node_modules/@veil')), ['resource-server']);
      const sdk = await fs.lstat(path.join(appDir(), 'node_modules/@veil/resource-server'));
      assert.ok(sdk.isDirectory() && !sdk.isSymbolicLink(), 'a copy from the tarball, not a link into the repository');
      const manifest = JSON.parse(await fs.readFile(path.join(appDir(), 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
      assert.deepEqual(Object.keys(manifest.dependencies), ['@veil/resource-server']);
    });

    const hello = (token?: string) => fetch(`${apiUrl}/api/hello`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    const tokenFor = async (resource: string) => {
      const { status, body } = await tokenRequest(worker, { grant_type: 'client_credentials', resource, scope: 'read' });
      assert.equal(status, 200, JSON.stringify(body));
      return body.access_token!;
    };

    test("a sealed token from Veil is accepted; another API's, a tampered one and none are 401", async () => {
      const token = await tokenFor(ours.identifier);
      assert.equal(token.split('.').length, 5, 'a compact JWE');
      const ok = await hello(token);
      assert.equal(ok.status, 200, await ok.clone().text());
      assert.deepEqual(await ok.json(), { message: `Hello, ${worker.clientId}`, client_id: worker.clientId, scopes: ['read'] });
      assert.equal((await hello(token)).status, 200, 'again, from the cache');

      const other = await hello(await tokenFor(theirs.identifier));
      assert.equal(other.status, 401);
      assert.match(other.headers.get('www-authenticate') ?? '', /error="invalid_token", error_description="decryption_key_unknown"/);

      // One character of the ciphertext changed (all six of its bits count).
      const at = token.split('.').slice(0, 3).join('.').length + 1;
      const tampered = `${token.slice(0, at)}${token[at] === 'A' ? 'B' : 'A'}${token.slice(at + 1)}`;
      const bad = await hello(tampered);
      assert.equal(bad.status, 401);
      assert.match(bad.headers.get('www-authenticate') ?? '', /error="invalid_token", error_description="decryption_failed"/);

      const none = await hello();
      assert.equal(none.status, 401);
      assert.equal(none.headers.get('www-authenticate'), `Bearer realm="${ours.identifier}", DPoP realm="${ours.identifier}", algs="ES256 ES384 PS256 RS256 Ed25519 EdDSA"`);
    });
  });
});
