/**
 * Account attributes as values: an operator's input checked against the catalogue (an integer,
 * in its declared range, of a known, settable name), and the values a token for an API gets,
 * derived ones included. Nothing here logs or echoes a value.
 */
import { VeilError } from '../errors/veil-error.js';
import { ATTRIBUTE_NAMES, DERIVED_ATTRIBUTES, STORED_ATTRIBUTE_NAMES, derivedAttribute, storedAttribute } from './attribute-catalogue.js';

export class InvalidAttribute extends VeilError {
  constructor(message: string) {
    super('invalid_input', message);
  }
}

const INTEGER = /^-?(?:0|[1-9]\d{0,39})$/;

/**
 * The checked value of stored attribute `name` from an operator's input: a JSON integer or a
 * decimal string (the CLI's). The message names the attribute and its range, never the value.
 */
export function parseAttributeValue(name: string, raw: unknown): bigint {
  const attribute = storedAttribute(name);
  if (!attribute) {
    if (derivedAttribute(name)) throw new InvalidAttribute(`${name} is derived at issuance and cannot be set`);
    throw new InvalidAttribute(`unknown attribute ${JSON.stringify(name.slice(0, 64))}; known: ${STORED_ATTRIBUTE_NAMES.join(', ')}`);
  }
  let value: bigint;
  if (typeof raw === 'number' && Number.isInteger(raw))
    value = Number.isSafeInteger(raw) ? BigInt(raw) : attribute.max + 1n; // inexact: out of every range
  else if (typeof raw === 'string' && INTEGER.test(raw.trim())) value = BigInt(raw.trim());
  else throw new InvalidAttribute(`${name} must be an integer`);
  if (value < attribute.min || value > attribute.max) throw new InvalidAttribute(`${name} must be between ${attribute.min} and ${attribute.max}`);
  return value;
}

/** Checks a whole set (`users create --attribute`) before anything is stored. */
export function parseAttributes(input: Record<string, unknown>): Map<string, bigint> {
  return new Map(Object.entries(input).map(([name, raw]) => [name, parseAttributeValue(name, raw)]));
}

/** `he_claims` of a resource server: known names only, each once. */
export function checkClaimNames(names: readonly string[]): string[] {
  const unknown = names.filter((n) => !ATTRIBUTE_NAMES.includes(n));
  if (unknown.length) throw new InvalidAttribute(`he_claims must be among ${ATTRIBUTE_NAMES.join(', ')}; unknown: ${unknown.map((n) => n.slice(0, 64)).join(', ')}`);
  return [...new Set(names)];
}

/** The derived attributes of a set of stored ones (absent when what they need is). */
export function derivedValues(stored: ReadonlyMap<string, bigint>): Map<string, bigint> {
  const derived = new Map<string, bigint>();
  for (const attribute of DERIVED_ATTRIBUTES) {
    const value = attribute.derive(stored);
    if (value !== undefined) derived.set(attribute.name, value);
  }
  return derived;
}

/** The values of `names` (stored or derived) an account has; a name it lacks is left out. */
export function selectValues(stored: ReadonlyMap<string, bigint>, names: readonly string[]): Map<string, bigint> {
  const all = new Map([...stored, ...derivedValues(stored)]);
  const selected = new Map<string, bigint>();
  for (const name of names) {
    const value = all.get(name);
    if (value !== undefined) selected.set(name, value);
  }
  return selected;
}

/** As the admin API shows them (every range fits a JSON number exactly). */
export function attributesJson(values: ReadonlyMap<string, bigint>): Record<string, number> {
  return Object.fromEntries([...values].sort(([a], [b]) => a.localeCompare(b)).map(([name, value]) => [name, Number(value)]));
}
