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
    await queryRunner.query(`DROP INDEX "public"."alerts_budget_window_pct_key"`);
    await queryRunner.query(`CREATE UNIQUE INDEX "alerts_budget_window_pct_key" ON "alerts" ("org_id", "budget_id", "window_start", "threshold_pct", "event_type") `);
  }
}
