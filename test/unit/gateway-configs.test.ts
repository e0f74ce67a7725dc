/**
 * The gateway configurations nobody runs here: docker-compose.yml (no Docker engine on the test
 * machines) and the Traefik and Envoy snippets of docs/gateway/ (no Traefik or Envoy). Parsed and
 * checked against what they refer to: the files they mount exist, the gate's configuration loads
 * and names the demo API as compose runs it, nginx's template gets every placeholder, and every
 * snippet asks the gate's check path for its dialect and passes on the same headers.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import yaml from 'js-yaml';
import { describe, test } from 'node:test';
import { loadGateConfig } from '../../src/gate/config.js';
import { CHECK_PATHS } from '../../src/gate/dialects.js';
import { NGINX_GATEWAY_TEMPLATE, renderNginxTemplate } from '../helpers/nginx.js';
import { REPO_ROOT } from '../helpers/process.js';

const parseYaml = async (file: string): Promise<unknown> => yaml.load(await fs.readFile(path.join(REPO_ROOT, file), 'utf8'));

/** The fenced code blocks of docs/GATEWAY.md in one language. */
async function gatewayDocBlocks(language: string): Promise<string[]> {
  const doc = await fs.readFile(path.join(REPO_ROOT, 'docs/GATEWAY.md'), 'utf8');
  return [...doc.matchAll(new RegExp(`^\`\`\`${language}\n([\\s\\S]*?)^\`\`\`$`, 'gm'))].map((m) => m[1]!);
}

/** Configuration lines without comments and blank lines, trimmed. */
const directives = (text: string) =>
  text
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter(Boolean);

interface ComposeService {
  image?: string;
  build?: string;
  command?: string[];
  network_mode?: string;
  depends_on?: Record<string, { condition: string }>;
  environment?: Record<string, string | number>;
  volumes?: string[];
  ports?: string[];
  healthcheck?: { test: string[] };
}

interface Compose {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
}

/** `source:target[:ro]` of a service's volume list. */
function mounts(service: ComposeService): Array<{ source: string; target: string; readOnly: boolean }> {
  return (service.volumes ?? []).map((v) => {
    const [source, target, mode] = v.split(':');
    return { source: source!, target: target!, readOnly: mode === 'ro' };
  });
}

const exists = (file: string) =>
  fs.access(path.join(REPO_ROOT, file)).then(
    () => true,
    () => false,
  );

/** The headers docs/gateway/nginx.conf copies from the gate's answer into the upstream request. */
async function nginxForwardedHeaders(): Promise<string[]> {
  const conf = await fs.readFile(NGINX_GATEWAY_TEMPLATE, 'utf8');
  return [...conf.matchAll(/^\s*auth_request_set \$\w+ \$upstream_http_(\w+);/gm)].map((m) => m[1]!.replaceAll('_', '-')).filter((h) => h !== 'www-authenticate');
}

