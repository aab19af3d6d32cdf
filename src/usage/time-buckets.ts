/** Bucket widths of the usage API and the rollup granularities behind them, all aligned to UTC. */
export const BUCKET_WIDTHS = ['1m', '1h', '1d'] as const;
export type BucketWidth = (typeof BUCKET_WIDTHS)[number];

export const MINUTE = 60;
export const HOUR = 3600;
export const DAY = 86400;

export const WIDTH_SECONDS: Record<BucketWidth, number> = { '1m': MINUTE, '1h': HOUR, '1d': DAY };

/** Rollup granularities, coarsest first; `raw` is the completion_records table itself. */
export type Granularity = 'day' | 'hour' | 'minute' | 'raw';
export const GRANULARITY_SECONDS: Record<Exclude<Granularity, 'raw'>, number> = { day: DAY, hour: HOUR, minute: MINUTE };
const COARSE_TO_FINE: Granularity[] = ['day', 'hour', 'minute', 'raw'];

export const WIDTH_GRANULARITY: Record<BucketWidth, Exclude<Granularity, 'raw'>> = { '1d': 'day', '1h': 'hour', '1m': 'minute' };

export function floorTo(time: number, seconds: number): number {
  return Math.floor(time / seconds) * seconds;
}

export function ceilTo(time: number, seconds: number): number {
  return Math.ceil(time / seconds) * seconds;
}

/** A part of a time range read from one source: [from, to) aligned to its granularity (raw: any second). */
export interface Segment {
  granularity: Granularity;
  from: number;
  to: number;
}

/**
 * Splits [from, to) into disjoint segments that cover it exactly, using the coarsest rollup that
 * fits each part: whole days from the daily rollup, the ragged hours around them from the hourly
 * one, then minutes, and only the sub-minute edges from raw records (at most two partial minutes).
 * `coarsest` caps the granularity (a 1h-bucket query never reads daily rows).
 */
export function decomposeRange(from: number, to: number, coarsest: Exclude<Granularity, 'raw'> = 'day'): Segment[] {
  return decompose(from, to, COARSE_TO_FINE.slice(COARSE_TO_FINE.indexOf(coarsest)));
}

function decompose(from: number, to: number, levels: Granularity[]): Segment[] {
  if (from >= to) return [];
  const [granularity, ...finer] = levels;
  if (granularity === 'raw') return [{ granularity, from, to }];
  const seconds = GRANULARITY_SECONDS[granularity];
  const start = ceilTo(from, seconds);
  const end = floorTo(to, seconds);
  if (start >= end) return decompose(from, to, finer);
  return [...decompose(from, start, finer), { granularity, from: start, to: end }, ...decompose(end, to, finer)];
}

/** One bucket of a response: UTC-aligned, except that the first and last are clipped to the query range. */
export interface Bucket {
  start: number;
  end: number;
}

/**
 * The buckets of one page: starting with the bucket that contains `pageStart`, at most `limit`
 * of them, clipped to [from, to). `next` is the aligned start of the following bucket, or null
 * when no bucket remains before `to`.
 */
export function pageOfBuckets(
  range: { from: number; to: number },
  width: number,
  pageStart: number,
  limit: number,
): { buckets: Bucket[]; next: number | null } {
  const buckets: Bucket[] = [];
  let aligned = floorTo(Math.max(pageStart, range.from), width);
  while (buckets.length < limit && aligned < range.to) {
    buckets.push({ start: Math.max(aligned, range.from), end: Math.min(aligned + width, range.to) });
    aligned += width;
  }
  return { buckets, next: aligned < range.to ? aligned : null };
}
