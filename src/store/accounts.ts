/**
 * Account repository (PostgreSQL). Emails are stored normalised to lower case (they are the
 * look-up key); names, which nothing looks up, are sealed under the master key.
 */
import { randomUUID } from 'node:crypto';
import type { Envelope } from '../crypto/master-key.js';
import type { PrismaClient } from './database.js';
import type { Account } from '../generated/prisma/client.js';
import { VeilError } from '../errors/veil-error.js';
import { UniqueViolation } from './errors.js';
import { AccountAttributeRepository } from './account-attributes.js';

export interface AccountRecord {
  id: string;
  email: string;
  passwordHash: string;
  name: string | null;
  emailVerified: boolean;
  disabled: boolean;
  createdAt: Date;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class DuplicateAccountError extends VeilError {
  constructor(message: string, cause?: unknown) {
    super('conflict', message, { cause });
  }
}

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

export class AccountRepository {
  /** The accounts' attributes (values sealed like names). */
  readonly attributes: AccountAttributeRepository;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly envelope: Envelope,
  ) {
    this.attributes = new AccountAttributeRepository(prisma, envelope);
  }

  #record(row: Account): AccountRecord;
  #record(row: Account | null): AccountRecord | null;
  #record(row: Account | null): AccountRecord | null {
    if (!row) return null;
    const name = this.envelope.isSealed(row.name) ? this.envelope.open(row.name, 'personal-data', row.id) : row.name;
    return { id: row.id, email: row.email, passwordHash: row.passwordHash, name, emailVerified: row.emailVerified, disabled: row.disabled, createdAt: row.createdAt };
  }

  /** With its attributes, if given, in the same statement: all or nothing. */
  async create(input: { email: string; passwordHash: string; name?: string | null; emailVerified?: boolean; attributes?: ReadonlyMap<string, bigint> }): Promise<AccountRecord> {
    const id = randomUUID();
    const attributes = [...(input.attributes ?? [])].map(([name, value]) => ({ name, value: this.attributes.sealValue(id, name, value) }));
    try {
      return this.#record(
        await this.prisma.account.create({
          data: {
            id,
            email: normaliseEmail(input.email),
            passwordHash: input.passwordHash,
            name: input.name ? this.envelope.seal(input.name, 'personal-data', id) : null,
            emailVerified: input.emailVerified ?? false,
            ...(attributes.length ? { attributes: { create: attributes } } : {}),
          },
        }),
      );
    } catch (err) {
      if (err instanceof UniqueViolation) throw new DuplicateAccountError('an account with this email already exists', err);
      throw err;
    }
  }

  async findById(id: string): Promise<AccountRecord | null> {
    // Ids arrive from sessions and tokens; anything that is not a UUID cannot match.
    if (!UUID.test(id)) return null;
    return this.#record(await this.prisma.account.findUnique({ where: { id } }));
  }

  async findByEmail(email: string): Promise<AccountRecord | null> {
    return this.#record(await this.prisma.account.findUnique({ where: { email: normaliseEmail(email) } }));
  }

  async list(): Promise<AccountRecord[]> {
    return (await this.prisma.account.findMany({ orderBy: { createdAt: 'asc' } })).map((row) => this.#record(row));
  }

  /** Re-seals every name and attribute value under the current master key; returns how many rows changed. */
  async reseal(): Promise<number> {
    return (await this.#resealNames()) + (await this.attributes.reseal());
  }

  async #resealNames(): Promise<number> {
    let changed = 0;
    for (const row of await this.prisma.account.findMany({ where: { name: { not: null } } })) {
      if (this.envelope.isSealed(row.name) && !this.envelope.isStale(row.name)) continue;
      const name = this.#record(row).name!;
      await this.prisma.account.update({ where: { id: row.id }, data: { name: this.envelope.seal(name, 'personal-data', row.id) } });
      changed++;
    }
    return changed;
  }

  count(): Promise<number> {
    return this.prisma.account.count();
  }

  /** Null when there is no account with this id. */
  async setDisabled(id: string, disabled: boolean): Promise<AccountRecord | null> {
    if (!UUID.test(id)) return null;
    const result = await this.prisma.account.updateMany({ where: { id }, data: { disabled } });
    return result.count ? this.findById(id) : null;
  }

  async updatePasswordHash(id: string, passwordHash: string): Promise<void> {
    await this.prisma.account.update({ where: { id }, data: { passwordHash } });
  }
}
