/**
 * Account domain: authentication (constant-shape, argon2id, transparent rehash), creation and
 * the OIDC claims an account exposes. Routes and the admin API call this, never the repository.
 */
import { LRUCache } from 'lru-cache';
import type { Account, AccountClaims, FindAccount } from 'oidc-provider';
import { type AccountRepository, normaliseEmail, type AccountRecord } from '../store/accounts.js';
import type { InvalidationBus } from '../store/invalidation.js';
import type { PasswordHasher } from './passwords.js';
import { VeilError } from '../errors/veil-error.js';
import { NO_EVENTS, type EventSink } from '../events/domain-events.js';
import { derivedValues, parseAttributes, parseAttributeValue, selectValues } from './attributes.js';

export const MAX_PASSWORD_LENGTH = 1024; // bounds argon2 input; far above any real passphrase
export const MIN_PASSWORD_LENGTH = 8;

export class InvalidAccountInput extends VeilError {
  constructor(message: string) {
    super('invalid_input', message);
  }
}

export interface PublicAccount {
  id: string;
  email: string;
  name: string | null;
  email_verified: boolean;
  disabled: boolean;
  created_at: string;
}

/** An account's attributes as the operator sees them: the stored ones and what they derive. */
export interface AccountAttributes {
  stored: Map<string, bigint>;
  derived: Map<string, bigint>;
}

export function toPublicAccount(a: AccountRecord): PublicAccount {
  return {
    id: a.id,
    email: a.email,
    name: a.name,
    email_verified: a.emailVerified,
    disabled: a.disabled,
    created_at: a.createdAt.toISOString(),
  };
}

