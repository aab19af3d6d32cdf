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
   * The budgets of the scopes an ingest touched, per org in the order given, in one statement:
   * each org's own budget, some of its keys', and those of the teams and end users of the records
   * (given as org-local ids; omitted: every team and user budget of the org).
   */
  async findForUsage(touched: UsageScopes[]): Promise<Budget[][]> {
    if (touched.length === 0) return [];
    const conditions = touched.map((t, i) => usageScopesSql(t, i));
    const found = await this.budgets
      .createQueryBuilder('b')
      .where(conditions.map((c) => c.sql).join(' OR '), Object.assign({}, ...conditions.map((c) => c.params)))
      .orderBy('b.id')
      .getMany();
    return touched.map((t) => found.filter((b) => b.orgId === t.orgId));
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

/** The scopes an ingest touched in one org (see {@link BudgetRepository.findForUsage}). */
export interface UsageScopes {
  orgId: string;
  apiKeyIds: string[];
  teamIds?: string[];
  userIds?: string[];
}

/**
 * The condition (on alias `b`) selecting the budgets an ingest touched in one org; team and user
 * ids are org-local and matched as their stored keys (`{orgId}/{id}`). Its parameters are named
 * with `n`, so the conditions of several orgs can be joined by OR.
 */
export function usageScopesSql({ orgId, apiKeyIds, teamIds, userIds }: UsageScopes, n = 0): { sql: string; params: Record<string, unknown> } {
  const local = (scope: 'team' | 'user', ids: string[] | undefined, name: string) =>
    ids === undefined ? `(b.scope = '${scope}' AND b.org_id = :org${n})` : `(b.scope = '${scope}' AND b.scope_id = ANY(:${name}${n}))`;
  return {
    sql: `(b.scope = 'org' AND b.scope_id = :org${n}) OR (b.scope = 'apikey' AND b.scope_id = ANY(:keys${n})) OR ${local('team', teamIds, 'teams')} OR ${local('user', userIds, 'users')}`,
    params: {
      [`org${n}`]: orgId,
      [`keys${n}`]: apiKeyIds,
      [`teams${n}`]: (teamIds ?? []).map((id) => scopeKey('team', orgId, id)),
      [`users${n}`]: (userIds ?? []).map((id) => scopeKey('user', orgId, id)),
    },
  };
}
