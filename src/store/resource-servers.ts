/** Resource server (API) registry (PostgreSQL). The identifier is the RFC 8707 resource URI and the token audience. */
import type { PrismaClient } from './database.js';

export interface ResourceServerRecord {
  identifier: string;
  name: string;
  scopes: string[];
  accessTokenTtl: number;
}

export class ResourceServerRepository {
  constructor(private readonly prisma: PrismaClient) {}

  find(identifier: string): Promise<ResourceServerRecord | null> {
    return this.prisma.resourceServer.findUnique({ where: { identifier } });
  }

  create(record: ResourceServerRecord): Promise<ResourceServerRecord> {
    return this.prisma.resourceServer.create({ data: record });
  }

  list(): Promise<ResourceServerRecord[]> {
    return this.prisma.resourceServer.findMany({ orderBy: { createdAt: 'asc' } });
  }

  async delete(identifier: string): Promise<boolean> {
    return (await this.prisma.resourceServer.deleteMany({ where: { identifier } })).count > 0;
  }
}
