import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Counter } from 'prom-client';
import { DataSource } from 'typeorm';
import { AppException } from '../common/errors';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { MetricsService } from '../metrics/metrics.service';
import { readInOneSnapshot, ReportCursor, ReportCursorOptions, RowStream } from './report-cursor';
import { ALL_ORGS, ReportSlots } from './report-slots';
import { Dimension, Measure, narrowestRollup, NULLABLE_DIMENSIONS, RAW_MEASURE_SQL, rawDimensionSql } from './rollups';
import { PENDING_TABLES } from './pending-deltas';
import { BucketWidth, ceilTo, DAY, decomposeRange, MINUTE, Granularity, GRANULARITY_SECONDS, Segment, WIDTH_GRANULARITY, WIDTH_SECONDS } from './time-buckets';

/**
 * The first minute the per-minute rollup still holds (MINUTE_ROLLUP_RETENTION_DAYS before `now`,
 * Unix seconds): a read's minutes before it come from the raw records instead.
 */
export function minuteRollupFrom(config: Pick<AppConfig, 'minuteRollupRetentionDays'>, now = Date.now() / 1000): number {
  return ceilTo(now - config.minuteRollupRetentionDays * DAY, MINUTE);
}

/** Which records a query counts. Every condition must hold. */
export interface UsageFilter {
  /** One org, or every org (cluster admins without `org_id`). */
  orgId?: string;
  /** Each entry keeps records whose dimension is one of its values. */
  anyOf: Array<{ dimension: Dimension; values: string[] }>;
  batch?: boolean;
}

/** A page of groups, largest `measure` first (ties in key order). */
export interface AggregateOrder {
  measure: Measure;
  limit: number;
  offset: number;
}

export interface AggregateQuery {
  /** [from, to) in Unix seconds, any alignment. */
  from: number;
  to: number;
  /** Sums per UTC-aligned bucket of this width; omitted: one sum over the whole range. */
  width?: BucketWidth;
  dimensions: Dimension[];
  measures: Measure[];
  filter: UsageFilter;
  /**
   * Unix seconds (a minute start) before which the per-minute rollup is no longer kept: minute
   * segments before it are read from the raw records instead. Omitted: the rollup is complete.
   */
  minuteFrom?: number;
  /** Omitted: every group, in key order. */
  page?: AggregateOrder;
}

export interface AggregateRow {
  /** Aligned start of the bucket (Unix seconds), or null without a width. */
  bucket: number | null;
  /** Grouped dimensions; null where the record had none. */
  dimensions: Partial<Record<Dimension, string | boolean | null>>;
  measures: Partial<Record<Measure, bigint>>;
}

/**
 * Where a segment of a granularity is read from: the raw records, or the rollup of that
 * granularity with the fewest dimensions that has every one the query groups or filters by.
 */
function source(granularity: Granularity, query: AggregateQuery): { table: string; time: string } {
  if (granularity === 'raw') return { table: 'completion_records', time: 'created_at' };
  const needed = new Set<Dimension>(query.dimensions);
  for (const { dimension } of query.filter.anyOf) needed.add(dimension);
  if (query.filter.orgId !== undefined) needed.add('org_id');
  if (query.filter.batch !== undefined) needed.add('batch');
  return { table: narrowestRollup(granularity, needed).table, time: 'bucket_start' };
}

/**
 * Builds the SQL of an aggregate query. The range is split (see {@link decomposeRange}) so that
 * whole days come from a daily rollup, ragged hours and minutes from the finer ones, and only
 * sub-minute edges from raw records: the rows read depend on the range and the number of
 * distinct groups, not on the number of records stored. The pending deltas of the rollup-backed
 * part (journal and held rows) are added in the same statement (see pending-deltas.ts).
 */
