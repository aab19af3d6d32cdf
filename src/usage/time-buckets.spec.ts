import { ceilTo, DAY, decomposeRange, floorTo, HOUR, MINUTE, pageOfBuckets, Segment } from './time-buckets';

const T0 = 1704067200; // 2024-01-01T00:00:00Z

function covers(segments: Segment[], from: number, to: number): boolean {
  let at = from;
  for (const s of segments) {
    if (s.from !== at || s.to <= s.from) return false;
    if (s.granularity !== 'raw') {
      const unit = { day: DAY, hour: HOUR, minute: MINUTE }[s.granularity];
      if (s.from % unit !== 0 || s.to % unit !== 0) return false;
    }
    at = s.to;
  }
  return at === to;
}

describe('bucket alignment', () => {
  it('floors and ceils to UTC boundaries', () => {
    expect(floorTo(T0 + 3599, HOUR)).toBe(T0);
    expect(ceilTo(T0 + 1, HOUR)).toBe(T0 + HOUR);
    expect(ceilTo(T0, DAY)).toBe(T0);
    expect(floorTo(T0 + DAY - 1, DAY)).toBe(T0);
  });

  describe('decomposeRange', () => {
    it('reads an aligned range from the daily rollup alone', () => {
      expect(decomposeRange(T0, T0 + 31 * DAY)).toEqual([{ granularity: 'day', from: T0, to: T0 + 31 * DAY }]);
    });

    it('reads ragged edges from finer rollups and sub-minute parts from raw records', () => {
      const from = T0 + 5 * HOUR + 3 * MINUTE + 7;
      const to = T0 + 2 * DAY + 2 * HOUR + 30 * MINUTE + 10;
      expect(decomposeRange(from, to)).toEqual([
        { granularity: 'raw', from, to: T0 + 5 * HOUR + 4 * MINUTE },
        { granularity: 'minute', from: T0 + 5 * HOUR + 4 * MINUTE, to: T0 + 6 * HOUR },
        { granularity: 'hour', from: T0 + 6 * HOUR, to: T0 + DAY },
        { granularity: 'day', from: T0 + DAY, to: T0 + 2 * DAY },
        { granularity: 'hour', from: T0 + 2 * DAY, to: T0 + 2 * DAY + 2 * HOUR },
        { granularity: 'minute', from: T0 + 2 * DAY + 2 * HOUR, to: T0 + 2 * DAY + 2 * HOUR + 30 * MINUTE },
        { granularity: 'raw', from: T0 + 2 * DAY + 2 * HOUR + 30 * MINUTE, to },
      ]);
    });

    it('never reads coarser rows than asked', () => {
      expect(decomposeRange(T0, T0 + 2 * DAY, 'hour')).toEqual([{ granularity: 'hour', from: T0, to: T0 + 2 * DAY }]);
      expect(decomposeRange(T0 + 30, T0 + HOUR, 'minute')).toEqual([
        { granularity: 'raw', from: T0 + 30, to: T0 + MINUTE },
        { granularity: 'minute', from: T0 + MINUTE, to: T0 + HOUR },
      ]);
    });

    it('handles ranges inside one minute, and empty ranges', () => {
      expect(decomposeRange(T0 + 10, T0 + 20)).toEqual([{ granularity: 'raw', from: T0 + 10, to: T0 + 20 }]);
      expect(decomposeRange(T0, T0)).toEqual([]);
    });

    it('covers any range exactly with aligned, disjoint segments', () => {
      let seed = 7;
      const rand = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      for (let i = 0; i < 500; i++) {
        const from = T0 + rand(3 * DAY);
        const to = from + rand(4 * DAY);
        expect(covers(decomposeRange(from, to, (['day', 'hour', 'minute'] as const)[i % 3]), from, to)).toBe(true);
      }
    });
  });

  describe('pageOfBuckets', () => {
    it('returns aligned buckets and where the next page starts', () => {
      const range = { from: T0, to: T0 + 10 * DAY };
      expect(pageOfBuckets(range, DAY, T0, 3)).toEqual({
        buckets: [
          { start: T0, end: T0 + DAY },
          { start: T0 + DAY, end: T0 + 2 * DAY },
          { start: T0 + 2 * DAY, end: T0 + 3 * DAY },
        ],
        next: T0 + 3 * DAY,
      });
      expect(pageOfBuckets(range, DAY, T0 + 9 * DAY, 3)).toEqual({ buckets: [{ start: T0 + 9 * DAY, end: T0 + 10 * DAY }], next: null });
      expect(pageOfBuckets(range, DAY, T0 + 7 * DAY, 3).next).toBeNull();
    });

    it('clips the first and last bucket to the query range', () => {
      const range = { from: T0 + 5 * HOUR, to: T0 + DAY + 2 * HOUR };
      expect(pageOfBuckets(range, DAY, range.from, 7)).toEqual({
        buckets: [
          { start: T0 + 5 * HOUR, end: T0 + DAY },
          { start: T0 + DAY, end: T0 + DAY + 2 * HOUR },
        ],
        next: null,
      });
    });

    it('includes a partial last bucket in has_more', () => {
      const range = { from: T0, to: T0 + HOUR + 1 };
      expect(pageOfBuckets(range, HOUR, T0, 1)).toEqual({ buckets: [{ start: T0, end: T0 + HOUR }], next: T0 + HOUR });
      expect(pageOfBuckets(range, HOUR, T0 + HOUR, 1)).toEqual({ buckets: [{ start: T0 + HOUR, end: T0 + HOUR + 1 }], next: null });
    });
  });
});
