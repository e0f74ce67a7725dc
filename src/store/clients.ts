/** Client repository (PostgreSQL). Metadata is kept in oidc-provider's (RFC 7591) shape. */
import type { ClientMetadata } from 'oidc-provider';
import type { PrismaClient } from './database.js';
import type { Prisma } from '../generated/prisma/client.js';

export interface ClientRecord {
  clientId: string;
  metadata: ClientMetadata;
  createdAt: Date;
}

export class ClientRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async create(metadata: ClientMetadata): Promise<ClientRecord> {
    const row = await this.prisma.client.create({
      data: { clientId: metadata.client_id, metadata: metadata as Prisma.InputJsonObject },
    });
    return { clientId: row.clientId, metadata: row.metadata as ClientMetadata, createdAt: row.createdAt };
  }

  async find(clientId: string): Promise<ClientMetadata | undefined> {
    const row = await this.prisma.client.findUnique({ where: { clientId } });
    return row ? (row.metadata as ClientMetadata) : undefined;
  }

  async list(): Promise<ClientRecord[]> {
    const rows = await this.prisma.client.findMany({ orderBy: { createdAt: 'asc' } });
    return rows.map((row) => ({ clientId: row.clientId, metadata: row.metadata as ClientMetadata, createdAt: row.createdAt }));
  }

  async delete(clientId: string): Promise<boolean> {
    const result = await this.prisma.client.deleteMany({ where: { clientId } });
    return result.count > 0;
  }

  async count(): Promise<number> {
    return this.prisma.client.count();
  }
}
