/**
 * Grant repository (PostgreSQL): oidc-provider's Grant model, i.e. a user's consent to a
 * client. Durable so consent survives sessions, restarts and Redis loss; the row is the
 * authority on whether a grant still exists.
 */
import type { AdapterPayload } from 'oidc-provider';
import type { PrismaClient } from './database.js';
import type { Prisma } from '../generated/prisma/client.js';

export class GrantRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const expiresAt = new Date(Date.now() + expiresIn * 1000);
    const data = {
      accountId: String(payload.accountId),
      clientId: String(payload.clientId),
      payload: payload as Prisma.InputJsonObject,
      expiresAt,
    };
    await this.prisma.grant.upsert({ where: { id }, create: { id, ...data }, update: data });
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    const row = await this.prisma.grant.findUnique({ where: { id } });
    if (!row || row.expiresAt.getTime() <= Date.now()) return undefined;
    return row.payload as AdapterPayload;
  }

  /** The newest live grant of an account to a client, for skipping consent on a later visit. */
  async findLatestFor(accountId: string, clientId: string): Promise<string | undefined> {
    const row = await this.prisma.grant.findFirst({
      where: { accountId, clientId, expiresAt: { gt: new Date() } },
      orderBy: { updatedAt: 'desc' },
      select: { id: true },
    });
    return row?.id;
  }

  /** Every grant of an account, optionally to one client (live or not: revoking must reach all). */
  async idsFor(accountId: string, clientId?: string): Promise<string[]> {
    const rows = await this.prisma.grant.findMany({ where: { accountId, ...(clientId ? { clientId } : {}) }, select: { id: true } });
    return rows.map((r) => r.id);
  }

  /** The live grants of an account, for listing consents. */
  async listFor(accountId: string): Promise<Array<{ id: string; clientId: string; createdAt: Date; expiresAt: Date; payload: AdapterPayload }>> {
    const rows = await this.prisma.grant.findMany({ where: { accountId, expiresAt: { gt: new Date() } }, orderBy: { createdAt: 'asc' } });
    return rows.map((r) => ({ id: r.id, clientId: r.clientId, createdAt: r.createdAt, expiresAt: r.expiresAt, payload: r.payload as AdapterPayload }));
  }

  /** The user claims consented for `resource` under a grant; undefined when never consented. */
  async apiConsent(grantId: string, resource: string): Promise<string[] | undefined> {
    const row = await this.prisma.grantApiConsent.findUnique({ where: { grantId_resource: { grantId, resource } }, select: { claims: true } });
    return row?.claims;
  }

  /** Records consent to give `resource` these user claims under a grant (replacing what was consented before). */
  async recordApiConsent(grantId: string, resource: string, claims: readonly string[]): Promise<void> {
    const data = { claims: [...claims] };
    await this.prisma.grantApiConsent.upsert({ where: { grantId_resource: { grantId, resource } }, create: { grantId, resource, ...data }, update: data });
  }

  async destroy(id: string): Promise<void> {
    await this.prisma.grant.deleteMany({ where: { id } });
  }

  async destroyForClient(clientId: string): Promise<void> {
    await this.prisma.grant.deleteMany({ where: { clientId } });
  }
}
