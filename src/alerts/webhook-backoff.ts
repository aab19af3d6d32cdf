import { createHash } from 'node:crypto';
import type { BackoffStrategy } from 'bullmq';

/** The custom BullMQ backoff type of webhook deliveries. */
export const WEBHOOK_BACKOFF = 'webhook';

/** Delays stop doubling at this multiple of the base (2 h with the default 15 s base). */
export const BACKOFF_CAP_FACTOR = 480;

/**
 * Delay before the retry that follows failed attempt `attempt` (1-based): base × 2^(attempt−1),
 * capped at 480 × base, times a jitter factor in [0.8, 1.2). The jitter is derived from the job
 * id and the attempt, so the worker can log when the next attempt is due and BullMQ schedules
 * exactly that, while different alerts still spread out.
 *
 * With the defaults (base 15 s, 20 attempts): 15 s, 30 s, 1 min, 2 min, 4 min, 8 min, 16 min,
 * 32 min, 64 min, then every 2 h — the 20th attempt comes about 22 h after the first.
 */
export function retryDelayMs(attempt: number, baseMs: number, jobId: string): number {
  const exponential = Math.min(baseMs * 2 ** Math.max(0, attempt - 1), baseMs * BACKOFF_CAP_FACTOR);
  const digest = createHash('sha256').update(`${jobId}:${attempt}`).digest();
  const unit = digest.readUInt32BE(0) / 2 ** 32;
  return Math.round(exponential * (0.8 + 0.4 * unit));
}

/** Sum of the delays between the first and the last of `attempts` attempts, without jitter. */
export function nominalRetrySpanMs(attempts: number, baseMs: number): number {
  let total = 0;
  for (let attempt = 1; attempt < attempts; attempt++) total += Math.min(baseMs * 2 ** (attempt - 1), baseMs * BACKOFF_CAP_FACTOR);
  return total;
}

/** The worker's `settings.backoffStrategy`: BullMQ passes the number of the attempt that just failed. */
export const webhookBackoffStrategy: BackoffStrategy = (attemptsMade, _type, _err, job) => {
  const backoff = job?.opts.backoff;
  const base = typeof backoff === 'object' && backoff.delay !== undefined ? backoff.delay : 15_000;
  return retryDelayMs(attemptsMade, base, job?.id ?? '');
};
