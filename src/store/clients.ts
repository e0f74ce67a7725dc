/**
 * Client repository (PostgreSQL). Metadata is kept in oidc-provider's (RFC 7591) shape, except
 * that `client_secret` is stored sealed under the master key (bound to the client id): a dump
 * or backup of the table yields no usable secret. oidc-provider needs the secret itself to
 * check client_secret_basic/post, so it is encrypted rather than hashed.
 */
import type { ClientMetadata } from 'oidc-provider';
import type { Envelope } from '../crypto/master-key.js';
import { storableKey, type PrismaClient } from './database.js';
import type { Prisma } from '../generated/prisma/client.js';

export interface ClientRecord {
  clientId: string;
  metadata: ClientMetadata;
  createdAt: Date;
}

export class ClientRepository {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly envelope: Envelope,
  ) {}

  #sealed(metadata: ClientMetadata): ClientMetadata {
    const secret = metadata.client_secret;
    return typeof secret === 'string' ? { ...metadata, client_secret: this.envelope.seal(secret, 'client-secrets', metadata.client_id) } : metadata;
  }

  #opened(metadata: ClientMetadata): ClientMetadata {
    const secret = metadata.client_secret;
    // Rows written before secrets were sealed still load; `veil keys rotate-master` seals them.
    return this.envelope.isSealed(secret) ? { ...metadata, client_secret: this.envelope.open(secret, 'client-secrets', metadata.client_id) } : metadata;
  }

  async create(metadata: ClientMetadata): Promise<ClientRecord> {
    const row = await this.prisma.client.create({
      data: { clientId: metadata.client_id, metadata: this.#sealed(metadata) as Prisma.InputJsonObject },
    });
    return { clientId: row.clientId, metadata: this.#opened(row.metadata as ClientMetadata), createdAt: row.createdAt };
  }

  async find(clientId: string): Promise<ClientMetadata | undefined> {
    if (!storableKey(clientId)) return undefined;
    const row = await this.prisma.client.findUnique({ where: { clientId } });
    return row ? this.#opened(row.metadata as ClientMetadata) : undefined;
  }

  async findRecord(clientId: string): Promise<ClientRecord | undefined> {
    if (!storableKey(clientId)) return undefined;
    const row = await this.prisma.client.findUnique({ where: { clientId } });
    return row ? { clientId: row.clientId, metadata: this.#opened(row.metadata as ClientMetadata), createdAt: row.createdAt } : undefined;
  }

  /** Replaces a client's metadata (the id stays); undefined when there is no such client. */
  async update(clientId: string, metadata: ClientMetadata): Promise<ClientRecord | undefined> {
    if (!storableKey(clientId)) return undefined;
    const result = await this.prisma.client.updateMany({ where: { clientId }, data: { metadata: this.#sealed(metadata) as Prisma.InputJsonObject } });
    if (result.count === 0) return undefined;
    return this.findRecord(clientId);
  }

  async list(): Promise<ClientRecord[]> {
    const rows = await this.prisma.client.findMany({ orderBy: { createdAt: 'asc' } });
    return rows.map((row) => ({ clientId: row.clientId, metadata: this.#opened(row.metadata as ClientMetadata), createdAt: row.createdAt }));
  }

  /** Re-seals every secret under the current master key; returns how many rows changed. */
  async reseal(): Promise<number> {
    let changed = 0;
    for (const row of await this.prisma.client.findMany()) {
      const metadata = row.metadata as ClientMetadata;
      const secret = metadata.client_secret;
      if (typeof secret !== 'string' || (this.envelope.isSealed(secret) && !this.envelope.isStale(secret))) continue;
      await this.prisma.client.update({ where: { clientId: row.clientId }, data: { metadata: this.#sealed(this.#opened(metadata)) as Prisma.InputJsonObject } });
      changed++;
    }
    return changed;
  }

  async delete(clientId: string): Promise<boolean> {
    const result = await this.prisma.client.deleteMany({ where: { clientId } });
    return result.count > 0;
  }

  async count(): Promise<number> {
    return this.prisma.client.count();
  }
}
