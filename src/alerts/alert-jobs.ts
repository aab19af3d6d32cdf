import type { JobsOptions } from 'bullmq';
import type { BudgetScope } from '../budgets/budget.entity';
import { WEBHOOK_BACKOFF } from './webhook-backoff';

/** The alerts queues: evaluations (cheap, deduplicated) and webhook deliveries (slow, retried). */
export enum AlertQueue {
  Evaluate = 'alerts-evaluate',
  Deliver = 'alerts-deliver',
}

export enum EvaluateJob {
  /** Every budget, batched; run by the job scheduler every ALERT_EVALUATION_INTERVAL_MS. */
  All = 'evaluate-all',
  /** The budgets of one scope, after ingest touched it (in the windows of one UTC day) or one of its budgets changed. */
  Scope = 'evaluate-scope',
}

export enum DeliverJob {
  /** The delivery of a new alert; job id `deliver-<alertId>`, so it is never enqueued twice. */
  Deliver = 'deliver',
  /** A new attempt sequence for an alert, asked for through the API. */
  Redeliver = 'redeliver',
}

export type EvaluateAllPayload = Record<string, never>;

export interface EvaluateScopePayload {
  scope: BudgetScope;
  scopeId: string;
  /** The UTC day (YYYY-MM-DD) records of the ingest fell in: its windows are evaluated too (late records). */
  day?: string;
}

export interface DeliverPayload {
  alertId: string;
}

export interface RedeliverPayload {
  alertId: string;
  /** The `pending` delivery row the first attempt fills in. */
  deliveryId: string;
}

export interface EvaluatePayloads {
  [EvaluateJob.All]: EvaluateAllPayload;
  [EvaluateJob.Scope]: EvaluateScopePayload;
}

export interface DeliverPayloads {
  [DeliverJob.Deliver]: DeliverPayload;
  [DeliverJob.Redeliver]: RedeliverPayload;
}

export const EVALUATE_ALL_SCHEDULER_ID = 'evaluate-all';

/** Finished evaluations are dropped; a few failures are kept for inspection. */
export const EVALUATE_JOB_OPTIONS: JobsOptions = {
  attempts: 3,
  backoff: { type: 'fixed', delay: 1000 },
  removeOnComplete: true,
  removeOnFail: { count: 100 },
};

/**
 * At most one waiting and one running evaluation per scope and day: a job waiting for the same
 * scope and day will read the new records anyway; one already running is followed by one more.
 */
export function evaluateScopeOptions(payload: EvaluateScopePayload): JobsOptions {
  const id = `scope-${payload.scope}-${payload.scopeId}${payload.day ? `-${payload.day}` : ''}`;
  return { ...EVALUATE_JOB_OPTIONS, deduplication: { id, keepLastIfActive: true } };
}

export function deliverJobId(alertId: string): string {
  return `deliver-${alertId}`;
}

/**
 * At most one redelivery of an alert runs at a time: its job id is the alert's, and the job is
 * removed as soon as it ends (see {@link redeliveryJobOptions}), so "a job with this id exists"
 * means "a redelivery of this alert is queued, running or waiting for a retry".
 */
export function redeliverJobId(alertId: string): string {
  return `redeliver-${alertId}`;
}

/** A redelivery retries like a delivery; it is removed when it ends, which frees its alert for the next one. */
export function redeliveryJobOptions(alertId: string, attempts: number, retryBaseMs: number): JobsOptions {
  return { ...deliveryJobOptions(redeliverJobId(alertId), attempts, retryBaseMs), removeOnComplete: true, removeOnFail: true };
}

/**
 * Delivery jobs retry with the webhook backoff (base delay in `backoff.delay`). Completed jobs are
 * kept for a day, so re-enqueueing a delivered alert by its deterministic id is a no-op; failed
 * ones are dropped at once, so an alert still `pending` after its job died (a worker killed twice
 * on it, the database down when it gave up) gets a fresh job from the evaluator's repair pass.
 * The handler checks the alert's state first, so a re-enqueued settled alert sends nothing.
 */
export function deliveryJobOptions(jobId: string, attempts: number, retryBaseMs: number): JobsOptions {
  return {
    jobId,
    attempts,
    backoff: { type: WEBHOOK_BACKOFF, delay: retryBaseMs },
    removeOnComplete: { age: 24 * 3600, count: 100_000 },
    removeOnFail: true,
  };
}