export function buildAggregateSql(query: AggregateQuery): { sql: string; params: unknown[] } | null {
  const segments = segmentsOf(query);
  if (segments.length === 0) return null;
  const params: unknown[] = [];
  const param = (value: unknown) => `$${params.push(value)}`;
  const filter = filterSql(query.filter, param);
  const keyCount = (query.width ? 1 : 0) + query.dimensions.length;

  const bySource = new Map<Granularity, Segment[]>();
  for (const segment of segments) bySource.set(segment.granularity, [...(bySource.get(segment.granularity) ?? []), segment]);
  const parts = [...bySource].map(([granularity, sourceSegments]) => {
    const { table, time } = source(granularity, query);
    const raw = granularity === 'raw';
    const ranges = sourceSegments.map((s) => `(${time} >= ${param(iso(s.from))} AND ${time} < ${param(iso(s.to))})`).join(' OR ');
    const columns = [
      ...(query.width ? [`${bucketSql(time, granularity, WIDTH_SECONDS[query.width])} AS bucket`] : []),
      ...query.dimensions.map((d) => `${raw ? rawDimensionSql(d) : d} AS ${d}`),
      ...query.measures.map((m) => `SUM(${raw ? RAW_MEASURE_SQL[m] : m}) AS ${m}`),
    ];
    return `SELECT ${columns.join(', ')} FROM ${table} WHERE (${ranges})${filter}${groupBy(keyCount)}`;
  });
  // The pending deltas (journal and held rows) of every rollup-backed segment, read by the same
  // statement (one snapshot): a fold moves rows from the journal into the rollups or the held rows
  // atomically, so each record is counted once whether it is folded or not. Deltas are per
  // minute, so any aligned segment of a rollup covers whole delta rows.
  const folded = segments.filter((s) => s.granularity !== 'raw');
  if (folded.length > 0) {
    const ranges = folded.map((s) => `(bucket_start >= ${param(iso(s.from))} AND bucket_start < ${param(iso(s.to))})`).join(' OR ');
    const columns = [
      ...(query.width ? [`${bucketSql('bucket_start', 'minute', WIDTH_SECONDS[query.width])} AS bucket`] : []),
      ...query.dimensions.map((d) => `${d} AS ${d}`),
      ...query.measures.map((m) => `SUM(${m}) AS ${m}`),
    ];
    for (const table of PENDING_TABLES) parts.push(`SELECT ${columns.join(', ')} FROM ${table} WHERE (${ranges})${filter}${groupBy(keyCount)}`);
  }
  const keys = [...(query.width ? ['bucket'] : []), ...query.dimensions];
  const sql =
    parts.length === 1
      ? parts[0]
      : `SELECT ${[...keys, ...query.measures.map((m) => `SUM(${m}) AS ${m}`)].join(', ')} FROM (${parts.join(' UNION ALL ')}) u${groupBy(keyCount)}`;
  if (query.page) {
    if (!query.measures.includes(query.page.measure)) throw new Error(`cannot order by ${query.page.measure}: not a measure of the query`);
    const order = [`${query.page.measure} DESC`, ...(keyCount > 0 ? [positions(keyCount)] : [])].join(', ');
    return { sql: `${sql} ORDER BY ${order} LIMIT ${param(query.page.limit)} OFFSET ${param(query.page.offset)}`, params };
  }
  return { sql: keyCount > 0 ? `${sql} ORDER BY ${positions(keyCount)}` : sql, params };
}

/** The disjoint segments a query reads, each from the source of its granularity (see {@link decomposeRange}). */
export function segmentsOf(query: AggregateQuery): Segment[] {
  const segments = decomposeRange(query.from, query.to, query.width ? WIDTH_GRANULARITY[query.width] : 'day');
  const minuteFrom = query.minuteFrom;
  if (minuteFrom === undefined) return segments;
  return segments.flatMap((s): Segment[] => {
    if (s.granularity !== 'minute' || s.from >= minuteFrom) return [s];
    if (s.to <= minuteFrom) return [{ ...s, granularity: 'raw' }];
    return [
      { granularity: 'raw', from: s.from, to: minuteFrom },
      { granularity: 'minute', from: minuteFrom, to: s.to },
    ];
  });
}

function filterSql(filter: UsageFilter, param: (value: unknown) => string): string {
  let sql = '';
  if (filter.orgId !== undefined) sql += ` AND org_id = ${param(filter.orgId)}`;
  for (const { dimension, values } of filter.anyOf) sql += ` AND ${dimension} = ANY(${param(values)})`;
  if (filter.batch !== undefined) sql += ` AND batch = ${param(filter.batch)}`;
  return sql;
}

function bucketSql(time: string, granularity: Granularity, width: number): string {
  if (granularity !== 'raw' && GRANULARITY_SECONDS[granularity] === width) return `extract(epoch FROM ${time})::bigint`;
  return `(floor(extract(epoch FROM ${time}) / ${width}) * ${width})::bigint`;
}

function groupBy(count: number): string {
  return count > 0 ? ` GROUP BY ${positions(count)}` : '';
}

function positions(count: number): string {
  return Array.from({ length: count }, (_v, i) => i + 1).join(', ');
}

function iso(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString();
}

/** Longest a report waits for a slot (ReportSlots) before its 503; at most half of REPORT_STATEMENT_TIMEOUT_MS. */
const SLOT_WAIT_MS = 10_000;

/** Whose share of the report slots a query takes: its org's, or that of reports over every org. */
function orgKey(query: AggregateQuery): string {
  return query.filter.orgId ?? ALL_ORGS;
}

/**
 * Runs aggregate queries over the rollups (and raw records for sub-minute edges). Every query runs
 * under REPORT_STATEMENT_TIMEOUT_MS: a report too large to answer in time ends as a 503
 * `report_timeout` instead of holding a connection and a CPU for as long as it takes. Rows are
 * read through a server-side cursor, REPORT_FETCH_ROWS at a time (see report-cursor.ts).
 */
