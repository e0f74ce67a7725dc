/** `veil resources ...`: resource servers (APIs) that access tokens are issued for. */
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { CreateResourceBody, Resource } from '../admin-client.js';

type SubjectMode = Resource['subject'];
const SUBJECT_MODES: SubjectMode[] = ['pairwise', 'public'];
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';
import { readJsonFile } from '../json-file.js';

interface CreateOptions {
  identifier: string;
  name: string;
  scope: string;
  accessTokenTtl?: number;
  jwkFile?: string;
  jwksUri?: string;
  alg?: string;
  enc?: string;
  claims?: string;
  heClaims?: string;
  subject?: SubjectMode;
}

const subjectOption = () =>
  new Option('--subject <mode>', 'the sub its tokens carry for a user: pairwise (its own value, the default for new APIs) or public (the account id)').choices(SUBJECT_MODES);

/** `--he-claims age,spend_headroom` (commas or spaces). */
const claimList = (value: string) => value.split(/[\s,]+/).filter(Boolean);

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
    .addOption(new Option('--jwk-file <file>', "JSON file with the resource server's public encryption JWK (with kid)").conflicts('jwksUri'))
    .option('--jwks-uri <url>', "URL of the resource server's JWK Set (Veil fetches and caches it)")
    .option('--alg <alg>', 'key management: ECDH-ES+A256KW (EC/OKP default), RSA-OAEP-256 (RSA default), ...')
    .option('--enc <enc>', 'content encryption: A256GCM (default), A192GCM, A128GCM')
    .option('--claims <claims>', 'space-separated user claims its tokens may carry, e.g. "email name"')
    .option('--he-claims <names>', 'account attributes its tokens carry Paillier-encrypted, e.g. age,spend_headroom')
    .addOption(subjectOption())
    .action(async (opts: CreateOptions) => {
      if (!opts.jwkFile && !opts.jwksUri) throw new CliError('invalid_input', 'give the encryption key: --jwk-file FILE or --jwks-uri URL');
      const body: CreateResourceBody = {
        identifier: opts.identifier,
        name: opts.name,
        scopes: opts.scope.split(/\s+/).filter(Boolean),
        ...(opts.accessTokenTtl !== undefined && { access_token_ttl: opts.accessTokenTtl }),
        ...(opts.jwkFile !== undefined && { jwk: (await readJsonFile(opts.jwkFile, '--jwk-file')) as Record<string, unknown> }),
        ...(opts.jwksUri !== undefined && { jwks_uri: opts.jwksUri }),
        ...(opts.alg !== undefined && { alg: opts.alg }),
        ...(opts.enc !== undefined && { enc: opts.enc }),
        ...(opts.claims !== undefined && { claims: opts.claims.split(/\s+/).filter(Boolean) }),
        ...(opts.heClaims !== undefined && { he_claims: claimList(opts.heClaims) }),
        ...(opts.subject !== undefined && { subject: opts.subject }),
      };
      const created = await ctx.client().createResource(body);
      ctx
        .output()
        .result(created, () => [
          `created resource ${created.resource.identifier}`,
          `introspection_client_id: ${created.introspection_client_id}`,
          `introspection_client_secret: ${created.introspection_client_secret}`,
          'store the secret now: it is not shown again',
        ]);
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
        { header: 'key', value: (r) => r.jwks_uri ?? `jwk ${typeof r.jwk?.kid === 'string' ? r.jwk.kid : ''}` },
        { header: 'alg/enc', value: (r) => `${r.alg}/${r.enc}` },
        { header: 'subject', value: (r) => r.subject },
      ]);
    });

  resources
    .command('update')
    .description('change a resource server')
    .argument('<identifier>', 'identifier URI of the resource server')
    .option('--he-claims <names>', 'account attributes its tokens carry Paillier-encrypted, e.g. age,spend_headroom ("" for none)')
    .addOption(subjectOption())
    .option('--force', 'change --subject even while tokens for the API may be live (their holders then see one user under two subjects)')
    .action(async (identifier: string, opts: { heClaims?: string; subject?: SubjectMode; force?: boolean }) => {
      if (opts.heClaims === undefined && opts.subject === undefined) throw new CliError('invalid_input', 'give something to change, e.g. --he-claims age or --subject public');
      const resource = await ctx.client().updateResource(identifier, {
        ...(opts.heClaims !== undefined && { he_claims: claimList(opts.heClaims) }),
        ...(opts.subject !== undefined && { subject: opts.subject, ...(opts.force && { force: true }) }),
      });
      ctx.output().result(resource, () => `updated resource ${resource.identifier} (he_claims: ${resource.he_claims.join(', ') || 'none'}; subject: ${resource.subject})`);
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
