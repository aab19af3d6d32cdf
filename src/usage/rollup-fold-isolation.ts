import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Gauge } from 'prom-client';
import { DataSource } from 'typeorm';
import { describeError } from '../common/error-mapping';
import { MetricsService } from '../metrics/metrics.service';
import { foldBatch, FoldResult, isFoldOverflow, journalOrgs } from './rollup-journal';

/** How long an org whose deltas overflow a rollup stays out of the folds before it is tried again. */
export const SET_ASIDE_RETRY_MS = 5 * 60_000;

/**
 * The orgs this process leaves out of its folds, each with the time (ms) of its next try. Kept
 * apart from the folding so its rules are plain: an org stays set aside until a fold of its own
 * deltas drains them, and a failed try only moves its next try.
 */
export class SetAsideOrgs {
  private readonly nextTry = new Map<string, number>();

  constructor(private readonly retryMs = SET_ASIDE_RETRY_MS) {}

  get size(): number {
    return this.nextTry.size;
  }

  /** Every org set aside, due or not: the usual fold leaves all of them out (the due ones are tried alone). */
  all(): string[] {
    return [...this.nextTry.keys()];
  }

  /** The orgs whose next try has come. */
  due(now: number): string[] {
    return [...this.nextTry].filter(([, at]) => at <= now).map(([orgId]) => orgId);
  }

  /** Sets an org aside until `now` + the retry interval; true when it was not set aside before. */
  setAside(orgId: string, now: number): boolean {
    const known = this.nextTry.has(orgId);
    this.nextTry.set(orgId, now + this.retryMs);
    return !known;
  }

  /** Takes an org back into the usual folds; true when it was set aside. */
  release(orgId: string): boolean {
    return this.nextTry.delete(orgId);
  }
}

const NOTHING: FoldResult = { deltas: 0, records: 0n, lagSeconds: 0, locked: true };

function add(a: FoldResult, b: FoldResult): FoldResult {
  return { deltas: a.deltas + b.deltas, records: a.records + b.records, lagSeconds: Math.max(a.lagSeconds, b.lagSeconds), locked: a.locked && b.locked };
}

/**
 * Folds the journal around orgs whose deltas cannot be folded because a sum would not fit a
 * rollup's bigint (see isFoldOverflow). Such deltas fail every fold they are part of, and a fold
 * takes the oldest rows first, so without this one org would stop the folding of every org: the
 * journal would grow without bound, and every other tenant's reads would scan it.
 *
 * The usual fold is still the one statement of foldSql. Only when it fails with an overflow are
 * the pending orgs folded in halves, each half in its own transaction, and each half that fails
 * halved again down to single orgs: k such orgs among n cost about 2k·log2(n) folds, once. An org
 * whose own fold fails is set aside: its deltas stay in the journal (readers still count them
 * exactly, as numeric), it is logged once and counted in `tally_rollup_fold_blocked_orgs`. Later
 * folds of this process leave it out, and try it alone every SET_ASIDE_RETRY_MS, since a rollup
 * rebuild or the retention may have removed what overflowed.
 */
@Injectable()
export class RollupFoldIsolation {
  private readonly logger = new Logger(RollupFoldIsolation.name);
  private readonly setAside = new SetAsideOrgs();
  private readonly blocked: Gauge<string>;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    metrics: MetricsService,
  ) {
    this.blocked = metrics.gauge(
      'tally_rollup_fold_blocked_orgs',
      'Orgs whose rollup deltas this process leaves in the journal because folding them overflows a rollup sum',
    );
  }

  /** A fold of up to `limit` journal rows: one transaction, more only around an overflow. */
  async fold(limit: number, minuteFrom: Date): Promise<FoldResult> {
    let total = NOTHING;
    for (const orgId of this.setAside.due(Date.now())) {
      total = add(total, await this.tryAgain(orgId, limit, minuteFrom));
      if (!total.locked) return total;
    }
    try {
      return add(total, await foldBatch(this.dataSource, limit, minuteFrom, { except: this.setAside.all() }));
    } catch (err) {
      if (!isFoldOverflow(err)) throw err;
      return add(total, await this.foldAround(limit, minuteFrom, err));
    }
  }

  /** Folds a set-aside org alone; one that folds fewer rows than asked is drained, and back in the usual folds. */
  private async tryAgain(orgId: string, limit: number, minuteFrom: Date): Promise<FoldResult> {
    try {
      const result = await foldBatch(this.dataSource, limit, minuteFrom, { only: [orgId] });
      if (result.locked && result.deltas < limit && this.setAside.release(orgId)) {
        this.logger.log({ msg: "An org's rollup deltas fold again; it is back in the usual folds", orgId });
        this.blocked.set(this.setAside.size);
      }
      return result;
    } catch (err) {
      if (!isFoldOverflow(err)) throw err;
      // Logged when it was first set aside: once, not every few minutes.
      this.setAside.setAside(orgId, Date.now());
      return NOTHING;
    }
  }

  /** After a fold failed with an overflow: folds the pending orgs in halves, setting aside each org whose own fold fails. */
  private async foldAround(limit: number, minuteFrom: Date, overflow: unknown): Promise<FoldResult> {
    let total = NOTHING;
    // Each returns false when another folder took the lock meanwhile: it goes on from there.
    const foldGroup = async (orgIds: string[]): Promise<boolean> => {
      try {
        total = add(total, await foldBatch(this.dataSource, limit, minuteFrom, { only: orgIds }));
        return total.locked;
      } catch (err) {
        if (!isFoldOverflow(err)) throw err;
        return foldHalves(orgIds, err);
      }
    };
    const foldHalves = async (orgIds: string[], err: unknown): Promise<boolean> => {
      if (orgIds.length === 1) {
        this.block(orgIds[0], err);
        return true;
      }
      const middle = Math.ceil(orgIds.length / 2);
      return (await foldGroup(orgIds.slice(0, middle))) && foldGroup(orgIds.slice(middle));
    };
    // Every pending org, not only those of the rows the failed fold took: a scan need not return
    // the same rows twice, and the orgs it missed are folded here all the same. A single org is
    // the one whose fold just failed, so it is set aside without failing a second time.
    const orgIds = await journalOrgs(this.dataSource, this.setAside.all());
    if (orgIds.length > 0) await foldHalves(orgIds, overflow);
    return total;
  }

  private block(orgId: string, err: unknown): void {
    if (this.setAside.setAside(orgId, Date.now())) {
      this.logger.error({
        msg: `An org's rollup deltas overflow a rollup sum (bigint): they stay in the journal (its reads stay exact) and this worker folds every other org's, trying this org again every ${SET_ASIDE_RETRY_MS / 60_000} minutes`,
        orgId,
        ...describeError(err),
      });
    }
    this.blocked.set(this.setAside.size);
  }
}
