/**
 * `veil keys ...`: the signing-key lifecycle and the master key.
 *   list | rotate | retire KID   through the admin API of a running deployment (every process
 *                                picks the change up), or with --local directly on KEYS_DIR
 *   generate-master              prints a new master key
 *   rotate-master                re-seals everything at rest under the first of VEIL_MASTER_KEY="new,old"
 * Local commands read the same configuration as the server (.env, then the environment).
 */
import type { Command } from 'commander';
import type { PublicKeyInfo } from '../../admin/contract.js';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';
import { derivedLifetimes } from '../../config.js';

const KEY_COLUMNS = [
  { header: 'kid', value: (k: PublicKeyInfo) => k.kid },
  { header: 'alg', value: (k: PublicKeyInfo) => k.alg },
  { header: 'status', value: (k: PublicKeyInfo) => k.status },
  { header: 'created', value: (k: PublicKeyInfo) => k.created_at },
  { header: 'retire_after', value: (k: PublicKeyInfo) => k.retire_after },
];

/** Configuration, master key and key ring, loaded like the server does (lazily: HTTP commands never load them). */
async function local() {
  const { default: dotenv } = await import('dotenv');
  dotenv.config({ quiet: true });
  const { loadConfig } = await import('../../config.js');
  const { Envelope, loadMasterKeys } = await import('../../crypto/master-key.js');
  const ring = await import('../../crypto/key-ring.js');
  const { toKeyInfo } = await import('../../admin/contract.js');
  // ConfigError, MasterKeyError and KeyFileError are VeilErrors: cli/errors.ts reports them.
  const config = loadConfig();
  const master = await loadMasterKeys({ env: config.masterKey.value, file: config.masterKey.file, keysDir: config.keysDir, production: config.production });
  return { config, envelope: new Envelope(master.keys), ring, toKeyInfo };
}

export function registerKeys(program: Command, ctx: CliContext): void {
  const keys = program.command('keys').description('signing keys and the master key');

  keys
    .command('list')
    .description('list published signing keys (next, active, retiring)')
    .option('--local', 'read KEYS_DIR directly instead of asking the admin API')
    .action(async (opts: { local?: boolean }) => {
      let list: PublicKeyInfo[];
      if (opts.local) {
        const { config, ring, toKeyInfo } = await local();
        list = ((await ring.readKeyRing(config.keysDir))?.live() ?? []).map(toKeyInfo);
      } else {
        list = await ctx.client().listKeys();
      }
      ctx.output().list('keys', list, KEY_COLUMNS);
    });

  keys
    .command('rotate')
    .description('the next key of each algorithm starts signing; the active one keeps verifying until its tokens expire')
    .option('--alg <alg...>', 'only these algorithms (e.g. ES256)')
    .option('--local', 'rotate in KEYS_DIR directly (running processes notice within KEYS_RELOAD_SECONDS)')
    .action(async (opts: { alg?: string[]; local?: boolean }) => {
      let result: { activated: PublicKeyInfo[]; keys: PublicKeyInfo[] };
      if (opts.local) {
        const { config, envelope, ring, toKeyInfo } = await local();
        const graceSeconds = derivedLifetimes(config.ttl).signingKeyGrace;
        const rotated = await ring.rotateKeys(config.keysDir, envelope, { algs: opts.alg, graceSeconds });
        result = { activated: rotated.activated.map(toKeyInfo), keys: rotated.ring.live().map(toKeyInfo) };
      } else {
        result = await ctx.client().rotateKeys(opts.alg);
      }
      ctx.output().result(result, () => result.activated.map((k) => `now signing with ${k.alg} key ${k.kid}`));
    });

  keys
    .command('retire')
    .description('stop publishing a retiring key (refused before its tokens have expired unless --force)')
    .argument('<kid>', 'key id')
    .option('--force', 'retire it even though tokens it signed may still be live')
    .option('--local', 'work on KEYS_DIR directly')
    .action(async (kid: string, opts: { force?: boolean; local?: boolean }) => {
      let list: PublicKeyInfo[];
      if (opts.local) {
        const { config, ring, toKeyInfo } = await local();
        list = (await ring.retireKey(config.keysDir, kid, { force: opts.force })).live().map(toKeyInfo);
      } else {
        list = await ctx.client().retireKey(kid, opts.force === true);
      }
      ctx.output().result({ retired: kid, keys: list }, () => `retired ${kid}`);
    });

  keys
    .command('generate-master')
    .description('print a new master key (base64url, 32 bytes) for VEIL_MASTER_KEY or VEIL_MASTER_KEY_FILE')
    .action(async () => {
      const { generateMasterKey } = await import('../../crypto/master-key.js');
      const key = generateMasterKey();
      ctx.output().result({ master_key: key }, () => key);
    });

  keys
    .command('rotate-master')
    .description('re-seal signing keys, client secrets and names under the first master key of VEIL_MASTER_KEY="new,old"')
    .action(async () => {
      const { config, envelope, ring } = await local();
      if (envelope.keys.length < 2) {
        throw new CliError('invalid_input', 'give the new key first and the old one after it: VEIL_MASTER_KEY="new,old" (or the same in VEIL_MASTER_KEY_FILE)');
      }
      const { openDatabase } = await import('../../store/database.js');
      const { ClientRepository } = await import('../../store/clients.js');
      const { AccountRepository } = await import('../../store/accounts.js');
      const signingKeys = await ring.resealKeyRing(config.keysDir, envelope);
      const db = await openDatabase(config.database);
      let clients = 0;
      let accounts = 0;
      try {
        clients = await new ClientRepository(db.prisma, envelope).reseal();
        accounts = await new AccountRepository(db.prisma, envelope).reseal();
      } catch (err) {
        throw new CliError('store_unavailable', `cannot re-seal the database: ${(err as Error).message}`, { cause: err });
      } finally {
        await db.close();
      }
      ctx.output().result({ signing_keys: signingKeys, client_secrets: clients, account_names: accounts }, () => [
        `re-sealed ${signingKeys} signing keys, ${clients} client secrets, ${accounts} account names`,
        'Redis entries sealed under the old key expire by themselves: keep the old key configured until the longest of REFRESH_TOKEN_TTL and SESSION_TTL has passed, then drop it',
      ]);
    });
}
