import { Injectable } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { withLateTimeout } from '../common/late-timer';

/** Job states whose counts `tally_queue_jobs` reports. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed'] as const;
/** A scrape never waits longer than this for Redis: the depths keep their last values instead. */
const QUEUE_SCRAPE_TIMEOUT_MS = 1000;

/**
 * Prometheus metrics of this process (its own registry, so several apps can live in one test
 * process). The API's `/metrics` and the worker's own port (WORKER_METRICS_PORT) serve this one
 * registry, so with PROCESS_ROLE=all the API's `/metrics` carries the worker's figures too.
 */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'tally_http_requests_total',
    help: 'HTTP requests served, by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  private readonly latency = new Histogram({
    name: 'tally_http_request_duration_seconds',
    help: 'HTTP request latency, by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly queues = new Map<string, Queue>();

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tally_' });
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    const labels = { method, route, status: String(status) };
    this.requests.inc(labels);
    this.latency.observe(labels, seconds);
  }

  counter(name: string, help: string, labelNames: string[] = []): Counter<string> {
    return (this.registry.getSingleMetric(name) as Counter<string>) ?? new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  histogram(name: string, help: string, labelNames: string[] = [], buckets?: number[]): Histogram<string> {
    return (
      (this.registry.getSingleMetric(name) as Histogram<string>) ??
      new Histogram({ name, help, labelNames, buckets, registers: [this.registry] })
    );
  }

  /** A gauge; `collect` (if given) runs on every scrape to set its values. */
  gauge(name: string, help: string, labelNames: string[] = [], collect?: (gauge: Gauge<string>) => Promise<void> | void): Gauge<string> {
    const existing = this.registry.getSingleMetric(name) as Gauge<string> | undefined;
    if (existing) return existing;
    return new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      ...(collect ? { collect(this: Gauge<string>) { return collect(this); } } : {}),
    });
  }

  /**
   * Reports the job counts of these queues, by state, in `tally_queue_jobs{queue,state}`, read
   * from Redis on each scrape (processes that run the worker watch the queues they process).
   */
  watchQueues(queues: Queue[]): void {
    for (const queue of queues) this.queues.set(queue.name, queue);
    this.gauge('tally_queue_jobs', 'Jobs in each queue, by state (read on scrape)', ['queue', 'state'], async (gauge) => {
      await Promise.all(
        [...this.queues.values()].map(async (queue) => {
          const counts = await withLateTimeout(queue.getJobCounts(...QUEUE_STATES), QUEUE_SCRAPE_TIMEOUT_MS).catch(() => null);
          if (!counts) return;
          for (const state of QUEUE_STATES) gauge.set({ queue: queue.name, state }, counts[state] ?? 0);
        }),
      );
    });
  }
}
