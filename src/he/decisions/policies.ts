/**
 * Confidential-claim policies: a node (a confidential client) registered for one claim and one
 * operation. Without a policy a node gets no decision and no aggregate, so the registry is the
 * first limit on what any node can learn: only the claim and the comparison an administrator
 * agreed to. The node's threshold is not part of the policy (it stays with the node).
 */
import { randomBytes } from 'node:crypto';
import { ATTRIBUTE_NAMES } from '../../accounts/attribute-catalogue.js';
import { VeilError } from '../../errors/veil-error.js';
import type { EventSink } from '../../events/domain-events.js';
import type { ClientRepository } from '../../store/clients.js';
import type { HePolicyKind, HePolicyOp, HePolicyRecord, HePolicyRepository } from '../../store/he-policies.js';

export type { HePolicyKind, HePolicyOp, HePolicyRecord };

export const DECISION_OPS = ['gte', 'lte', 'gt', 'lt'] as const satisfies readonly HePolicyOp[];
export const AGGREGATE_OPS = ['sum'] as const satisfies readonly HePolicyOp[];
/** An id an administrator may choose (referred to by gate configurations), else a random one. */
export const POLICY_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface CreatePolicyInput {
  id?: string | undefined;
  node: string;
  claim: string;
  kind: HePolicyKind;
  op: HePolicyOp;
  purpose: string;
}

/** The admin API's shape of a policy (docs/CONFIDENTIAL_CLAIMS.md). */
export interface PublicPolicy {
  id: string;
  node: string;
  claim: string;
  kind: HePolicyKind;
  op: HePolicyOp;
  purpose: string;
  created_at: string;
}

export const toPublicPolicy = (p: HePolicyRecord): PublicPolicy => ({
  id: p.id,
  node: p.clientId,
  claim: p.claim,
  kind: p.kind,
  op: p.op,
  purpose: p.purpose,
  created_at: p.createdAt.toISOString(),
});

export class HePolicyService {
  constructor(
    private readonly policies: HePolicyRepository,
    private readonly clients: Pick<ClientRepository, 'find'>,
    private readonly events: EventSink,
  ) {}

  async create(input: CreatePolicyInput): Promise<HePolicyRecord> {
    const ops: readonly string[] = input.kind === 'decision' ? DECISION_OPS : AGGREGATE_OPS;
    if (!ops.includes(input.op)) throw new VeilError('invalid_input', `op: a ${input.kind} policy takes ${ops.join(', ')}`);
    if (!ATTRIBUTE_NAMES.includes(input.claim)) throw new VeilError('invalid_input', `claim: not a confidential claim (one of ${ATTRIBUTE_NAMES.join(', ')})`);
    if (input.id !== undefined && !POLICY_ID.test(input.id)) throw new VeilError('invalid_input', 'id: lower-case letters, digits, ".", "_" and "-", at most 64');
    const client = await this.clients.find(input.node);
    if (!client) throw new VeilError('invalid_input', 'node: no such client');
    // A public client proves nothing by naming itself: anyone could spend its budgets.
    if ((client.token_endpoint_auth_method ?? 'client_secret_basic') === 'none') throw new VeilError('invalid_input', 'node: must be a confidential client');
    const id = input.id ?? `pol_${randomBytes(12).toString('base64url')}`;
    if (await this.policies.find(id)) throw new VeilError('conflict', 'a policy with this id exists');
    let record: HePolicyRecord;
    try {
      record = await this.policies.create({ id, clientId: input.node, claim: input.claim, kind: input.kind, op: input.op, purpose: input.purpose });
    } catch (err) {
      // Two creations of one id at once: the primary key decides.
      if ((err as { code?: string }).code === 'P2002') throw new VeilError('conflict', 'a policy with this id exists');
      throw err;
    }
    await this.events.emit({ type: 'policy.created', clientId: record.clientId, policy: record.id, claim: record.claim, kind: record.kind, op: record.op });
    return record;
  }

  find(id: string): Promise<HePolicyRecord | undefined> {
    return this.policies.find(id);
  }

  list(node?: string): Promise<HePolicyRecord[]> {
    return this.policies.list(node);
  }

  async delete(id: string): Promise<boolean> {
    const record = await this.policies.find(id);
    if (!record || !(await this.policies.delete(id))) return false;
    await this.events.emit({ type: 'policy.deleted', clientId: record.clientId, policy: record.id });
    return true;
  }
}
