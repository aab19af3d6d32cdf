import { Inject, Injectable } from '@nestjs/common';
import { Principal } from '../auth/principal';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { decodeCursor, encodeCursor, fingerprint, invalidCursor } from '../common/cursor';
import { AppException } from '../common/errors';
import { exactInteger } from '../common/json-decimal';
import { nanoToNumber } from '../common/money';
import { CompletionsGroupBy, CompletionsQueryDto, CompletionsResultDto, DEFAULT_LIMITS } from './dto/completions.dto';
import { COSTS_DEFAULT_LIMIT, CostLineDto, CostsQueryDto, CostsReportDto } from './dto/costs.dto';
import { OpenAiCostsQueryDto, OpenAiCostsResultDto } from './dto/openai-costs.dto';
import { Dimension, Measure } from './rollups';
import { Page, PageBucket } from './page-body';
import { Bucket, BucketWidth, DAY, floorTo, pageOfBuckets, WIDTH_SECONDS } from './time-buckets';
import { AggregateRow, UsageAggregator, UsageFilter } from './usage-aggregator';
import { LATEST_QUERY_TIME } from './usage-fields';
import { usageFilter } from './usage-scope';

/** What the usage report sums (its result fields). */
export const COMPLETION_MEASURES: Measure[] = [
  'input_tokens',
  'output_tokens',
  'input_cached_tokens',
  'num_model_requests',
  'input_audio_tokens',
  'output_audio_tokens',
];
const COSTS_DIMENSIONS: Record<string, Dimension> = { external_user_id: 'user_id', line_item: 'model' };

interface BucketQuery {
  /** Tells cursors of different reports apart. */
  report: string;
  startTime: number;
  endTime?: number;
  width: BucketWidth;
  limit: number;
  page?: string;
  dimensions: Dimension[];
  measures: Measure[];
  filter: UsageFilter;
}

interface Cursor {
  /** Aligned start of the next bucket. */
  n: number;
  /** End of the range, fixed by the first page (end_time defaults to now). */
  e: number;
  /** Fingerprint of the query. */
  f: string;
}

/** A costs cursor: the offset of the next line and the query's fingerprint. */
interface CostsCursor {
  o: number;
  f: string;
}

const isCostsCursor = (v: unknown): v is CostsCursor =>
  typeof v === 'object' && v !== null && Number.isSafeInteger((v as CostsCursor).o) && (v as CostsCursor).o > 0 && typeof (v as CostsCursor).f === 'string';

const isCursor = (v: unknown): v is Cursor =>
  typeof v === 'object' && v !== null && [(v as Cursor).n, (v as Cursor).e].every(Number.isSafeInteger) && typeof (v as Cursor).f === 'string';

