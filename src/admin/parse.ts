/** Request validation for the admin routes: the contract's zod schemas, a refusal as `invalid_input`. */
import type { z } from 'zod';
import { VeilError } from '../errors/veil-error.js';

export function parse<T>(schema: z.ZodType<T>, input: unknown): T {
  const result = schema.safeParse(input ?? {});
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new VeilError('invalid_input', `${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  return result.data;
}
