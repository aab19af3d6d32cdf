import { Job, UnrecoverableError } from 'bullmq';

/** One handler per job name, typed by the job's payload. */
export type JobHandlers<Payloads> = { [Name in keyof Payloads]: (job: Job<Payloads[Name]>) => Promise<unknown> };

/**
 * Builds a processor's `process` from its handlers, checking at boot that every job name of the
 * queue has one. A job of an unknown name fails without retries.
 */
export function jobDispatcher<Payloads>(queue: string, names: Record<string, string>, handlers: JobHandlers<Payloads>): (job: Job) => Promise<unknown> {
  const table = handlers as Record<string, (job: Job) => Promise<unknown>>;
  const missing = Object.values(names).filter((name) => typeof table[name] !== 'function');
  if (missing.length > 0) throw new Error(`Queue ${queue} has no handler for ${missing.join(', ')}`);
  return (job) => {
    const handler = table[job.name];
    if (!handler) throw new UnrecoverableError(`Queue ${queue} has no job named ${job.name}`);
    return handler(job);
  };
}
