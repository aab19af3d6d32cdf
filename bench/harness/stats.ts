/** Latencies in milliseconds, summarised. */
export interface LatencySummary {
  n: number;
  p50: number;
  p99: number;
  mean: number;
  max: number;
}

/** Nearest-rank percentile of ascending samples. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export function summarize(samples: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const value of sorted) sum += value;
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    mean: sorted.length > 0 ? sum / sorted.length : NaN,
    max: sorted.length > 0 ? sorted[sorted.length - 1] : NaN,
  };
}

export interface SamplingPlan {
  /** Untimed runs first (caches, JIT, connection set-up). */
  warmup: number;
  minRuns: number;
  maxRuns: number;
  /** Stop starting new runs after this long (once minRuns are done). */
  seconds: number;
}

/**
 * Times each task again and again, in rounds (A, B, C, A, B, C, …) so that the machine's noise
 * falls on every task alike. A task stops once it has maxRuns, or when time is up and it has
 * minRuns; the plans may differ per task (a slow baseline gets fewer runs). Returns milliseconds.
 */
export async function sampleInRounds(tasks: Array<{ run: () => Promise<unknown>; plan: SamplingPlan }>): Promise<number[][]> {
  for (const task of tasks) {
    for (let i = 0; i < task.plan.warmup; i++) await task.run();
  }
  const samples = tasks.map((): number[] => []);
  const started = performance.now();
  const wants = (i: number) => {
    const { minRuns, maxRuns, seconds } = tasks[i].plan;
    const n = samples[i].length;
    return n < minRuns || (n < maxRuns && performance.now() - started < seconds * 1000);
  };
  for (;;) {
    let ran = false;
    for (let i = 0; i < tasks.length; i++) {
      if (!wants(i)) continue;
      const t0 = performance.now();
      await tasks[i].run();
      samples[i].push(performance.now() - t0);
      ran = true;
    }
    if (!ran) return samples;
  }
}

export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
