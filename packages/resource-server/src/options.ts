/** Validation of the SDK's numeric options, in one place. */
export function positiveOption(value: number | undefined, fallback: number, name: string, allowZero = false): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) throw new TypeError(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} number`);
  return value;
}
