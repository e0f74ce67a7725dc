/** Store-level failures, independent of which store raised them. */

/** The backing service (PostgreSQL or Redis) cannot be reached; mapped to 503 at every edge. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
  constructor(store: string, cause?: unknown) {
    super(`${store} is unavailable`, { cause });
  }
}

/**
 * Prisma errors that mean "your data is wrong" (unique violation, missing row, ...) carry a
 * P2xxx code; everything else from the database layer (driver errors, lost connections,
 * pool timeouts, P1xxx) means the store itself failed.
 */
export function classifyDatabaseError(err: unknown): unknown {
  if (err instanceof StoreUnavailableError) return err;
  const e = err as { name?: string; code?: unknown };
  if (e?.name === 'PrismaClientKnownRequestError' && typeof e.code === 'string' && e.code.startsWith('P2')) return err;
  if (e?.name === 'PrismaClientValidationError') return err; // a programming error: keep it loud
  return new StoreUnavailableError('PostgreSQL', err);
}
