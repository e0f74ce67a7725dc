/** Account repository (PostgreSQL). Emails are stored normalised to lower case. */
import { randomUUID } from 'node:crypto';
import type { PrismaClient } from './database.js';

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

export class DuplicateAccountError extends Error {
  override name = 'DuplicateAccountError';
}

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

export class AccountRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async create(input: { email: string; passwordHash: string; name?: string | null; emailVerified?: boolean }): Promise<AccountRecord> {
    try {
      return await this.prisma.account.create({
        data: {
          id: randomUUID(),
          email: normaliseEmail(input.email),
          passwordHash: input.passwordHash,
          name: input.name ?? null,
          emailVerified: input.emailVerified ?? false,
        },
      });
    } catch (err) {
      if ((err as { code?: string }).code === 'P2002') throw new DuplicateAccountError('an account with this email already exists');
      throw err;
    }
  }

  async findById(id: string): Promise<AccountRecord | null> {
    // Ids arrive from sessions and tokens; anything that is not a UUID cannot match.
    if (!UUID.test(id)) return null;
    return this.prisma.account.findUnique({ where: { id } });
  }

  findByEmail(email: string): Promise<AccountRecord | null> {
    return this.prisma.account.findUnique({ where: { email: normaliseEmail(email) } });
  }

  list(): Promise<AccountRecord[]> {
    return this.prisma.account.findMany({ orderBy: { createdAt: 'asc' } });
  }

  count(): Promise<number> {
    return this.prisma.account.count();
  }

  async setDisabled(email: string, disabled: boolean): Promise<AccountRecord | null> {
    const result = await this.prisma.account.updateMany({ where: { email: normaliseEmail(email) }, data: { disabled } });
    return result.count ? this.findByEmail(email) : null;
  }

  async updatePasswordHash(id: string, passwordHash: string): Promise<void> {
    await this.prisma.account.update({ where: { id }, data: { passwordHash } });
  }
}
