/** `veil policies ...`: which node may ask for which confidential-claim decision or aggregate. */
import { type Command, Option } from 'commander';
import type { Policy } from '../admin-client.js';
import type { CliContext } from '../context.js';

interface CreateOptions {
  node: string;
  claim: string;
  op: string;
  kind: string;
  purpose: string;
  id?: string;
}

export function registerPolicies(program: Command, ctx: CliContext): void {
  const policies = program.command('policies').description('manage confidential-claim policies (blinded decisions and aggregates by nodes)');

  policies
    .command('create')
    .description('let a node (a confidential client) ask for a decision or an aggregate over one encrypted claim')
    .requiredOption('--node <client_id>', 'the node: a confidential client')
    .requiredOption('--claim <name>', 'the encrypted claim (an account attribute, e.g. age, spend_headroom)')
    .requiredOption('--op <op>', 'gte, lte, gt or lt (decision); sum (aggregate)')
    .addOption(new Option('--kind <kind>', 'decision or aggregate').choices(['decision', 'aggregate']).default('decision'))
    .requiredOption('--purpose <text>', 'why the node may ask (shown in listings)')
    .option('--id <id>', 'a chosen id (lower-case letters, digits, . _ -), as named in gate routes; random when not given')
    .action(async (opts: CreateOptions) => {
      const policy = await ctx.client().createPolicy({
        node: opts.node,
        claim: opts.claim,
        op: opts.op as Policy['op'],
        kind: opts.kind as Policy['kind'],
        purpose: opts.purpose,
        ...(opts.id !== undefined && { id: opts.id }),
      });
      ctx.output().result({ policy }, () => `created policy ${policy.id}: ${policy.node} may ask ${policy.claim} ${policy.op} (${policy.kind})`);
    });

  policies
    .command('list')
    .description('list policies')
    .option('--node <client_id>', "only this node's")
    .action(async (opts: { node?: string }) => {
      const list = await ctx.client().listPolicies(opts.node);
      ctx.output().list<Policy>('policies', list, [
        { header: 'id', value: (p) => p.id },
        { header: 'node', value: (p) => p.node },
        { header: 'claim', value: (p) => p.claim },
        { header: 'kind', value: (p) => p.kind },
        { header: 'op', value: (p) => p.op },
        { header: 'purpose', value: (p) => p.purpose },
      ]);
    });

  policies
    .command('delete')
    .description('delete a policy (the node gets no more answers under it)')
    .argument('<id>', 'policy id')
    .action(async (id: string) => {
      await ctx.client().deletePolicy(id);
      ctx.output().result({ deleted: id }, () => `deleted policy ${id}`);
    });
}