/** Usage and cost reports: the MKA1 endpoints and the OpenAI-compatible aliases share this code. */
@Injectable()
export class UsageReportsService {
  constructor(
    private readonly aggregator: UsageAggregator,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** SPEC §3.2: usage per bucket, grouped, with every bucket of the page (empty ones too). */
  async completions(principal: Principal, query: CompletionsQueryDto): Promise<Page<CompletionsResultDto>> {
    const width = query.bucket_width ?? '1d';
    const groupBy = query.group_by ?? [];
    return this.bucketPage(
      {
        report: 'completions',
        startTime: query.start_time,
        endTime: query.end_time,
        width,
        limit: query.limit ?? DEFAULT_LIMITS[width],
        page: query.page,
        dimensions: groupBy,
        measures: COMPLETION_MEASURES,
        filter: usageFilter(principal, query),
      },
      (row) => completionResult(row, groupBy),
    );
  }

  /**
   * SPEC §3.3: cost per group over the range, most expensive first, a page of `limit` lines at a
   * time; the exact total over all lines, and the models without a price.
   */
  async costs(principal: Principal, query: CostsQueryDto): Promise<CostsReportDto> {
    const range = resolveRange(query.start_time, query.end_time);
    const groupBy = query.group_by ?? [];
    const filter = usageFilter(principal, query);
    const limit = query.limit ?? COSTS_DEFAULT_LIMIT;
    const print = fingerprint({ r: 'costs', s: range.from, e: range.to, g: groupBy, f: filter });
    const cursor = query.page === undefined ? undefined : decodeCursor(query.page, isCostsCursor);
    if (cursor && cursor.f !== print) throw invalidCursor();
    const offset = cursor?.o ?? 0;
    // The page of lines and the sums per model (their total is the report's, and the models with
    // unpriced requests its unpriced models), in one snapshot: all three count the same records.
    const [rows, models] = await this.aggregator.aggregateInOneSnapshot([
      {
        ...range,
        dimensions: groupBy.map(toDimension),
        measures: ['cost_nano'],
        filter,
        page: { measure: 'cost_nano', limit: limit + 1, offset },
      },
      { ...range, dimensions: ['model'], measures: ['cost_nano', 'unpriced_requests'], filter },
    ]);
    const data: CostLineDto[] = rows.slice(0, limit).map((row) => {
      const value = (field: string) => (groupBy.includes(field as never) ? (row.dimensions[toDimension(field)] as string | null) : null);
      const costNano = row.measures.cost_nano!;
      return {
        model: value('model'),
        api_key_id: value('api_key_id'),
        team_id: value('team_id'),
        external_user_id: value('external_user_id'),
        org_id: value('org_id'),
        cost: nanoToNumber(costNano),
        cost_nano: costNano.toString(),
      };
    });
    const hasMore = rows.length > limit;
    const total = models.reduce((sum, row) => sum + row.measures.cost_nano!, 0n);
    return {
      object: 'llm.usage.costs',
      currency: this.config.currency,
      start_time: range.from,
      end_time: range.to,
      group_by: groupBy,
      data,
      has_more: hasMore,
      next_page: hasMore ? encodeCursor({ o: offset + limit, f: print }) : null,
      total_cost: nanoToNumber(total),
      total_cost_nano: total.toString(),
      unpriced_models: models
        .filter((row) => row.measures.unpriced_requests! > 0n)
        .map((row) => row.dimensions.model as string)
        .sort(),
    };
  }

  /** OpenAI's Costs API shape: daily buckets of `organization.costs.result`. */
  async openAiCosts(principal: Principal, query: OpenAiCostsQueryDto): Promise<Page<OpenAiCostsResultDto>> {
    const groupBy = query.group_by ?? [];
    const currency = this.config.currency;
    return this.bucketPage(
      {
        report: 'openai-costs',
        startTime: query.start_time,
        endTime: query.end_time,
        width: '1d',
        limit: query.limit ?? 7,
        page: query.page,
        dimensions: groupBy.map(toDimension),
        measures: ['cost_nano'],
        filter: usageFilter(principal, query),
      },
      (row): OpenAiCostsResultDto => ({
        object: 'organization.costs.result',
        amount: { value: nanoToNumber(row.measures.cost_nano!), currency },
        line_item: groupBy.includes('line_item') ? (row.dimensions.model as string) : null,
        project_id: groupBy.includes('project_id') ? (row.dimensions.project_id as string | null) : null,
        api_key_id: groupBy.includes('api_key_id') ? (row.dimensions.api_key_id as string) : null,
      }),
    );
  }

  /** One page of buckets (empty ones too), each result made by `toResult`, and the cursor of the next page. */
  private async bucketPage<R>(query: BucketQuery, toResult: (row: AggregateRow) => R): Promise<Page<R>> {
    const width = WIDTH_SECONDS[query.width];
    const print = fingerprint({
      r: query.report,
      s: query.startTime,
      e: query.endTime ?? null,
      w: query.width,
      d: query.dimensions,
      f: query.filter,
    });
    const cursor = query.page === undefined ? undefined : decodeCursor(query.page, isCursor);
    const misplaced = (c: Cursor) =>
      c.n % width !== 0 ||
      c.n <= floorTo(query.startTime, width) ||
      c.n >= c.e ||
      c.e > LATEST_QUERY_TIME ||
      (query.endTime !== undefined && c.e !== query.endTime);
    if (cursor && (cursor.f !== print || misplaced(cursor))) throw invalidCursor();
    const range = resolveRange(query.startTime, cursor?.e ?? query.endTime);
    const minuteDays = this.config.minuteRollupRetentionDays;
    if (query.width === '1m' && range.from < Date.now() / 1000 - minuteDays * DAY) {
      throw AppException.validation([
        { param: 'start_time', message: `1m buckets are kept ${minuteDays} days (MINUTE_ROLLUP_RETENTION_DAYS); use 1h or 1d buckets for older usage` },
      ]);
    }
    const { buckets, next } = pageOfBuckets(range, width, cursor?.n ?? range.from, query.limit);
    const rows = await this.aggregator.aggregateStream({
      from: buckets[0].start,
      to: buckets[buckets.length - 1].end,
      width: query.width,
      dimensions: query.dimensions,
      measures: query.measures,
      filter: query.filter,
    });
    return {
      object: 'page',
      data: bucketsOf(buckets, width, rows, toResult),
      has_more: next !== null,
      next_page: next === null ? null : encodeCursor({ n: next, e: range.to, f: print }),
      close: () => rows.close(),
    };
  }
}

/**
 * The page's buckets, each with its results, made as they are serialised. `rows` come ordered by
 * bucket (the aggregate SQL orders by its keys, bucket first), a batch at a time, so each bucket
 * takes the next run of rows whose aligned start is its own; only a new batch is awaited.
 */
async function* bucketsOf<R>(
  buckets: Bucket[],
  width: number,
  rows: AsyncIterable<AggregateRow[]>,
  toResult: (row: AggregateRow) => R,
): AsyncGenerator<PageBucket<R>> {
  const batches = rows[Symbol.asyncIterator]();
  let batch: AggregateRow[] = [];
  let next = 0;
  let done = false;
  for (const b of buckets) {
    const aligned = b.start - (b.start % width);
    const results: R[] = [];
    while (!done) {
      if (next === batch.length) {
        const read = await batches.next();
        if (read.done) done = true;
        else [batch, next] = [read.value, 0];
        continue;
      }
      const row = batch[next];
      if (row.bucket! > aligned) break;
      if (row.bucket === aligned) results.push(toResult(row));
      next++;
    }
    yield { object: 'bucket', start_time: b.start, end_time: b.end, results };
  }
}

/** [start_time, end_time) with end_time defaulting to now; end must be after start. */
function resolveRange(startTime: number, endTime: number | undefined): { from: number; to: number } {
  const to = endTime ?? Math.floor(Date.now() / 1000);
  if (to <= startTime) {
    const message = endTime === undefined ? 'must be in the past when end_time is omitted (it defaults to now)' : 'must be before end_time';
    throw AppException.validation([{ param: 'start_time', message }]);
  }
  return { from: startTime, to };
}

function toDimension(field: string): Dimension {
  return COSTS_DIMENSIONS[field] ?? (field as Dimension);
}

function completionResult(row: AggregateRow, groupBy: CompletionsGroupBy[]): CompletionsResultDto {
  const grouped = <T>(field: CompletionsGroupBy): T | null => (groupBy.includes(field) ? (row.dimensions[field] as T) : null);
  const count = (m: Measure) => exactInteger(row.measures[m]!);
  return {
    object: 'organization.usage.completions.result',
    input_tokens: count('input_tokens'),
    output_tokens: count('output_tokens'),
    input_cached_tokens: count('input_cached_tokens'),
    num_model_requests: count('num_model_requests'),
    input_audio_tokens: count('input_audio_tokens'),
    output_audio_tokens: count('output_audio_tokens'),
    user_id: grouped('user_id'),
    api_key_id: grouped('api_key_id'),
    model: grouped('model'),
    batch: grouped('batch'),
    service_tier: grouped('service_tier'),
    project_id: grouped('project_id'),
  };
}
