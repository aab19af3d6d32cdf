import { AppException, ErrorCode } from '../common/errors';

/** The key of reports over every org (a cluster admin without `org_id`): they share one org's share. */
export const ALL_ORGS = '*';

interface Waiter {
  orgKey: string;
  grant: (release: () => void) => void;
  timer: NodeJS.Timeout;
}

/**
 * How many report connections a process lets run at once, in all and per org. A report holds a
 * pooled connection (and an open transaction) for as long as its reader takes: without a bound,
 * one tenant's slow readers (or many concurrent reports) would take the whole pool from ingest,
 * authentication and budgets of every tenant. A report over the bound waits, holding no
 * connection, in arrival order among those that fit; one that waits `waitMs` is a 503
 * `reports_busy` with Retry-After.
 */
export class ReportSlots {
  private inUse = 0;
  private readonly perOrg = new Map<string, number>();
  private readonly waiting: Waiter[] = [];

  constructor(
    private readonly total: number,
    private readonly perOrgLimit: number,
    private readonly waitMs: number,
    private readonly onBusy: () => void = () => undefined,
  ) {}

  /** Reports running now (for tests and metrics). */
  get running(): number {
    return this.inUse;
  }

  /** Resolves with the slot's release (idempotent) once one is free for `orgKey`; rejects with a 503 after waitMs. */
  acquire(orgKey: string): Promise<() => void> {
    // Whoever still waits does not fit (each release lets in every waiter that does): a report that fits runs.
    if (this.fits(orgKey)) return Promise.resolve(this.take(orgKey));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        orgKey,
        grant: resolve,
        timer: setTimeout(() => {
          this.waiting.splice(this.waiting.indexOf(waiter), 1);
          this.onBusy();
          reject(
            AppException.unavailable(
              ErrorCode.ReportsBusy,
              'Too many usage or cost reports are running (REPORT_CONCURRENCY, REPORT_CONCURRENCY_PER_ORG); retry after `Retry-After` seconds',
              1,
            ),
          );
        }, this.waitMs),
      };
      this.waiting.push(waiter);
    });
  }

  private fits(orgKey: string): boolean {
    return this.inUse < this.total && (this.perOrg.get(orgKey) ?? 0) < this.perOrgLimit;
  }

  private take(orgKey: string): () => void {
    this.inUse += 1;
    this.perOrg.set(orgKey, (this.perOrg.get(orgKey) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inUse -= 1;
      const left = this.perOrg.get(orgKey)! - 1;
      if (left === 0) this.perOrg.delete(orgKey);
      else this.perOrg.set(orgKey, left);
      this.grantWaiting();
    };
  }

  /** The first waiters (in arrival order) that fit now: an org at its share does not hold up the others. */
  private grantWaiting(): void {
    for (let i = 0; i < this.waiting.length && this.inUse < this.total; ) {
      const waiter = this.waiting[i];
      if (!this.fits(waiter.orgKey)) {
        i += 1;
        continue;
      }
      this.waiting.splice(i, 1);
      clearTimeout(waiter.timer);
      waiter.grant(this.take(waiter.orgKey));
    }
  }
}
