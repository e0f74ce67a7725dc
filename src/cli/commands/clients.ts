/** `veil clients ...`: OAuth clients (relying parties). */
import { type Command, Option } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { Client, CreateClientBody, UpdateClientBody } from '../admin-client.js';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';
import { readJsonFile } from '../json-file.js';
import { TOKEN_EXCHANGE_GRANT_TYPE, TOKEN_EXCHANGE_SHORT_NAME } from '../../clients/token-exchange-policy.js';

interface CreateOptions {
  name: string;
  redirectUri?: string[];
  grantType?: string[];
  public?: boolean;
  scope?: string;
  postLogoutRedirectUri?: string[];
  authMethod?: string;
  jwksUri?: string;
  jwksFile?: string;
  resource?: string[];
  resourceScope?: Record<string, string[]>;
  exchangeFrom?: string[];
  requireDpop?: boolean;
}

interface UpdateOptions {
  name?: string;
  redirectUri?: string[];
  postLogoutRedirectUri?: string[];
  grantType?: string[];
  scope?: string;
  resource?: string[];
  resourceScope?: Record<string, string[]>;
  exchangeFrom?: string[];
  requireDpop?: boolean;
}

/** Repeatable option: each occurrence appends (commander passes undefined the first time). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * Repeatable `--resource-scope URI=read,write`: API scopes for one resource (split at the last
 * "="; an empty list allows none). Occurrences for the same URI add up.
 */
export function collectResourceScopes(value: string, previous: Record<string, string[]> | undefined): Record<string, string[]> {
  const at = value.lastIndexOf('=');
  if (at <= 0) throw new InvalidArgumentError('expected URI=scope,scope (for example https://api.example.com=read,write)');
  const uri = value.slice(0, at);
  const scopes = value
    .slice(at + 1)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return { ...previous, [uri]: [...new Set([...(previous?.[uri] ?? []), ...scopes])] };
}

/** Repeatable `--grant-type`: `token-exchange` is short for the RFC 8693 grant type URN. */
export function collectGrantTypes(value: string, previous: string[] | undefined): string[] {
  return collect(value === TOKEN_EXCHANGE_SHORT_NAME ? TOKEN_EXCHANGE_GRANT_TYPE : value, previous);
}

const GRANT_TYPE_HELP = `authorization_code | refresh_token | client_credentials | ${TOKEN_EXCHANGE_SHORT_NAME} (RFC 8693, ${TOKEN_EXCHANGE_GRANT_TYPE})`;
const EXCHANGE_FROM_HELP = `token exchange: a registered API (audience) whose access tokens this client may exchange (repeatable; needs --grant-type ${TOKEN_EXCHANGE_SHORT_NAME})`;

const REQUIRE_DPOP_HELP = 'every token request must carry a DPoP proof (RFC 9449): its tokens are always bound to the client key';

const SCOPE_HELP = "space-separated scopes: OIDC scopes (openid profile email offline_access) and scopes registered by one of the client's --resource APIs";
const RESOURCE_SCOPE_HELP = 'API scopes for one resource, URI=scope,scope (repeatable; needed when two APIs share a scope name; the resource is allowed too)';

