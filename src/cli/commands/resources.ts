/** `veil resources ...`: resource servers (APIs) that access tokens are issued for. */
import { Command, InvalidArgumentError } from 'commander';
import type { CreateResourceBody, Resource } from '../admin-client.js';
import type { CliContext } from '../context.js';

interface CreateOptions {
  identifier: string;
  name: string;
  scope: string;
  accessTokenTtl?: number;
}

function positiveSeconds(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) <= 0) throw new InvalidArgumentError('must be a positive whole number of seconds');
  return Number(value);
}

export function registerResources(program: Command, ctx: CliContext): void {
  const resources = program.command('resources').description('manage resource servers (APIs)');

  resources
    .command('create')
    .description('register a resource server')
    .requiredOption('--identifier <uri>', 'absolute URI; becomes the access token audience')
    .requiredOption('--name <name>', 'display name')
    .requiredOption('--scope <scopes>', 'space-separated scopes, e.g. "read write"')
    .option('--access-token-ttl <seconds>', 'access token lifetime for this resource', positiveSeconds)
    .action(async (opts: CreateOptions) => {
      const body: CreateResourceBody = {
        identifier: opts.identifier,
        name: opts.name,
        scopes: opts.scope.split(/\s+/).filter(Boolean),
        ...(opts.accessTokenTtl !== undefined && { access_token_ttl: opts.accessTokenTtl }),
      };
      const resource = await ctx.client().createResource(body);
      ctx.output().result(resource, () => `created resource ${resource.identifier}`);
    });

  resources
    .command('list')
    .description('list resource servers')
    .action(async () => {
      const list = await ctx.client().listResources();
      ctx.output().list<Resource>('resources', list, [
        { header: 'identifier', value: (r) => r.identifier },
        { header: 'name', value: (r) => r.name },
        { header: 'scopes', value: (r) => r.scopes.join(' ') },
        { header: 'access_token_ttl', value: (r) => r.access_token_ttl },
      ]);
    });

  resources
    .command('delete')
    .description('delete a resource server')
    .argument('<identifier>', 'identifier URI of the resource server')
    .action(async (identifier: string) => {
      await ctx.client().deleteResource(identifier);
      ctx.output().result({ deleted: identifier }, () => `deleted resource ${identifier}`);
    });
}
