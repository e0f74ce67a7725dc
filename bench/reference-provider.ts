/**
 * Plain oidc-provider as the token issuance reference for bench/tokens.ts: default in-memory
 * adapter, no devInteractions, client_credentials and resource indicators on, one confidential
 * client (client_secret_basic) and three resource servers, one per access token format:
 *   https://opaque.bench  opaque (stored in memory)
 *   https://jwt.bench     JWT signed with ES256
 *   https://nested.bench  JWT signed with ES256, then encrypted (ECDH-ES+A256KW / A256GCM)
 *
 *   node --import tsx bench/reference-provider.ts [port]     (or PORT=...; default 3900)
 *
 * Prints "reference provider ready on <issuer>" once it listens; stops on SIGTERM/SIGINT.
 */
import { generateKeyPairSync } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type { Configuration, ResourceServer } from 'oidc-provider';
import { REFERENCE_CLIENT, REFERENCE_RESOURCES, REFERENCE_SCOPES } from './lib/reference-config.js';

// oidc-provider's quick-start warnings (in-memory adapter, default functions) are expected here.
const warn = console.warn.bind(console);
console.warn = (...args: unknown[]) => {
  if (typeof args[0] === 'string' && args[0].includes('oidc-provider WARNING')) return;
  warn(...args);
};
const info = console.info.bind(console);
console.info = (...args: unknown[]) => {
  if (typeof args[0] === 'string' && args[0].includes('oidc-provider NOTICE')) return;
  info(...args);
};

// Imported only now, so that the filter above also catches its import-time runtime warning.
const { default: Provider, errors } = await import('oidc-provider');

const port = Number(process.argv[2] ?? process.env.PORT ?? 3900);
const issuer = `http://127.0.0.1:${port}`;

// The provider's signing key (ES256) ...
const { privateKey } = await generateKeyPair('ES256', { extractable: true });
const signingJwk = await exportJWK(privateKey);
signingJwk.kid = await calculateJwkThumbprint(signingJwk);
Object.assign(signingJwk, { alg: 'ES256', use: 'sig' });

// ... and the nested resource server's public encryption key (its private half is thrown away:
// the bench never opens these tokens, it only measures issuing them).
const encryptionKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;

const resourceServers: Record<string, ResourceServer> = {
  [REFERENCE_RESOURCES.opaque]: { scope: REFERENCE_SCOPES, audience: REFERENCE_RESOURCES.opaque, accessTokenFormat: 'opaque' },
  [REFERENCE_RESOURCES.jwt]: {
    scope: REFERENCE_SCOPES,
    audience: REFERENCE_RESOURCES.jwt,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'ES256' } },
  },
  [REFERENCE_RESOURCES.nested]: {
    scope: REFERENCE_SCOPES,
    audience: REFERENCE_RESOURCES.nested,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'ES256' }, encrypt: { alg: 'ECDH-ES+A256KW', enc: 'A256GCM', key: encryptionKey } },
  },
};

const configuration: Configuration = {
  clients: [
    {
      client_id: REFERENCE_CLIENT.id,
      client_secret: REFERENCE_CLIENT.secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    },
  ],
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  jwks: { keys: [signingJwk] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        const info = resourceServers[resourceIndicator];
        if (!info) throw new errors.InvalidTarget();
        return info;
      },
    },
  },
};

const provider = new Provider(issuer, configuration);
provider.on('server_error', (_ctx, err) => console.error('reference provider server_error', err));

const server = provider.listen(port, '127.0.0.1');
server.once('listening', () => console.log(`reference provider ready on ${issuer}`));
server.once('error', (err) => {
  console.error(err);
  process.exit(1);
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