export function registerClients(program: Command, ctx: CliContext): void {
  const clients = program.command('clients').description('manage OAuth clients');

  clients
    .command('create')
    .description('register a client; prints its client_id and, for confidential clients, its secret (shown once)')
    .requiredOption('--name <name>', 'client_name')
    .option('--redirect-uri <uri>', 'allowed redirect URI (repeatable)', collect)
    .option('--grant-type <type>', `${GRANT_TYPE_HELP} (repeatable)`, collectGrantTypes)
    .option('--public', 'public client (SPA/native): no secret, token_endpoint_auth_method none')
    .option('--scope <scopes>', SCOPE_HELP)
    .option('--post-logout-redirect-uri <uri>', 'allowed post-logout redirect URI (repeatable)', collect)
    .option('--auth-method <method>', 'client_secret_basic | client_secret_post | private_key_jwt | none')
    .option('--jwks-uri <uri>', 'URL of the client JWKS (private_key_jwt)')
    .addOption(new Option('--jwks-file <file>', 'JSON file with the client JWKS (private_key_jwt)').conflicts('jwksUri'))
    .option('--resource <uri>', 'resource server (identifier) the client may request tokens for (repeatable)', collect)
    .option('--resource-scope <uri=scopes>', RESOURCE_SCOPE_HELP, collectResourceScopes)
    .option('--exchange-from <audience>', EXCHANGE_FROM_HELP, collect)
    .option('--require-dpop', REQUIRE_DPOP_HELP)
    .action(async (opts: CreateOptions) => {
      // Only send what was given, so the server's documented defaults apply to the rest.
      const body: CreateClientBody = { client_name: opts.name };
      if (opts.redirectUri) body.redirect_uris = opts.redirectUri;
      if (opts.grantType) body.grant_types = opts.grantType;
      if (opts.public) body.public = true;
      if (opts.scope !== undefined) body.scope = opts.scope;
      if (opts.postLogoutRedirectUri) body.post_logout_redirect_uris = opts.postLogoutRedirectUri;
      if (opts.authMethod !== undefined) body.token_endpoint_auth_method = opts.authMethod;
      if (opts.jwksUri !== undefined) body.jwks_uri = opts.jwksUri;
      if (opts.resource) body.resources = opts.resource;
      if (opts.resourceScope) body.resource_scopes = opts.resourceScope;
      if (opts.exchangeFrom) body.exchange_from = opts.exchangeFrom;
      if (opts.requireDpop) body.dpop_bound_access_tokens = true;
      if (opts.jwksFile !== undefined) body.jwks = await readJsonFile(opts.jwksFile, '--jwks-file');

      const { client, client_secret } = await ctx.client().createClient(body);
      const json = { client, client_id: client.client_id, ...(client_secret !== undefined && { client_secret }) };
      ctx
        .output()
        .result(json, () =>
          client_secret === undefined
            ? [`client_id: ${client.client_id}`]
            : [`client_id: ${client.client_id}`, `client_secret: ${client_secret}`, 'store the secret now: it is not shown again'],
        );
    });

  clients
    .command('list')
    .description('list clients')
    .action(async () => {
      const list = await ctx.client().listClients();
      ctx.output().list<Client>('clients', list, [
        { header: 'client_id', value: (c) => c.client_id },
        { header: 'client_name', value: (c) => c.client_name },
        { header: 'grant_types', value: (c) => c.grant_types?.join(',') },
        { header: 'auth_method', value: (c) => c.token_endpoint_auth_method },
      ]);
    });

  clients
    .command('update')
    .description('change a client in place: each option given replaces that setting, the others stay')
    .argument('<client_id>', 'client to change')
    .option('--name <name>', 'client_name')
    .option('--redirect-uri <uri>', 'allowed redirect URI (repeatable; replaces the list)', collect)
    .option('--post-logout-redirect-uri <uri>', 'allowed post-logout redirect URI (repeatable; replaces the list)', collect)
    .option('--grant-type <type>', `${GRANT_TYPE_HELP} (repeatable; replaces the list)`, collectGrantTypes)
    .option('--scope <scopes>', `${SCOPE_HELP}; replaces the OIDC scopes and, without --resource-scope, every API scope`)
    .option('--resource <uri>', 'resource server the client may request tokens for (repeatable; replaces the list)', collect)
    .option('--resource-scope <uri=scopes>', `${RESOURCE_SCOPE_HELP}; replaces every API scope`, collectResourceScopes)
    .option('--exchange-from <audience>', `${EXCHANGE_FROM_HELP}; replaces the list`, collect)
    .option('--require-dpop', REQUIRE_DPOP_HELP)
    .option('--no-require-dpop', 'stop requiring DPoP proofs (tokens are then bound only when the client sends one)')
    .action(async (clientId: string, opts: UpdateOptions) => {
      const body: UpdateClientBody = {};
      if (opts.name !== undefined) body.client_name = opts.name;
      if (opts.redirectUri) body.redirect_uris = opts.redirectUri;
      if (opts.postLogoutRedirectUri) body.post_logout_redirect_uris = opts.postLogoutRedirectUri;
      if (opts.grantType) body.grant_types = opts.grantType;
      if (opts.scope !== undefined) body.scope = opts.scope;
      if (opts.resource) body.resources = opts.resource;
      if (opts.resourceScope) body.resource_scopes = opts.resourceScope;
      if (opts.exchangeFrom) body.exchange_from = opts.exchangeFrom;
      if (opts.requireDpop !== undefined) body.dpop_bound_access_tokens = opts.requireDpop;
      if (Object.keys(body).length === 0) throw new CliError('invalid_input', 'give at least one setting to change (see veil clients update --help)');
      const client = await ctx.client().updateClient(clientId, body);
      ctx
        .output()
        .result({ client }, () => [
          `updated client ${client.client_id}`,
          `scope: ${client.scope ?? '(all OIDC scopes)'}`,
          ...Object.entries(client.resource_scopes ?? {}).map(([uri, scopes]) => `${uri}: ${scopes.join(' ') || '(no scopes)'}`),
        ]);
    });

  clients
    .command('delete')
    .description('delete a client')
    .argument('<client_id>', 'client to delete')
    .action(async (clientId: string) => {
      await ctx.client().deleteClient(clientId);
      ctx.output().result({ deleted: clientId }, () => `deleted client ${clientId}`);
    });
}
