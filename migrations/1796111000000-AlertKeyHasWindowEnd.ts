import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An alert is unique per budget, window, pct and event: the window is its start and its end. Keyed
 * by the start alone, a budget switched between periods whose windows start together (a daily
 * window on the 1st and the month; a Monday and the week) found the old window's crossing in the
 * new one's place, and the new window's crossing was never recorded nor sent (found by a review).
 */
export class AlertKeyHasWindowEnd1796111000000 implements MigrationInterface {
  name = 'AlertKeyHasWindowEnd1796111000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "public"."alerts_budget_window_pct_key"`);
    await queryRunner.query(
      `CREATE UNIQUE INDEX "alerts_budget_window_pct_key" ON "alerts" ("org_id", "budget_id", "window_start", "window_end", "threshold_pct", "event_type") `,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    // Two alerts that differ only in their window's end cannot both stay under the old key: say so
    // rather than delete one (an alert is a record of what was sent).
    const [{ n }] = await queryRunner.query(
      `SELECT count(*)::int AS n FROM alerts a JOIN alerts b ON a.org_id = b.org_id AND a.budget_id = b.budget_id AND a.window_start = b.window_start
         AND a.threshold_pct = b.threshold_pct AND a.event_type = b.event_type AND a.window_end < b.window_end`,
    );
    if (n > 0) throw new Error(`AlertKeyHasWindowEnd cannot be reverted: ${n} alert(s) share a window start with another of a later window end; delete one of each pair first`);
    await queryRunner.query(`DROP INDEX "public"."alerts_budget_window_pct_key"`);
    await queryRunner.query(`CREATE UNIQUE INDEX "alerts_budget_window_pct_key" ON "alerts" ("org_id", "budget_id", "window_start", "threshold_pct", "event_type") `);
  }
}
