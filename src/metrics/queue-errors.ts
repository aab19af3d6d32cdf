import { Injectable, Logger } from '@nestjs/common';
import { describeError } from '../common/error-mapping';

/** At most one line per queue and side in this period; the lines held back are counted in the next. */
const QUIET_MS = 30_000;

interface Emitter {
  on(event: 'error', listener: (err: Error) => void): unknown;
}

/**
 * Errors that BullMQ queues and workers emit outside of any job: mostly their connections failing
 * while Redis is down or restarting. Without a listener BullMQ writes each of them, stack and all,
 * to stderr with `console.error`, once per reconnect attempt of every connection. Here they become
 * one structured warning per queue and side every {@link QUIET_MS} at most, with the number held
 * back since the last one.
 */
@Injectable()
export class QueueErrors {
  private readonly logger = new Logger('Queues');
  private readonly quiet = new Map<string, { until: number; held: number }>();

  /** Takes over the `error` events of a BullMQ Queue (`side` 'queue') or Worker (`side` 'worker'). */
  watch(emitter: Emitter, queue: string, side: 'queue' | 'worker'): void {
    emitter.on('error', (err) => this.report(queue, side, err));
  }

  report(queue: string, side: 'queue' | 'worker', err: Error): void {
    const key = `${queue}|${side}`;
    const now = Date.now();
    const state = this.quiet.get(key);
    if (state && state.until > now) {
      state.held++;
      return;
    }
    this.quiet.set(key, { until: now + QUIET_MS, held: 0 });
    this.logger.warn({ msg: 'A job queue lost touch with Redis or failed outside a job; it retries by itself', queue, side, heldBack: state?.held ?? 0, ...describeError(err) });
  }
}
