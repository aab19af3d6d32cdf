import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { Budget } from './budget.entity';
import type { ScopeRef } from './budget-block-store';
import { scopeKey } from './budget-scope';

/** The budget queries of evaluation and state refreshes (the API's own reads are in BudgetsService). */
@Injectable()
export class BudgetRepository {
  constructor(@InjectRepository(Budget) private readonly budgets: Repository<Budget>) {}

  /** Every budget of the given scopes. */
  findByScopes(scopes: ScopeRef[]): Promise<Budget[]> {
    if (scopes.length === 0) return Promise.resolve([]);
    return this.budgets
      .createQueryBuilder('b')
      .where('(b.scope, b.scope_id) IN (SELECT * FROM unnest(CAST(:scopes AS varchar[]), CAST(:ids AS varchar[])))', {
        scopes: scopes.map((s) => s.scope),
        ids: scopes.map((s) => s.scopeId),
      })
      .orderBy('b.id')
      .getMany();
  }

  /**
   * The budgets of the scopes an ingest touched: the org, some of its keys, and the teams and end
   * users of the records (given as org-local ids; omitted: every team and user budget of the org).
   */
  findForUsage(orgId: string, apiKeyIds: string[], teamIds?: string[], userIds?: string[]): Promise<Budget[]> {
    const { sql, params } = usageScopesSql(orgId, apiKeyIds, teamIds, userIds);
    return this.budgets.createQueryBuilder('b').where(sql, params).orderBy('b.id').getMany();
  }

  /** Budgets with at least one `block` threshold, by org (the reservation reconciler walks them). */
  findBlocking(): Promise<Budget[]> {
    return this.budgets.createQueryBuilder('b').where(`b.thresholds @> '[{"action": "block"}]'::jsonb`).orderBy('b.org_id').addOrderBy('b.id').getMany();
  }

  /** Scopes that have a budget, in (scope, scope_id) order after `after`. */
  async scopePage(after: ScopeRef | null, limit: number): Promise<ScopeRef[]> {
    const rows: Array<{ scope: ScopeRef['scope']; scope_id: string }> = await this.budgets.query(
      `SELECT DISTINCT scope, scope_id FROM budgets WHERE (scope, scope_id) > ($1, $2) ORDER BY scope, scope_id LIMIT $3`,
      [after?.scope ?? '', after?.scopeId ?? '', limit],
    );
    return rows.map((row) => ({ scope: row.scope, scopeId: row.scope_id }));
  }
}

/**
 * The condition (on alias `b`) selecting the budgets an ingest touched; team and user ids are
 * org-local and matched as their stored keys (`{orgId}/{id}`).
 */
export function usageScopesSql(orgId: string, apiKeyIds: string[], teamIds?: string[], userIds?: string[]): { sql: string; params: Record<string, unknown> } {
  const local = (scope: 'team' | 'user', ids: string[] | undefined, name: string) =>
    ids === undefined ? `(b.scope = '${scope}' AND b.org_id = :orgId)` : `(b.scope = '${scope}' AND b.scope_id = ANY(:${name}))`;
  return {
    sql: [`(b.scope = 'org' AND b.scope_id = :orgId)`, `(b.scope = 'apikey' AND b.scope_id = ANY(:keys))`, local('team', teamIds, 'teams'), local('user', userIds, 'users')].join(' OR '),
    params: {
      orgId,
      keys: apiKeyIds,
      teams: (teamIds ?? []).map((id) => scopeKey('team', orgId, id)),
      users: (userIds ?? []).map((id) => scopeKey('user', orgId, id)),
    },
  };
}