@Injectable()
export class UsageAggregator {
  private readonly fetches: Counter<string>;
  private readonly fetchedRows: Counter<string>;
  private readonly slots: ReportSlots;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    metrics: MetricsService,
  ) {
    this.fetches = metrics.counter('tally_report_fetches_total', 'Round trips that read rows of a usage or cost report from its cursor');
    this.fetchedRows = metrics.counter('tally_report_rows_total', 'Rows of usage and cost reports read from PostgreSQL');
    const busy = metrics.counter('tally_report_busy_total', 'Reports answered 503 reports_busy: they waited too long for one of REPORT_CONCURRENCY (per org: REPORT_CONCURRENCY_PER_ORG)');
    this.slots = new ReportSlots(config.reportConcurrency, config.reportConcurrencyPerOrg, Math.min(SLOT_WAIT_MS, Math.ceil(config.reportStatementTimeoutMs / 2)), () => busy.inc());
  }

  /**
   * The rows of several queries, each read to the end, all in one snapshot (see
   * {@link readInOneSnapshot}): the parts of one report agree with each other while records are
   * ingested and folded. The queries run one after another on one connection.
   */
  async aggregateInOneSnapshot(queries: AggregateQuery[]): Promise<AggregateRow[][]> {
    const now = Date.now() / 1000;
    const built = queries.map((query) => this.build(query, now));
    const statements = built.filter((b) => b !== null);
    let read: Array<Array<Record<string, unknown>>> = [];
    if (statements.length > 0) {
      const release = await this.slots.acquire(orgKey(queries[0]));
      try {
        read = await readInOneSnapshot(this.dataSource, statements, this.cursorOptions());
      } finally {
        release();
      }
    }
    let next = 0;
    return built.map((b, i) => (b === null ? [] : convertBatch(read[next++], queries[i])));
  }

  /**
   * The same rows, in the query's order (bucket first), fetched from a cursor and converted a
   * batch at a time as they are reached: a page of tens of thousands of rows is never held whole.
   * Read them to the end or close() them: until then they hold a database connection.
   */
  async aggregateStream(query: AggregateQuery): Promise<RowStream<AggregateRow>> {
    const built = this.build(query, Date.now() / 1000);
    if (!built) return { [Symbol.asyncIterator]: async function* () {}, close: async () => undefined };
    const release = await this.slots.acquire(orgKey(query));
    // The cursor frees its slot with its connection; one that never opened (no connection) frees it here.
    const cursor = await ReportCursor.open(this.dataSource, built.sql, built.params, { ...this.cursorOptions(), onRelease: release }).catch((err: unknown) => {
      release();
      throw err;
    });
    return { [Symbol.asyncIterator]: () => convertRows(cursor, query), close: () => cursor.close() };
  }

  /** The SQL of a query as of `now` (Unix seconds), which decides what is past each retention. */
  private build(query: AggregateQuery, now: number): { sql: string; params: unknown[] } | null {
    const planned = { ...query, minuteFrom: query.minuteFrom ?? minuteRollupFrom(this.config, now) };
    // Sub-minute edges (and minutes past the minute rollup's retention) come from raw records, kept RECORDS_RETENTION_DAYS.
    const recordsFrom = now - this.config.recordsRetentionDays * DAY;
    if (segmentsOf(planned).some((s) => s.granularity === 'raw' && s.from < recordsFrom)) {
      throw AppException.validation([
        {
          param: 'start_time',
          message:
            `reaches back past the record retention (${this.config.recordsRetentionDays} days, RECORDS_RETENTION_DAYS): ` +
            'before that, start_time and end_time must be whole hours',
        },
      ]);
    }
    return buildAggregateSql(planned);
  }

  private cursorOptions(): ReportCursorOptions {
    return {
      timeoutMs: this.config.reportStatementTimeoutMs,
      fetchRows: this.config.reportFetchRows,
      onFetch: (rows) => {
        this.fetches.inc();
        this.fetchedRows.inc(rows);
      },
    };
  }
}

async function* convertRows(batches: AsyncIterable<Array<Record<string, unknown>>>, query: AggregateQuery): AsyncGenerator<AggregateRow[]> {
  for await (const batch of batches) yield convertBatch(batch, query);
}

function convertBatch(batch: Array<Record<string, unknown>>, query: AggregateQuery): AggregateRow[] {
  const rows: AggregateRow[] = [];
  for (const row of batch) {
    if (!query.measures.some((m) => row[m] !== null)) continue;
    const dimensions: AggregateRow['dimensions'] = {};
    for (const d of query.dimensions) dimensions[d] = NULLABLE_DIMENSIONS.has(d) && row[d] === '' ? null : (row[d] as string | boolean);
    const measures: AggregateRow['measures'] = {};
    for (const m of query.measures) measures[m] = BigInt(row[m] as string);
    rows.push({ bucket: query.width ? Number(row.bucket) : null, dimensions, measures });
  }
  return rows;
}
