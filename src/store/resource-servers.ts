/** Resource server (API) registry (PostgreSQL). The identifier is the RFC 8707 resource URI and the token audience. */
import type { Prisma } from '../generated/prisma/client.js';
import { storableKey, type PrismaClient } from './database.js';

/** What `sub` an API's tokens carry for a user: its own pairwise value, or the account id. */
export const SUBJECT_MODES = ['pairwise', 'public'] as const;
export type SubjectMode = (typeof SUBJECT_MODES)[number];

export interface ResourceServerRecord {
  identifier: string;
  name: string;
  scopes: string[];
  accessTokenTtl: number;
  /** Public encryption JWK (with kid), when the key is given inline. */
  encryptionJwk: Record<string, unknown> | null;
  /** The resource server's JWK Set URL, when Veil fetches its key. */
  jwksUri: string | null;
  encryptionAlg: string;
  encryptionEnc: string;
  /** User claims its access tokens may carry. */
  claims: string[];
  /** Account attributes its tokens carry Paillier-encrypted in `hec` (oidc/he-claims.ts). */
  heClaims: string[];
  introspectionClientId: string | null;
  introspectionSecretHash: string | null;
  subjectMode: SubjectMode;
  /** Since when its issued tokens are noted in the audience-expiry marker; null: since it was created. */
  tokensNotedSince?: Date | null;
}

type Row = Omit<ResourceServerRecord, 'encryptionJwk' | 'subjectMode'> & { encryptionJwk: Prisma.JsonValue | null; subjectMode: string };

// The column's CHECK constraint admits only the two modes.
const toRecord = (row: Row | null): ResourceServerRecord | null =>
  row && { ...row, encryptionJwk: (row.encryptionJwk as Record<string, unknown> | null) ?? null, subjectMode: row.subjectMode as SubjectMode };

const SELECT = {
  identifier: true,
  name: true,
  scopes: true,
  accessTokenTtl: true,
  encryptionJwk: true,
  jwksUri: true,
  encryptionAlg: true,
  encryptionEnc: true,
  claims: true,
  heClaims: true,
  introspectionClientId: true,
  introspectionSecretHash: true,
  subjectMode: true,
  tokensNotedSince: true,
} as const;

export class ResourceServerRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async find(identifier: string): Promise<ResourceServerRecord | null> {
    if (!storableKey(identifier)) return null;
    return toRecord(await this.prisma.resourceServer.findUnique({ where: { identifier }, select: SELECT }));
  }

  async findByIntrospectionClientId(clientId: string): Promise<ResourceServerRecord | null> {
    if (!storableKey(clientId)) return null;
    return toRecord(await this.prisma.resourceServer.findUnique({ where: { introspectionClientId: clientId }, select: SELECT }));
  }

  async create(record: ResourceServerRecord): Promise<ResourceServerRecord> {
    const data = { ...record, encryptionJwk: (record.encryptionJwk ?? undefined) as Prisma.InputJsonObject | undefined };
    return toRecord(await this.prisma.resourceServer.create({ data, select: SELECT }))!;
  }

  /** Changes the subject mode; null when there is no such resource server. */
  async setSubjectMode(identifier: string, subjectMode: SubjectMode): Promise<ResourceServerRecord | null> {
    if (!storableKey(identifier)) return null;
    const { count } = await this.prisma.resourceServer.updateMany({ where: { identifier }, data: { subjectMode } });
    return count ? this.find(identifier) : null;
  }

  /** Replaces its `he_claims`; null when there is no such resource server. */
  async setHeClaims(identifier: string, heClaims: string[]): Promise<ResourceServerRecord | null> {
    if (!storableKey(identifier)) return null;
    const { count } = await this.prisma.resourceServer.updateMany({ where: { identifier }, data: { heClaims } });
    return count ? this.find(identifier) : null;
  }

  async list(): Promise<ResourceServerRecord[]> {
    const rows = await this.prisma.resourceServer.findMany({ orderBy: { createdAt: 'asc' }, select: SELECT });
    return rows.map((row) => toRecord(row)!);
  }

  async delete(identifier: string): Promise<boolean> {
    return (await this.prisma.resourceServer.deleteMany({ where: { identifier } })).count > 0;
  }
}
