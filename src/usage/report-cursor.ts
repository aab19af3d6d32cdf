import { HttpStatus } from '@nestjs/common';
import type { DataSource, QueryRunner } from 'typeorm';
import { AppException, ErrorCode, ErrorType } from '../common/errors';

/** PostgreSQL's code for a statement cancelled by statement_timeout. */
const QUERY_CANCELED = '57014';

/**
 * Rows read as they are iterated, a batch (one round trip's rows) at a time: the reader handles a
 * batch without an await per row. `close()` gives back what they hold when they are not read to
 * the end.
 */
export interface RowStream<T> extends AsyncIterable<T[]> {
  close(): Promise<void>;
}

export interface ReportCursorOptions {
  /** statement_timeout of each statement, and the longest wait for the reader between two fetches (ms). */
  timeoutMs: number;
  /** Rows per FETCH. */
  fetchRows: number;
  /** Told the number of rows of every FETCH. */
  onFetch?: (rows: number) => void;
  /** Told once the connection is back in the pool (a cursor's; readInOneSnapshot's callers wait for it anyway). */
  onRelease?: () => void;
}

/**
 * The rows of one report query, read through a server-side cursor (`DECLARE … CURSOR` in its own
 * transaction, so one snapshot) `fetchRows` at a time: a report of tens of thousands of rows is
 * never held whole by the driver (as a plain query's result would be, for the whole request).
 *
 * {@link open} runs the first FETCH, which runs the query (its grouping and sort) under
 * statement_timeout: a report that cannot finish in time fails there, before a response is begun.
 * Its transaction ends and its connection goes back to the pool as soon as the last rows are
 * fetched (without the reader waiting for that), on `close()`, or when the reader has asked for
 * nothing for `timeoutMs` (a client that stops reading does not keep a connection: its next read
 * fails and the response is cut).
 */
export class ReportCursor implements RowStream<Record<string, unknown>> {
  private batch: Array<Record<string, unknown>> = [];
  private exhausted = false;
  private inTransaction = false;
  private closing?: Promise<void>;
  private stall?: NodeJS.Timeout;

  private constructor(
    private readonly runner: QueryRunner,
    private readonly options: ReportCursorOptions,
  ) {}

  static async open(dataSource: DataSource, sql: string, params: unknown[], options: ReportCursorOptions): Promise<ReportCursor> {
    const runner = dataSource.createQueryRunner();
    await runner.connect();
    const cursor = new ReportCursor(runner, options);
    try {
      await runner.query(beginReport(options, 'BEGIN'));
      cursor.inTransaction = true;
      await runner.query(`DECLARE report NO SCROLL CURSOR FOR ${sql}`, params);
      await cursor.fetch();
    } catch (err) {
      await cursor.close();
      throw reportError(err, options.timeoutMs);
    }
    return cursor;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Array<Record<string, unknown>>> {
    try {
      for (;;) {
        const batch = this.batch;
        this.batch = [];
        if (batch.length > 0) yield batch;
        if (this.exhausted) return;
        await this.fetch();
      }
    } finally {
      // Read to the end, the cursor is already closing (see fetch): the reader need not wait for it.
      if (!this.exhausted) await this.close();
    }
  }

  /** Drops the rows not yet read, ends the transaction and gives the connection back (see {@link release}). */
  close(): Promise<void> {
    this.batch = [];
    return this.release();
  }

  /** Ends the transaction and gives the connection back (once; later calls wait for the first; never rejects). */
  private release(): Promise<void> {
    return (this.closing ??= (async () => {
      clearTimeout(this.stall);
      try {
        // Read-only: COMMIT and ROLLBACK end it alike (and close the cursor).
        if (this.inTransaction) await this.runner.query('ROLLBACK').catch(() => undefined);
      } finally {
        await this.runner.release();
        this.options.onRelease?.();
      }
    })());
  }

  private async fetch(): Promise<void> {
    clearTimeout(this.stall);
    if (this.closing) throw new Error(`The report's reader asked for nothing for ${this.options.timeoutMs} ms; its cursor was closed`);
    const rows = await fetchReport(this.runner, this.options);
    if (this.closing) return; // closed by its reader meanwhile
    this.batch = rows;
    if (rows.length < this.options.fetchRows) {
      // The last rows: the transaction ends and the connection goes back while they are read (the
      // ROLLBACK is not waited for; release() never rejects, and a later close() waits for it).
      this.exhausted = true;
      void this.release();
    } else {
      this.stall = setTimeout(() => void this.close(), this.options.timeoutMs);
      this.stall.unref();
    }
  }
}

/**
 * The rows of several report queries read in one snapshot: one read-only REPEATABLE READ
 * transaction on one connection, each query through its own server-side cursor (`fetchRows` a
 * round trip), read to the end before the next is declared, each under statement_timeout. The
 * queries of one report (its lines, its total) thus agree with each other while records are
 * ingested and folded, as one statement's rows do. The connection goes back to the pool before
 * this returns or throws.
 */
export async function readInOneSnapshot(
  dataSource: DataSource,
  statements: Array<{ sql: string; params: unknown[] }>,
  options: ReportCursorOptions,
): Promise<Array<Array<Record<string, unknown>>>> {
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  try {
    // The snapshot is taken by the first DECLARE (BEGIN and SET take none).
    await runner.query(beginReport(options, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY'));
    const results: Array<Array<Record<string, unknown>>> = [];
    for (const { sql, params } of statements) {
      await runner.query(`DECLARE report NO SCROLL CURSOR FOR ${sql}`, params);
      const rows: Array<Record<string, unknown>> = [];
      for (;;) {
        const batch = await fetchReport(runner, options);
        for (const row of batch) rows.push(row);
        if (batch.length < options.fetchRows) break;
      }
      await runner.query('CLOSE report');
      results.push(rows);
    }
    return results;
  } catch (err) {
    throw reportError(err, options.timeoutMs);
  } finally {
    // Read-only: ROLLBACK ends it as COMMIT would (and one that failed half-begun).
    await runner.query('ROLLBACK').catch(() => undefined);
    await runner.release();
  }
}

/**
 * A report's transaction start, in one round trip (simple protocol; the timeout is an integer from
 * validated configuration). A declared cursor is planned for its first rows
 * (cursor_tuple_fraction 0.1 by default); every row is read, so it gets the plan a plain query would.
 */
function beginReport(options: ReportCursorOptions, begin: string): string {
  return `${begin}; SET LOCAL statement_timeout = ${Math.trunc(options.timeoutMs)}; SET LOCAL cursor_tuple_fraction = 1`;
}

/** The next `fetchRows` rows of the `report` cursor (counted through onFetch). */
async function fetchReport(runner: QueryRunner, options: ReportCursorOptions): Promise<Array<Record<string, unknown>>> {
  const rows: Array<Record<string, unknown>> = await runner.query(`FETCH ${Math.trunc(options.fetchRows)} FROM report`);
  options.onFetch?.(rows.length);
  return rows;
}

/** A statement cancelled by statement_timeout is a 503 `report_timeout`; anything else as it is. */
function reportError(err: unknown, timeoutMs: number): unknown {
  if ((err as { driverError?: { code?: string } }).driverError?.code !== QUERY_CANCELED) return err;
  return new AppException(
    HttpStatus.SERVICE_UNAVAILABLE,
    ErrorType.Unavailable,
    ErrorCode.ReportTimeout,
    `The report did not finish within ${timeoutMs} ms; ask for a shorter range, fewer groups or a smaller page`,
  );
}