describe('docker-compose.yml: nginx and the gate in front of the demo API', () => {
  test('the services, their images, ports and dependencies', async () => {
    const compose = (await parseYaml('docker-compose.yml')) as Compose;
    const { services } = compose;
    assert.deepEqual(Object.keys(services).sort(), ['demo-api', 'gate', 'nginx', 'postgres', 'redis', 'veil']);
    for (const [name, service] of Object.entries(services)) {
      for (const dependency of Object.keys(service.depends_on ?? {})) assert.ok(services[dependency], `${name} depends on an unknown service ${dependency}`);
      for (const { source } of mounts(service)) {
        if (source.startsWith('.')) assert.ok(await exists(source), `${name} mounts ${source}, which does not exist`);
        else assert.ok(source in compose.volumes, `${name} uses the undeclared volume ${source}`);
      }
    }

    // nginx: an image with auth_request, the only published way to the demo API.
    assert.match(services.nginx!.image!, /^nginx:1\.\d+/);
    assert.deepEqual(services.nginx!.ports, ['8080:80']);
    assert.equal(services.nginx!.depends_on?.gate?.condition, 'service_healthy');
    // The gate and the demo API are reachable on the compose network only.
    assert.equal(services.gate!.ports, undefined, "the gate's port is not published: only nginx may ask it");
    assert.equal(services['demo-api']!.ports, undefined, 'the demo API is not published: requests go through nginx');
    for (const name of ['gate', 'demo-api']) {
      assert.equal(services[name]!.build, '.', `${name} runs the repository's image`);
      // The image's own HEALTHCHECK asks Veil's admin port; these containers need their own.
      assert.ok(services[name]!.healthcheck?.test.join(' ').includes('fetch('), `${name} has its own health check`);
    }
    assert.deepEqual(services.gate!.command, ['node', 'bin/veil.js', 'gate', '--config', '/etc/veil/gate.json']);
    assert.ok(await exists('bin/veil.js'));
    assert.match(await fs.readFile(path.join(REPO_ROOT, 'Dockerfile'), 'utf8'), /^COPY bin \.\/bin$/m, 'the image has the CLI the gate runs as');
  });

  test("nginx's template is docs/gateway/nginx.conf, filled from its environment, pointing at the gate and the demo API", async () => {
    const { services } = (await parseYaml('docker-compose.yml')) as Compose;
    const nginx = services.nginx!;
    const template = mounts(nginx).find((m) => m.target.startsWith('/etc/nginx/templates/'));
    assert.ok(template, 'a template for the image to fill');
    assert.equal(path.resolve(REPO_ROOT, template.source), NGINX_GATEWAY_TEMPLATE, 'the same file the e2e test runs');
    assert.match(template.target, /\.conf\.template$/);

    const env = nginx.environment!;
    const placeholders = Object.fromEntries(Object.entries(env).filter(([name]) => name.startsWith('VEIL_')));
    // Fails on a placeholder without a value: the image would leave it in the configuration.
    const rendered = await renderNginxTemplate(Object.fromEntries(Object.entries(placeholders).map(([k, v]) => [k, String(v)])));
    assert.match(String(env.NGINX_ENVSUBST_FILTER), /^\^VEIL_/, "only VEIL_ variables are substituted, never nginx's own $variables");
    assert.doesNotMatch(rendered, /\$\{[A-Z]/, 'a placeholder left unfilled');

    const gateConfig = await loadGateConfig(path.join(REPO_ROOT, mountedSource(services.gate!, '/etc/veil/gate.json')), {});
    assert.equal(env.VEIL_GATE, `gate:${gateConfig.listen.port}`);
    assert.equal(gateConfig.listen.host, '0.0.0.0', 'the gate listens on the compose network');
    // The demo API shares Veil's network namespace, so nginx reaches it under Veil's name.
    const demo = services['demo-api']!;
    assert.equal(demo.network_mode, 'service:veil');
    assert.equal(env.VEIL_UPSTREAM, `veil:${demo.environment!.DEMO_API_PORT}`);
  });

  test('the gate configuration loads and fronts the demo API as compose runs it', async () => {
    const { services } = (await parseYaml('docker-compose.yml')) as Compose;
    const gate = services.gate!;
    const demo = services['demo-api']!;
    const config = await loadGateConfig(path.join(REPO_ROOT, mountedSource(gate, '/etc/veil/gate.json')), {});

    assert.equal(config.issuer, services.veil!.environment!.ISSUER, "the issuer is Veil's");
    assert.equal(config.issuer, demo.environment!.VEIL_ISSUER);
    assert.deepEqual(
      config.audiences.map((a) => a.identifier),
      [demo.environment!.DEMO_API_IDENTIFIER],
    );
    // From the gate's container, localhost is the gate: Veil's keys come from the compose name.
    assert.equal(config.jwksUri, 'http://veil:3000/jwks');

    // The demo API writes its key into a volume; the gate reads the same file from its mount.
    const keyFile = String(demo.environment!.DEMO_API_KEY_FILE);
    const written = mounts(demo).find((m) => keyFile.startsWith(`${m.target}/`));
    assert.ok(written, 'the demo API key file is on a volume');
    const read = mounts(gate).find((m) => m.source === written.source);
    assert.ok(read?.readOnly, "the gate mounts the demo API's volume, read-only");
    assert.deepEqual(config.audiences[0]!.decryptionKeys, [path.join(read.target, path.relative(written.target, keyFile))]);

    const [route] = config.routes;
    assert.equal(route!.audience, demo.environment!.DEMO_API_IDENTIFIER);
    assert.deepEqual(route!.scopes, { all: [String(demo.environment!.DEMO_API_SCOPE)] });
    assert.ok(route!.keepAuthorization, 'the demo API checks the token itself, so the route passes it on');
    for (const header of Object.values(route!.headers)) {
      assert.ok((await nginxForwardedHeaders()).includes(header.toLowerCase()), `nginx's template does not copy ${header}`);
    }
  });
});

/** The repository file mounted at `target` in a service. */
function mountedSource(service: ComposeService, target: string): string {
  const mount = mounts(service).find((m) => m.target === target);
  assert.ok(mount, `nothing mounted at ${target}`);
  return mount.source;
}

describe('docs/gateway: the Traefik and Envoy snippets match the gate and the nginx configuration', () => {
  test('nginx asks /check with the original method, URI and host, and copies the answer', async () => {
    const conf = await fs.readFile(NGINX_GATEWAY_TEMPLATE, 'utf8');
    assert.match(conf, new RegExp(`proxy_pass http://veil_gate${CHECK_PATHS.nginx};`));
    for (const [header, variable] of [
      ['X-Original-Method', '$request_method'],
      ['X-Original-URI', '$request_uri'],
      ['X-Original-Host', '$host'],
    ]) {
      assert.ok(conf.includes(`proxy_set_header ${header} ${variable};`), header);
    }
    assert.match(conf, /proxy_set_header Authorization \$veil_authorization;/);
    assert.deepEqual(await nginxForwardedHeaders(), ['x-user', 'x-scope', 'x-client', 'x-veil-authorization']);
  });

  test('Traefik forwardAuth: /check/traefik, the same headers, Authorization replaced by the answer', async () => {
    const traefik = (await parseYaml('docs/gateway/traefik.yml')) as {
      http: { middlewares: Record<string, { forwardAuth: { address: string; trustForwardHeader: boolean; authResponseHeaders: string[] } }> };
    };
    const { forwardAuth } = traefik.http.middlewares['veil-gate']!;
    assert.equal(new URL(forwardAuth.address).pathname, CHECK_PATHS.traefik);
    assert.equal(forwardAuth.trustForwardHeader, false);
    const nginx = (await nginxForwardedHeaders()).filter((h) => h !== 'x-veil-authorization');
    assert.deepEqual(forwardAuth.authResponseHeaders.map((h) => h.toLowerCase()).sort(), [...nginx, 'authorization'].sort());
  });

  test('Envoy ext_authz: path_prefix /check/envoy, the same headers, fail closed', async () => {
    const envoy = (await parseYaml('docs/gateway/envoy.yaml')) as {
      static_resources: {
        listeners: Array<{ filter_chains: Array<{ filters: Array<{ typed_config: { http_filters: Array<{ name: string; typed_config: Record<string, unknown> }> } }> }> }>;
      };
    };
    const filters = envoy.static_resources.listeners[0]!.filter_chains[0]!.filters[0]!.typed_config.http_filters;
    assert.deepEqual(
      filters.map((f) => f.name),
      ['envoy.filters.http.header_mutation', 'envoy.filters.http.ext_authz', 'envoy.filters.http.router'],
    );
    const extAuthz = filters[1]!.typed_config as {
      failure_mode_allow: boolean;
      http_service: {
        path_prefix: string;
        authorization_request: { allowed_headers: { patterns: Array<{ exact: string }> } };
        authorization_response: { allowed_upstream_headers: { patterns: Array<{ exact: string }> }; allowed_client_headers: { patterns: Array<{ exact: string }> } };
      };
    };
    assert.equal(extAuthz.failure_mode_allow, false);
    assert.equal(extAuthz.http_service.path_prefix, CHECK_PATHS.envoy);
    const exact = (list: { patterns: Array<{ exact: string }> }) => list.patterns.map((p) => p.exact).sort();
    assert.deepEqual(exact(extAuthz.http_service.authorization_request.allowed_headers), ['authorization', 'dpop']);
    const nginx = (await nginxForwardedHeaders()).filter((h) => h !== 'x-veil-authorization');
    assert.deepEqual(exact(extAuthz.http_service.authorization_response.allowed_upstream_headers), [...nginx, 'authorization'].sort());
    assert.deepEqual(exact(extAuthz.http_service.authorization_response.allowed_client_headers), ['www-authenticate']);
    // The caller's copies of every header the gate sets are dropped before ext_authz runs.
    const removed = (filters[0]!.typed_config as { mutations: { request_mutations: Array<{ remove: string }> } }).mutations.request_mutations.map((m) => m.remove).sort();
    assert.deepEqual(removed, [...nginx, 'x-veil-authorization'].sort());
  });
});

describe('docs/GATEWAY.md shows the configurations as they are in docs/gateway/', () => {
  test('nginx: the snippet is docs/gateway/nginx.conf without its comments', async () => {
    const [snippet] = await gatewayDocBlocks('nginx');
    assert.ok(snippet, 'an nginx block in docs/GATEWAY.md');
    assert.deepEqual(directives(snippet), directives(await fs.readFile(NGINX_GATEWAY_TEMPLATE, 'utf8')));
  });

  test('Traefik: the snippet is docs/gateway/traefik.yml', async () => {
    const blocks = await Promise.all((await gatewayDocBlocks('yaml')).map((text) => yaml.load(text)));
    const traefik = await parseYaml('docs/gateway/traefik.yml');
    assert.ok(
      blocks.some((b) => JSON.stringify(b) === JSON.stringify(traefik)),
      'no yaml block of docs/GATEWAY.md is docs/gateway/traefik.yml',
    );
  });

  test("Envoy: the snippet is docs/gateway/envoy.yaml's http_filters", async () => {
    const blocks = await Promise.all((await gatewayDocBlocks('yaml')).map((text) => yaml.load(text)));
    const envoy = (await parseYaml('docs/gateway/envoy.yaml')) as {
      static_resources: { listeners: Array<{ filter_chains: Array<{ filters: Array<{ typed_config: { http_filters: unknown } }> }> }> };
    };
    const filters = envoy.static_resources.listeners[0]!.filter_chains[0]!.filters[0]!.typed_config.http_filters;
    assert.ok(
      blocks.some((b) => JSON.stringify((b as { http_filters?: unknown }).http_filters) === JSON.stringify(filters)),
      "no yaml block of docs/GATEWAY.md is docs/gateway/envoy.yaml's http_filters",
    );
  });
});
