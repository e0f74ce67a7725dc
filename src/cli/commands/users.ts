/** `veil users ...`: end-user accounts. */
import { type Command, Option } from 'commander';
import type { CliContext } from '../context.js';
import type { User } from '../admin-client.js';
import { CliError } from '../errors.js';

interface CreateOptions {
  email: string;
  password?: string;
  passwordStdin?: boolean;
  name?: string;
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
    .action(async (opts: CreateOptions, cmd: Command) => {
      let password = opts.password;
      if (opts.passwordStdin) password = stripOneNewline(await ctx.io.readStdin());
      if (password === undefined) cmd.error("error: one of '--password <password>' or '--password-stdin' is required");

      const body = { email: opts.email, password, ...(opts.name !== undefined && { name: opts.name }) };
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