const EMAIL_PATTERN = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export class AccountService {
  /**
   * Accounts by id, for the hot paths (every refresh and introspection of a user's token asks
   * whether the account still stands). Bounded, short-lived, and dropped in every process when
   * an account is disabled or enabled; without a bus (tests), nothing is cached.
   */
  readonly #byId: LRUCache<string, { record: AccountRecord | null }> | undefined;

  constructor(
    private readonly accounts: AccountRepository,
    private readonly hasher: PasswordHasher,
    private readonly bus?: InvalidationBus,
    /** user.created / disabled / enabled, after the change is stored. */
    private readonly events: EventSink = NO_EVENTS,
  ) {
    if (!bus) return;
    const cache = new LRUCache<string, { record: AccountRecord | null }>({ max: 10_000, ttl: 30_000 });
    this.#byId = cache;
    bus.subscribe((topic, key) => {
      if (topic === 'all') cache.clear();
      else if (topic === 'account') cache.delete(key);
    });
  }

  async #findById(id: string): Promise<AccountRecord | null> {
    const hit = this.#byId?.get(id);
    if (hit) return hit.record;
    const record = await this.accounts.findById(id);
    this.#byId?.set(id, { record });
    return record;
  }

  /** `attributes`: name → integer (or decimal string), all checked before anything is stored. */
  async create(input: { email: string; password: string; name?: string | null; emailVerified?: boolean; attributes?: Record<string, unknown> }): Promise<AccountRecord> {
    const attributes = parseAttributes(input.attributes ?? {});
    const email = normaliseEmail(input.email ?? '');
    if (!EMAIL_PATTERN.test(email) || email.length > 320) throw new InvalidAccountInput('email is not a valid address');
    if (typeof input.password !== 'string' || input.password.length < MIN_PASSWORD_LENGTH) {
      throw new InvalidAccountInput(`password must be at least ${MIN_PASSWORD_LENGTH} characters`);
    }
    if (input.password.length > MAX_PASSWORD_LENGTH) throw new InvalidAccountInput('password is too long');
    const passwordHash = await this.hasher.hash(input.password);
    const account = await this.accounts.create({ email, passwordHash, name: input.name ?? null, emailVerified: input.emailVerified, attributes });
    await this.events.emit({ type: 'user.created', accountId: account.id });
    return account;
  }

  /**
   * Returns the account id on success, undefined otherwise. Unknown, disabled and wrong-password
   * cases all do one argon2 verification, so they take about the same time.
   */
  async authenticate(email: string, password: string): Promise<string | undefined> {
    if (!email || !password || password.length > MAX_PASSWORD_LENGTH) {
      await this.hasher.verifyAgainstDummy(password.slice(0, MAX_PASSWORD_LENGTH));
      return undefined;
    }
    const account = await this.accounts.findByEmail(email);
    if (!account || account.disabled) {
      await this.hasher.verifyAgainstDummy(password);
      return undefined;
    }
    if (!(await this.hasher.verify(account.passwordHash, password))) return undefined;
    if (this.hasher.needsRehash(account.passwordHash)) {
      await this.accounts.updatePasswordHash(account.id, await this.hasher.hash(password));
    }
    return account.id;
  }

  list() {
    return this.accounts.list();
  }

  /** For the admin API: read through, never from the cache. */
  get(id: string): Promise<AccountRecord | null> {
    return this.accounts.findById(id);
  }

  findByEmail(email: string): Promise<AccountRecord | null> {
    return this.accounts.findByEmail(email);
  }

  /** The account as shown on Veil's own pages; undefined when unknown or disabled. */
  async profile(id: string): Promise<PublicAccount | undefined> {
    const account = await this.#findById(id);
    return account && !account.disabled ? toPublicAccount(account) : undefined;
  }

  /** Null when there is no account with this id. */
  async setDisabled(id: string, disabled: boolean) {
    const account = await this.accounts.setDisabled(id, disabled);
    if (account) {
      // Here at once (delivery is asynchronous), then everywhere else.
      this.#byId?.delete(account.id);
      await this.bus?.publish('account', account.id);
      await this.events.emit({ type: disabled ? 'user.disabled' : 'user.enabled', accountId: account.id });
    }
    return account;
  }

  /** Null when there is no account with this id. */
  async attributes(id: string): Promise<AccountAttributes | null> {
    if (!(await this.accounts.findById(id))) return null;
    const stored = await this.accounts.attributes.get(id);
    return { stored, derived: derivedValues(stored) };
  }

  /** Checks the value (a refusal stores nothing), then sets it; null when there is no account. */
  async setAttribute(id: string, name: string, raw: unknown): Promise<AccountAttributes | null> {
    const value = parseAttributeValue(name, raw);
    if (!(await this.accounts.findById(id))) return null;
    await this.accounts.attributes.set(id, name, value);
    await this.events.emit({ type: 'user.attribute_set', accountId: id, name });
    return this.attributes(id);
  }

  /** Null when there is no account; false when it had no such attribute. */
  async deleteAttribute(id: string, name: string): Promise<boolean | null> {
    if (!(await this.accounts.findById(id))) return null;
    const deleted = await this.accounts.attributes.delete(id, name);
    if (deleted) await this.events.emit({ type: 'user.attribute_deleted', accountId: id, name });
    return deleted;
  }

  /**
   * The values of `names` (stored or derived) for a token being issued; names the account lacks
   * are left out. Read from the database every time: spend_this_month changes between tokens.
   */
  async valuesForToken(accountId: string, names: readonly string[]): Promise<Map<string, bigint>> {
    return selectValues(await this.accounts.attributes.get(accountId), names);
  }

  /** oidc-provider's findAccount: disabled accounts no longer resolve, ending their sessions and tokens. */
  readonly findAccount: FindAccount = async (_ctx, sub) => {
    const account = await this.#findById(sub);
    if (!account || account.disabled) return undefined;
    return {
      accountId: account.id,
      async claims(): Promise<AccountClaims> {
        return {
          sub: account.id,
          email: account.email,
          email_verified: account.emailVerified,
          ...(account.name ? { name: account.name } : {}),
        };
      },
    } satisfies Account;
  };
}
