/** `veil users ...`: end-user accounts. */
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { UserAttributes } from '../../admin/contract.js';
import type { CliContext } from '../context.js';
import type { User } from '../admin-client.js';
import { CliError } from '../errors.js';

interface CreateOptions {
  email: string;
  password?: string;
  passwordStdin?: boolean;
  name?: string;
  attribute?: Record<string, string>;
}

/** `--attribute name=value`, repeatable: collected into one object (values checked by the server). */
function collectAttribute(pair: string, previous: Record<string, string> = {}): Record<string, string> {
  const at = pair.indexOf('=');
  if (at <= 0) throw new InvalidArgumentError('must be name=value, e.g. age=34');
  const name = pair.slice(0, at).trim();
  if (Object.hasOwn(previous, name)) throw new InvalidArgumentError(`${name} is given twice`);
  return { ...previous, [name]: pair.slice(at + 1).trim() };
}

/** Stored attributes, then derived ones marked as such. */
function attributeLines(a: UserAttributes): string[] {
  const lines = [...Object.entries(a.attributes).map(([n, v]) => `${n} = ${v}`), ...Object.entries(a.derived).map(([n, v]) => `${n} = ${v} (derived)`)];
  return lines.length ? lines : ['no attributes'];
}

export function registerUsers(program: Command, ctx: CliContext): void {
  const users = program.command('users').description('manage user accounts');

  users
    .command('create')
    .description('create a user')
    .requiredOption('--email <email>', 'email address (the login name)')
    .option('--password <password>', 'password (visible in the process list and shell history: prefer --password-stdin)')
    .addOption(new Option('--password-stdin', 'read the password from stdin (one trailing newline is stripped)').conflicts('password'))
    .option('--name <name>', 'display name')
    .option('--attribute <name=value>', 'an integer attribute, e.g. age=34 (repeatable; see `users set-attribute`)', collectAttribute)
    .action(async (opts: CreateOptions, cmd: Command) => {
      let password = opts.password;
      if (opts.passwordStdin) password = stripOneNewline(await ctx.io.readStdin());
      if (password === undefined) cmd.error("error: one of '--password <password>' or '--password-stdin' is required");

      const body = { email: opts.email, password, ...(opts.name !== undefined && { name: opts.name }), ...(opts.attribute && { attributes: opts.attribute }) };
      const user = await ctx.client().createUser(body);
      ctx.output().result(user, () => `created user ${user.email} (${user.id})`);
    });

  users
    .command('list')
    .description('list users')
    .action(async () => {
      const list = await ctx.client().listUsers();
      ctx.output().list<User>('users', list, [
        { header: 'id', value: (u) => u.id },
        { header: 'email', value: (u) => u.email },
        { header: 'name', value: (u) => u.name },
        { header: 'disabled', value: (u) => u.disabled },
        { header: 'created_at', value: (u) => u.created_at },
      ]);
    });

  /** The id behind an address (the API addresses users by id). */
  const userId = async (email: string): Promise<string> => {
    const found = await ctx.client().findUserByEmail(email);
    if (!found) throw new CliError('not_found', 'no user with this email');
    return found.id;
  };

  users
    .command('set-attribute')
    .description('set an integer attribute of a user (age 0..150, spend_limit, spend_this_month in minor currency units)')
    .requiredOption('--email <email>', 'email address of the user')
    .requiredOption('--name <name>', 'attribute name')
    .requiredOption('--value <integer>', "the value (checked against the attribute's range)")
    .action(async (opts: { email: string; name: string; value: string }) => {
      const attributes = await ctx.client().setUserAttribute(await userId(opts.email), opts.name, opts.value);
      ctx.output().result(attributes, () => `set ${opts.name} for ${opts.email}`);
    });

  users
    .command('attributes')
    .description("show a user's attributes (stored and derived)")
    .requiredOption('--email <email>', 'email address of the user')
    .action(async (opts: { email: string }) => {
      const attributes = await ctx.client().getUserAttributes(await userId(opts.email));
      ctx.output().result(attributes, () => attributeLines(attributes));
    });

  users
    .command('delete-attribute')
    .description('delete an attribute of a user')
    .requiredOption('--email <email>', 'email address of the user')
    .requiredOption('--name <name>', 'attribute name')
    .action(async (opts: { email: string; name: string }) => {
      await ctx.client().deleteUserAttribute(await userId(opts.email), opts.name);
      ctx.output().result({ deleted: opts.name }, () => `deleted ${opts.name} of ${opts.email}`);
    });

  for (const disabled of [true, false]) {
    const verb = disabled ? 'disable' : 'enable';
    users
      .command(verb)
      .description(disabled ? 'disable a user (they can no longer sign in)' : 're-enable a disabled user')
      .requiredOption('--email <email>', 'email address of the user')
      .action(async (opts: { email: string }) => {
        // The API addresses users by id: look the address up first.
        const client = ctx.client();
        const found = await client.findUserByEmail(opts.email);
        if (!found) throw new CliError('not_found', 'no user with this email');
        const user = await client.setUserDisabled(found.id, disabled);
        ctx.output().result(user, () => `${verb}d user ${user.email}`);
      });
  }
}

/** Like `docker login --password-stdin`: `echo pw |` adds a newline that is not part of the password. */
export function stripOneNewline(text: string): string {
  if (text.endsWith('\r\n')) return text.slice(0, -2);
  if (text.endsWith('\n')) return text.slice(0, -1);
  return text;
}
