/**
 * Store-level failures, independent of which store raised them, and the one place where
 * PostgreSQL's failures (through Prisma) become VeilErrors.
 */
import { VeilError } from '../errors/veil-error.js';

/** The backing service (PostgreSQL or Redis) cannot be reached; 503 at every edge. */
export class StoreUnavailableError extends VeilError {
  constructor(store: string, cause?: unknown) {
    super('store_unavailable', `${store} is unavailable`, { cause });
  }
}

/** A write would repeat a unique value (Prisma `P2002`); repositories may re-word it (DuplicateAccountError). */
export class UniqueViolation extends VeilError {
  constructor(message = 'already exists', cause?: unknown) {
    super('conflict', message, { cause });
  }
}

/** The row a write needed is gone (Prisma `P2025`). */
export class RecordNotFound extends VeilError {
  constructor(message = 'no such record', cause?: unknown) {
    super('not_found', message, { cause });
  }
}

/** SQLSTATE classes of a failed server rather than a failed statement: 08 connection exception, 53 insufficient resources, 57 operator intervention (shutdown, restart), 58 system error. */
const OUTAGE_SQLSTATE = /^(08|53|57|58)/;

/**
 * Data exceptions (SQLSTATE class 22) that a caller's value causes: too long (22001), out of range
 * (22003), a bad date or time (22007, 22008), a character text cannot hold (22021: a NUL byte),
 * not valid for its type (22P02), an untranslatable character (22P05). Others of the class (a
 * division by zero, say) are bugs and stay loud.
 */
const DATA_SQLSTATE = /^22(001|003|007|008|021|P02|P05)$/;

/** A value the database refused as data (SQLSTATE class 22): the caller's mistake, 400 at every edge. */
export class InvalidStoredValue extends VeilError {
  constructor(cause?: unknown) {
    super('invalid_input', 'a value contains characters that cannot be stored', { cause });
  }
}

/**
 * Classifies a failure of the database layer (called for every query by store/database.ts).
 * Unique violations and missing rows become UniqueViolation and RecordNotFound; other Prisma
 * errors that mean "your data is wrong" (P2xxx) and validation errors (a programming error: keep
 * it loud) pass through; everything else (driver errors, lost connections, pool timeouts, P1xxx)
 * means the store itself failed.
 */
export function classifyDatabaseError(err: unknown): unknown {
  if (err instanceof VeilError) return err;
  const e = err as { name?: string; code?: unknown; meta?: { driverAdapterError?: { cause?: { originalCode?: unknown } } } };
  if (e?.name === 'PrismaClientKnownRequestError' && typeof e.code === 'string' && e.code.startsWith('P2')) {
    if (e.code === 'P2002') return new UniqueViolation('already exists', err);
    if (e.code === 'P2025') return new RecordNotFound('no such record', err);
    // The driver adapter reports SQLSTATEs it does not map (e.g. 57P01, a server shutting down
    // under a query) as P2039/P2010: the server, not the data, failed.
    const sqlState = e.meta?.driverAdapterError?.cause?.originalCode;
    if (typeof sqlState === 'string' && OUTAGE_SQLSTATE.test(sqlState)) return new StoreUnavailableError('PostgreSQL', err);
    if (typeof sqlState === 'string' && DATA_SQLSTATE.test(sqlState)) return new InvalidStoredValue(err);
    return err;
  }
  if (e?.name === 'PrismaClientValidationError') return err;
  return new StoreUnavailableError('PostgreSQL', err);
}
