import { Injectable, Logger } from '@nestjs/common';
import type { Job } from 'bullmq';
import { Counter } from 'prom-client';
import { describeError } from '../common/error-mapping';
import { MetricsService } from './metrics.service';

/**
 * Failed job runs of every queue (SPEC §7): each is logged with its queue, job name and id and
 * the error (no payload: it may name what is not for a log), and a job that failed for good — no
 * attempt left, or unrecoverable — is counted in `tally_jobs_failed_total{queue}`. A run that
 * will be retried is logged at info, a job that gave up at warn.
 */
@Injectable()
export class JobFailures {
  private readonly logger = new Logger('Jobs');
  private readonly failed: Counter<string>;

  constructor(metrics: MetricsService) {
    this.failed = metrics.counter('tally_jobs_failed_total', 'Jobs that failed for good (no attempt left, or unrecoverable), by queue', [
      'queue',
    ]);
  }

  report(queue: string, job: Job | undefined, err: Error): void {
    const attempts = job?.opts.attempts ?? 1;
    const final = !job || job.finishedOn !== undefined || job.attemptsMade >= attempts || err?.name === 'UnrecoverableError';
    const line = { msg: final ? 'Job failed' : 'Job run failed; it will be retried', queue, job: job?.name, jobId: job?.id, attemptsMade: job?.attemptsMade, attempts, ...describeError(err) };
    if (final) {
      this.failed.inc({ queue });
      this.logger.warn(line);
    } else {
      this.logger.log(line);
    }
  }

  /** Makes the counter's series of these queues visible at 0 before anything fails. */
  watch(queues: string[]): void {
    for (const queue of queues) this.failed.inc({ queue }, 0);
  }
}
