/**
 * Confidential-claim policy rows (PostgreSQL, `he_policies`): which node may ask for which
 * decision or aggregate over which claim. A row goes with its client (foreign key, cascade).
 */
import { storableKey, type PrismaClient } from './database.js';

export type HePolicyKind = 'decision' | 'aggregate';
export type HePolicyOp = 'gte' | 'lte' | 'gt' | 'lt' | 'sum';

export interface HePolicyRecord {
  id: string;
  /** The node: a confidential client's id. */
  clientId: string;
  claim: string;
  kind: HePolicyKind;
  op: HePolicyOp;
  purpose: string;
  createdAt: Date;
}

const SELECT = { id: true, clientId: true, claim: true, kind: true, op: true, purpose: true, createdAt: true } as const;

type Row = Omit<HePolicyRecord, 'kind' | 'op'> & { kind: string; op: string };
// Rows are only written through create(), whose input is typed: the casts restore those types.
const toRecord = (row: Row): HePolicyRecord => ({ ...row, kind: row.kind as HePolicyKind, op: row.op as HePolicyOp });

export class HePolicyRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async create(record: Omit<HePolicyRecord, 'createdAt'>): Promise<HePolicyRecord> {
    return toRecord(await this.prisma.hePolicy.create({ data: record, select: SELECT }));
  }

  async find(id: string): Promise<HePolicyRecord | undefined> {
    if (!storableKey(id)) return undefined;
    const row = await this.prisma.hePolicy.findUnique({ where: { id }, select: SELECT });
    return row ? toRecord(row) : undefined;
  }

  /** Every policy, or one node's, oldest first. */
  async list(clientId?: string): Promise<HePolicyRecord[]> {
    if (clientId !== undefined && !storableKey(clientId)) return [];
    const rows = await this.prisma.hePolicy.findMany({ where: clientId === undefined ? {} : { clientId }, orderBy: { createdAt: 'asc' }, select: SELECT });
    return rows.map(toRecord);
  }

  async delete(id: string): Promise<boolean> {
    if (!storableKey(id)) return false;
    return (await this.prisma.hePolicy.deleteMany({ where: { id } })).count > 0;
  }
}
