/** `veil clients ...`: OAuth clients (relying parties). */
import { Command, Option } from 'commander';
import type { Client, CreateClientBody } from '../admin-client.js';
import type { CliContext } from '../context.js';
import { readJsonFile } from '../json-file.js';

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
}

/** Repeatable option: each occurrence appends (commander passes undefined the first time). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function registerClients(program: Command, ctx: CliContext): void {
  const clients = program.command('clients').description('manage OAuth clients');

  clients
    .command('create')
    .description('register a client; prints its client_id and, for confidential clients, its secret (shown once)')
    .requiredOption('--name <name>', 'client_name')
    .option('--redirect-uri <uri>', 'allowed redirect URI (repeatable)', collect)
    .option('--grant-type <type>', 'authorization_code | refresh_token | client_credentials (repeatable)', collect)
    .option('--public', 'public client (SPA/native): no secret, token_endpoint_auth_method none')
    .option('--scope <scopes>', 'space-separated scopes the client may request')
    .option('--post-logout-redirect-uri <uri>', 'allowed post-logout redirect URI (repeatable)', collect)
    .option('--auth-method <method>', 'client_secret_basic | client_secret_post | private_key_jwt | none')
    .option('--jwks-uri <uri>', 'URL of the client JWKS (private_key_jwt)')
    .addOption(new Option('--jwks-file <file>', 'JSON file with the client JWKS (private_key_jwt)').conflicts('jwksUri'))
    .option('--resource <uri>', 'resource server (identifier) the client may request tokens for (repeatable)', collect)
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
      if (opts.jwksFile !== undefined) body.jwks = await readJsonFile(opts.jwksFile, '--jwks-file');

      const { client, client_secret } = await ctx.client().createClient(body);
      const json = { client, client_id: client.client_id, ...(client_secret !== undefined && { client_secret }) };
      ctx.output().result(json, () =>
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
    .command('delete')
    .description('delete a client')
    .argument('<client_id>', 'client to delete')
    .action(async (clientId: string) => {
      await ctx.client().deleteClient(clientId);
      ctx.output().result({ deleted: clientId }, () => `deleted client ${clientId}`);
    });
}
