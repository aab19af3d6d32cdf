import { DataSource, QueryRunner } from 'typeorm';

/**
 * Runs `work` on one pooled connection held for its duration. A dropped server connection is seen
 * by the next statement, as a rejected query (every pool client listens for its `error` event:
 * see ListenedClient in data-source.ts).
 */
export async function withHeldConnection<T>(dataSource: DataSource, work: (runner: QueryRunner) => Promise<T>): Promise<T> {
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  try {
    return await work(runner);
  } finally {
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
