/**
 * The attribute catalogue: every account attribute Veil knows, each a typed integer with a
 * declared range. It is code, not configuration or a table, like the releasable user claims
 * (resource-registry/registry.ts): a name is a contract with the resource servers and policy
 * nodes that compare against it (a range is what a node's threshold and Veil's decision budgets
 * are reasoned about), so adding one is a reviewed change, not an operator's setting.
 *
 * Stored attributes are set by the operator (CLI, admin API); derived ones are computed at
 * issuance from stored ones and can never be set.
 */

export interface StoredAttribute {
  name: string;
  min: bigint;
  max: bigint;
  description: string;
}

export interface DerivedAttribute {
  name: string;
  min: bigint;
  max: bigint;
  description: string;
  /** The value from the stored ones, or undefined when what it needs is missing. */
  derive(stored: ReadonlyMap<string, bigint>): bigint | undefined;
}

/** 2^53 − 1: every value is also exact as a JSON number. */
const MAX_AMOUNT = BigInt(Number.MAX_SAFE_INTEGER);

export const STORED_ATTRIBUTES: readonly StoredAttribute[] = [
  { name: 'age', min: 0n, max: 150n, description: 'age in whole years' },
  { name: 'spend_limit', min: 0n, max: MAX_AMOUNT, description: 'monthly spending limit, in minor currency units' },
  { name: 'spend_this_month', min: 0n, max: MAX_AMOUNT, description: 'spent so far this month, in minor currency units' },
];

export const DERIVED_ATTRIBUTES: readonly DerivedAttribute[] = [
  {
    name: 'spend_headroom',
    min: -MAX_AMOUNT,
    max: MAX_AMOUNT,
    description: 'spend_limit − spend_this_month (negative when over the limit); needs spend_limit, nothing spent when spend_this_month is unset',
    derive: (stored) => {
      const limit = stored.get('spend_limit');
      return limit === undefined ? undefined : limit - (stored.get('spend_this_month') ?? 0n);
    },
  },
];

export const STORED_ATTRIBUTE_NAMES: readonly string[] = STORED_ATTRIBUTES.map((a) => a.name);
/** Every name a resource server's `he_claims` may list. */
export const ATTRIBUTE_NAMES: readonly string[] = [...STORED_ATTRIBUTE_NAMES, ...DERIVED_ATTRIBUTES.map((a) => a.name)];

export const storedAttribute = (name: string): StoredAttribute | undefined => STORED_ATTRIBUTES.find((a) => a.name === name);
export const derivedAttribute = (name: string): DerivedAttribute | undefined => DERIVED_ATTRIBUTES.find((a) => a.name === name);
