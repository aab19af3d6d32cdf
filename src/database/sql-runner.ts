/** Anything that runs a parameterised statement and returns its rows: an EntityManager, a QueryRunner, a DataSource or a thin wrapper of a pg client. */
export interface SqlRunner {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  query(sql: string, params?: unknown[]): Promise<any>;
}
