import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { describeError } from '../common/error-mapping';
import { inHeldTransaction } from '../database/held-connection';
import { FOLD_LOCK_CLASS, FOLD_LOCK_KEY, foldBatch, FoldResult } from './rollup-journal';
import { HeldGroup, heldGroupsThatFit, holdOverflowingGroups, releaseFittingGroups } from './rollup-held-groups';

/** How often a folder tries to release held groups whose sums fit again. */
export const HELD_RELEASE_INTERVAL_MS = 5 * 60_000;

const groupKey = (g: HeldGroup) => JSON.stringify([g.orgId, g.day, g.apiKeyId, g.model]);

/**
 * Folds the journal around rollup groups whose sums would overflow a bigint (see
 * rollup-held-groups.ts). Such deltas fail every fold they are part of, and a fold takes the
 * oldest rows first, so without this one group would stop the folding of every org.
 *
 * When a fold fails with an overflow, the groups that overflow are held and the fold runs again,
 * in the same transaction under the fold lock; from then on every fold, of this process or any
 * other (the held groups are a table), moves their deltas into the held rows, where readers still
 * count them exactly, and folds everything else as usual. Each newly held group is logged once,
 * as an error. Every HELD_RELEASE_INTERVAL_MS the groups whose sums fit again (a rollup row
 * fixed, rows removed) are released, beside the folds (not awaited by them): their held rows go
 * back into the journal and fold.
 */
@Injectable()
export class RollupOverflowHolds {
  private readonly logger = new Logger(RollupOverflowHolds.name);
  private nextRelease = 0;
  private releasing: Promise<unknown> | undefined;

  /** The release under way, if any (for tests, and a clean shutdown). */
  async settled(): Promise<void> {
    await this.releasing;
  }

  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /** A fold of up to `limit` journal rows in one transaction, holding the groups that overflow. */
  async fold(limit: number, minuteFrom: Date): Promise<FoldResult> {
    // Beside the folds, not before them: its read may take a while, and folds go on meanwhile.
    if (Date.now() >= this.nextRelease && !this.releasing) {
      this.releasing = this.releaseFitting(minuteFrom).finally(() => (this.releasing = undefined));
    }
    // Logged once the fold commits: a fold that fails after holding rolls the holds back.
    const held = new Map<string, HeldGroup>();
    const result = await foldBatch(this.dataSource, limit, minuteFrom, async (runner, ctids) => {
      const found = await holdOverflowingGroups(runner, minuteFrom, ctids);
      if (found.length === 0) {
        this.logger.error({ msg: 'A rollup fold overflows a bigint sum, but no rollup group overflows: nothing is held and the fold fails until this is fixed' });
      }
      for (const group of found) held.set(groupKey(group), group);
      return found.length;
    });
    for (const group of held.values()) {
      this.logger.error({
        msg: `A rollup group's sums overflow a bigint: its deltas are held out of the rollups (reads stay exact) and every other group is folded; release is tried every ${HELD_RELEASE_INTERVAL_MS / 60_000} minutes`,
        ...group,
      });
    }
    return result;
  }

  /**
   * Releases the held groups whose sums fit again. Which may fit is read first, without the fold
   * lock (a sum over each held group's rows, which may be many: folds go on meanwhile); only when
   * some may, they are checked and released in one transaction under the lock, which it waits
   * for. A failure is logged and tried again at the next interval: it does not stop the folds.
   */
  async releaseFitting(minuteFrom: Date): Promise<HeldGroup[]> {
    this.nextRelease = Date.now() + HELD_RELEASE_INTERVAL_MS;
    try {
      const candidates = await heldGroupsThatFit(this.dataSource);
      if (candidates.length === 0) return [];
      const released = await inHeldTransaction(this.dataSource, async (runner) => {
        // Waits for the fold under way (folds are short, and the release runs beside them): a
        // try-lock would rarely win while folds run back to back under a backlog.
        await runner.query('SELECT pg_advisory_xact_lock($1, $2)', [FOLD_LOCK_CLASS, FOLD_LOCK_KEY]);
        return releaseFittingGroups(runner, minuteFrom, candidates);
      });
      for (const group of released.groups) this.logger.log({ msg: "A held rollup group's sums fit again: its held deltas are back in the journal", ...group });
      return released.groups;
    } catch (err) {
      this.logger.warn({ msg: 'Could not release held rollup groups; tried again later', ...describeError(err) });
      return [];
    }
  }
}
