/**
 * `veil keys ...`: the signing-key lifecycle and the master key.
 *   list | rotate | retire KID   through the admin API of a running deployment (every process
 *                                picks the change up), or with --local directly on the key
 *                                store (KEYS_STORE: KEYS_DIR or PostgreSQL)
 *   migrate-to-database          copies the ring, cookie keys and pairwise secret from KEYS_DIR into PostgreSQL
 *   generate-master              prints a new master key
 *   rotate-master                re-seals everything at rest under the first of VEIL_MASTER_KEY="new,old"
 * Local commands read the same configuration as the server (.env, then the environment).
 */
import type { Command } from 'commander';
import type { PublicKeyInfo } from '../../admin/contract.js';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';
import { derivedLifetimes, type VeilConfig } from '../../config.js';
import type { Envelope } from '../../crypto/master-key.js';
import type { Database } from '../../store/database.js';

const KEY_COLUMNS = [
  { header: 'kid', value: (k: PublicKeyInfo) => k.kid },
  { header: 'alg', value: (k: PublicKeyInfo) => k.alg },
  { header: 'status', value: (k: PublicKeyInfo) => k.status },
  { header: 'created', value: (k: PublicKeyInfo) => k.created_at },
  { header: 'retire_after', value: (k: PublicKeyInfo) => k.retire_after },
];

/**
 * Configuration, master key, database and key store, loaded like the server does (lazily: HTTP
 * commands never load them), for the length of `work`.
 */
async function local<T>(work: (deps: Awaited<ReturnType<typeof localDeps>>) => Promise<T>): Promise<T> {
  const deps = await localDeps();
  try {
    return await work(deps);
  } finally {
    await deps.db.close();
  }
}

async function localDeps() {
  const { default: dotenv } = await import('dotenv');
  dotenv.config({ quiet: true });
  const { loadConfig } = await import('../../config.js');
  const { Envelope, loadMasterKeys } = await import('../../crypto/master-key.js');
  const ring = await import('../../crypto/key-ring.js');
  const { openKeyStore } = await import('../../crypto/key-store.js');
  const { openDatabase } = await import('../../store/database.js');
  const { toKeyInfo } = await import('../../admin/contract.js');
  // ConfigError, MasterKeyError and KeyFileError are VeilErrors: cli/errors.ts reports them.
  const config = loadConfig();
  const master = await loadMasterKeys({ env: config.masterKey.value, file: config.masterKey.file, keysDir: config.keysDir, production: config.production });
  const envelope = new Envelope(master.keys);
  // Connects on first use only: KEYS_STORE=file never touches it.
  const db = await openDatabase(config.database);
  try {
    return { config, envelope, db, store: await openKeyStore(config, db, envelope), ring, toKeyInfo };
  } catch (err) {
    await db.close();
    throw err;
  }
}

/** `keys rotate --he`: a new Paillier key, the old one kept until its tokens have expired. */
async function rotateHeKeyLocally(config: VeilConfig, envelope: Envelope, db: Database) {
  const { openHeKeyStore } = await import('../../he/he-key-store.js');
  const { heKeyGraceSeconds, rotateHeKey } = await import('../../he/he-keys.js');
  const { activated, keys } = await rotateHeKey(openHeKeyStore(config, db), envelope, { bits: config.he.keyBits, graceSeconds: heKeyGraceSeconds(config.ttl) });
  const { toHeKeyInfo } = await import('../../admin/routes/he-keys.js');
  return { activated: toHeKeyInfo(activated), keys: keys.map(toHeKeyInfo) };
}

