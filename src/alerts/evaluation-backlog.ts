import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';

export interface BacklogEntry {
  orgId: string;
  apiKeyIds: string[];
  /** Undefined: every team's or end user's budget of the org (rows kept before these were). */
  teamIds?: string[];
  userIds?: string[];
  /** UTC days (YYYY-MM-DD) of the records. */
  days: string[];
}

const DRAIN_PAGE = 100;

/**
 * Evaluations an ingest could not enqueue (Redis down), kept in PostgreSQL until evaluate-all
 * runs them: what an outage could not enqueue is repaired once Redis is back.
 */
@Injectable()
export class EvaluationBacklog {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  async add(entry: BacklogEntry): Promise<void> {
    await this.dataSource.query(`INSERT INTO budget_evaluation_requests (org_id, api_key_ids, team_ids, user_ids, days) VALUES ($1, $2, $3, $4, $5)`, [
      entry.orgId,
      entry.apiKeyIds,
      entry.teamIds ?? null,
      entry.userIds ?? null,
      entry.days,
    ]);
  }

  /** Runs `evaluate` for each entry, oldest first, deleting each once it ran; returns the sum of what it returned. */
  async drain(evaluate: (entry: BacklogEntry) => Promise<number>): Promise<number> {
    let total = 0;
    let after = '0';
    // What was kept when the drain began: rows arriving meanwhile (late records keep coming) wait
    // for the next run, so one run always ends and the repair pass keeps its pace.
    const [{ last }] = (await this.dataSource.query(`SELECT coalesce(max(id), 0)::text AS last FROM budget_evaluation_requests`)) as Array<{ last: string }>;
    for (;;) {
      const rows: Array<{ id: string; org_id: string; api_key_ids: string[]; team_ids: string[] | null; user_ids: string[] | null; days: string[] }> = await this.dataSource.query(
        `SELECT id::text AS id, org_id, api_key_ids, team_ids, user_ids, days FROM budget_evaluation_requests WHERE id > $1 AND id <= $3 ORDER BY id LIMIT $2`,
        [after, DRAIN_PAGE, last],
      );
      if (rows.length === 0) return total;
      for (const row of rows) {
        total += await evaluate({ orgId: row.org_id, apiKeyIds: row.api_key_ids, teamIds: row.team_ids ?? undefined, userIds: row.user_ids ?? undefined, days: row.days });
        await this.dataSource.query(`DELETE FROM budget_evaluation_requests WHERE id = $1`, [row.id]);
      }
      after = rows[rows.length - 1].id;
    }
  }
}
