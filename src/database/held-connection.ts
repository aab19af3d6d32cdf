import type { EventEmitter } from 'node:events';
import { DataSource, QueryRunner } from 'typeorm';

/**
 * Runs `work` on one pooled connection held for its duration. While a pg client is checked out
 * and between statements, a dropped server connection is emitted as an `error` event that nothing
 * else listens to (the pool only watches idle clients): it would crash the process. The failure is
 * then seen by the next statement instead, as a rejected query.
 */
export async function withHeldConnection<T>(dataSource: DataSource, work: (runner: QueryRunner) => Promise<T>): Promise<T> {
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  const client = (runner as unknown as { databaseConnection?: EventEmitter }).databaseConnection;
  const ignore = () => undefined;
  client?.on('error', ignore);
  try {
    return await work(runner);
  } finally {
    client?.off('error', ignore);
    await runner.release();
  }
}

/** {@link withHeldConnection} inside a transaction (committed when `work` resolves, rolled back when it throws). */
export function inHeldTransaction<T>(dataSource: DataSource, work: (runner: QueryRunner) => Promise<T>): Promise<T> {
  return withHeldConnection(dataSource, async (runner) => {
    await runner.startTransaction();
    try {
      const result = await work(runner);
      await runner.commitTransaction();
      return result;
    } catch (err) {
      if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
      throw err;
    }
  });
}