export function registerKeys(program: Command, ctx: CliContext): void {
  const keys = program.command('keys').description('signing keys and the master key');

  keys
    .command('list')
    .description('list published signing keys (next, active, retiring)')
    .option('--local', 'read the key store (KEYS_DIR or the database) directly instead of asking the admin API')
    .action(async (opts: { local?: boolean }) => {
      let list: PublicKeyInfo[];
      if (opts.local) {
        list = await local(async ({ store, ring, toKeyInfo }) => ((await ring.readKeyRing(store))?.live() ?? []).map(toKeyInfo));
      } else {
        list = await ctx.client().listKeys();
      }
      ctx.output().list('keys', list, KEY_COLUMNS);
    });

  keys
    .command('rotate')
    .description('the next key of each algorithm starts signing; the active one keeps verifying until its tokens expire')
    .option('--alg <alg...>', 'only these algorithms (e.g. ES256)')
    .option('--local', 'rotate in the key store directly (running processes notice within KEYS_RELOAD_SECONDS)')
    .option('--he', 'rotate the Paillier key of confidential claims instead (the old one is kept until its tokens have expired)')
    .action(async (opts: { alg?: string[]; local?: boolean; he?: boolean }) => {
      if (opts.he) {
        const he = opts.local ? await local(({ config, envelope, db }) => rotateHeKeyLocally(config, envelope, db)) : await ctx.client().rotateHeKey();
        ctx
          .output()
          .result(he, () => [
            `new HE key ${he.activated.kid} (${he.activated.bits} bits) is active`,
            ...he.keys.filter((k) => k.drop_after).map((k) => `${k.kid} kept until ${k.drop_after}`),
          ]);
        return;
      }
      let result: { activated: PublicKeyInfo[]; keys: PublicKeyInfo[] };
      if (opts.local) {
        result = await local(async ({ config, envelope, store, ring, toKeyInfo }) => {
          const graceSeconds = derivedLifetimes(config.ttl).signingKeyGrace;
          const rotated = await ring.rotateKeys(store, envelope, { algs: opts.alg, graceSeconds });
          return { activated: rotated.activated.map(toKeyInfo), keys: rotated.ring.live().map(toKeyInfo) };
        });
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
    .option('--local', 'work on the key store directly')
    .action(async (kid: string, opts: { force?: boolean; local?: boolean }) => {
      let list: PublicKeyInfo[];
      if (opts.local) {
        list = await local(async ({ store, ring, toKeyInfo }) => (await ring.retireKey(store, kid, { force: opts.force })).live().map(toKeyInfo));
      } else {
        list = await ctx.client().retireKey(kid, opts.force === true);
      }
      ctx.output().result({ retired: kid, keys: list }, () => `retired ${kid}`);
    });

  keys
    .command('migrate-to-database')
    .description(
      'copy the signing-key ring, cookie keys and pairwise-subject secret from KEYS_DIR into PostgreSQL for KEYS_STORE=database (never overwrites a different ring; the files stay)',
    )
    .action(async () => {
      const { default: dotenv } = await import('dotenv');
      dotenv.config({ quiet: true });
      const { loadConfig } = await import('../../config.js');
      const { Envelope, loadMasterKeys } = await import('../../crypto/master-key.js');
      const { checkOpens } = await import('../../crypto/key-ring.js');
      const { FileKeyStore } = await import('../../crypto/key-store-file.js');
      const { DatabaseKeyStore } = await import('../../crypto/key-store-database.js');
      const { readCookieKeysFile } = await import('../../crypto/keys.js');
      const { openDatabase } = await import('../../store/database.js');
      const config = loadConfig();
      const master = await loadMasterKeys({ env: config.masterKey.value, file: config.masterKey.file, keysDir: config.keysDir, production: config.production });
      const envelope = new Envelope(master.keys);
      const files = new FileKeyStore(config.keysDir);
      const ring = await files.read();
      if (!ring) throw new CliError('invalid_input', `${files.name} holds no key ring to move (start Veil once with KEYS_STORE=file, or set KEYS_DIR)`);
      // A ring the configured master key cannot open would stop every host: refuse it here.
      checkOpens(files.name, ring, envelope);
      const cookieKeys = await readCookieKeysFile(config.keysDir);
      // Moved sealed as it is (the database store opens it with the same master key and context).
      const pairwiseSecret = await files.readSealedPairwiseSecret();
      const db = await openDatabase(config.database);
      let outcome;
      try {
        outcome = await (await DatabaseKeyStore.open(db, envelope)).adopt(ring, cookieKeys, pairwiseSecret);
      } finally {
        await db.close();
      }
      const kids = ring.keys.map((k) => k.kid);
      ctx
        .output()
        .result({ signing_keys: outcome.ring, cookie_keys: outcome.cookieKeys, pairwise_secret: outcome.pairwiseSecret, kids }, () => [
          outcome.ring === 'copied' ? `copied ${kids.length} signing keys (${kids.join(', ')}) into the database` : 'the database already holds this key ring; nothing to copy',
          ...(outcome.cookieKeys === 'copied' ? ['copied the cookie keys into the database'] : []),
          ...(outcome.pairwiseSecret === 'copied' ? ['copied the pairwise-subject secret into the database (pairwise subjects stay the same)'] : []),
          'set KEYS_STORE=database on every host and restart them; the files in KEYS_DIR were left in place',
        ]);
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
    .description(
      're-seal signing keys (HE keys, cookie keys and the pairwise-subject secret included), client secrets and names under the first master key of VEIL_MASTER_KEY="new,old"',
    )
    .action(async () => {
      const { signingKeys, clients, accounts } = await local(async ({ config, envelope, db, store, ring }) => {
        if (envelope.keys.length < 2) {
          throw new CliError('invalid_input', 'give the new key first and the old one after it: VEIL_MASTER_KEY="new,old" (or the same in VEIL_MASTER_KEY_FILE)');
        }
        const { ClientRepository } = await import('../../store/clients.js');
        const { AccountRepository } = await import('../../store/accounts.js');
        const { openHeKeyStore } = await import('../../he/he-key-store.js');
        const { resealHeKeys } = await import('../../he/he-keys.js');
        const { resealPairwiseSecret } = await import('../../crypto/pairwise-secret.js');
        // The pairwise secret is re-sealed, never replaced: every pairwise subject stays the same.
        const signingKeys =
          (await ring.resealKeyRing(store, envelope)) +
          (await store.resealCookieKeys()) +
          (await resealPairwiseSecret(store, envelope)) +
          (await resealHeKeys(openHeKeyStore(config, db), envelope));
        try {
          const clients = await new ClientRepository(db.prisma, envelope).reseal();
          const accounts = await new AccountRepository(db.prisma, envelope).reseal();
          return { signingKeys, clients, accounts };
        } catch (err) {
          throw new CliError('store_unavailable', `cannot re-seal the database: ${(err as Error).message}`, { cause: err });
        }
      });
      ctx
        .output()
        .result({ signing_keys: signingKeys, client_secrets: clients, account_names: accounts }, () => [
          `re-sealed ${signingKeys} signing keys, ${clients} client secrets, ${accounts} account names`,
          'Redis entries sealed under the old key expire by themselves: keep the old key configured until the longest of REFRESH_TOKEN_TTL and SESSION_TTL has passed, then drop it',
        ]);
    });
}
