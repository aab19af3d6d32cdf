/* PostgreSQL error codes, without dependencies: SQL modules that run in small processes (the fold test's child) import this. */

/** PostgreSQL's "numeric value out of range" (a bigint sum that does not fit). */
export const NUMERIC_OUT_OF_RANGE = '22003';

/** The SQLSTATE of a PostgreSQL error, as TypeORM wraps it (driverError) or as `pg` throws it. */
export function pgErrorCode(err: unknown): string | undefined {
  const e = (err as { driverError?: { code?: string } } | null)?.driverError ?? (err as { code?: string } | null);
  return typeof e?.code === 'string' ? e.code : undefined;
}
