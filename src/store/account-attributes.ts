/**
 * Account attribute rows (PostgreSQL): one row per (account, name), the integer value sealed
 * under the master key (purpose personal-data, bound to the account id and the name, so a value
 * cannot be moved to another account or attribute). Names are not secret; values are.
 */
import type { Envelope } from '../crypto/master-key.js';
import type { PrismaClient } from './database.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The sealing context of one value. */
export const attributeContext = (accountId: string, name: string) => `${accountId}/attribute/${name}`;

export class AccountAttributeRepository {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly envelope: Envelope,
  ) {}

  /** The sealed form of a value, for writes that create the account at the same time. */
  sealValue(accountId: string, name: string, value: bigint): string {
    return this.envelope.seal(value.toString(), 'personal-data', attributeContext(accountId, name));
  }

  async get(accountId: string): Promise<Map<string, bigint>> {
    if (!UUID.test(accountId)) return new Map();
    const rows = await this.prisma.accountAttribute.findMany({ where: { accountId }, select: { name: true, value: true } });
    return new Map(rows.map((row) => [row.name, BigInt(this.envelope.open(row.value, 'personal-data', attributeContext(accountId, row.name)))]));
  }

  async set(accountId: string, name: string, value: bigint): Promise<void> {
    const sealed = this.sealValue(accountId, name, value);
    await this.prisma.accountAttribute.upsert({
      where: { accountId_name: { accountId, name } },
      create: { accountId, name, value: sealed },
      update: { value: sealed },
    });
  }

  /** False when the account had no such attribute. */
  async delete(accountId: string, name: string): Promise<boolean> {
    if (!UUID.test(accountId)) return false;
    return (await this.prisma.accountAttribute.deleteMany({ where: { accountId, name } })).count > 0;
  }

  /** Re-seals every value under the current master key; returns how many rows changed. */
  async reseal(): Promise<number> {
    let changed = 0;
    for (const row of await this.prisma.accountAttribute.findMany()) {
      if (!this.envelope.isStale(row.value)) continue;
      const context = attributeContext(row.accountId, row.name);
      const value = this.envelope.seal(this.envelope.open(row.value, 'personal-data', context), 'personal-data', context);
      await this.prisma.accountAttribute.update({ where: { accountId_name: { accountId: row.accountId, name: row.name } }, data: { value } });
      changed++;
    }
    return changed;
  }
}
