import type { BudgetScope } from './budget.entity';

/** Scopes whose ids are only unique inside an org (SPEC §4.2): a team of the org's keys, an end user. */
export const ORG_LOCAL_SCOPES: ReadonlySet<BudgetScope> = new Set(['team', 'user']);

/**
 * The stored `scope_id` of a scope: org and API key ids are global; a team or user id is only
 * unique inside its org, so it is stored as `{orgId}/{id}` (org ids never hold a `/`). Block
 * state, evaluation jobs and the unique (scope, scope_id, owner) index all key on this value.
 */
export function scopeKey(scope: BudgetScope, orgId: string, id: string): string {
  return ORG_LOCAL_SCOPES.has(scope) ? `${orgId}/${id}` : id;
}

/** The id of the scope as the API shows it (`scope_id`): the team or user id without its org. */
export function displayScopeId(budget: { scope: BudgetScope; scopeId: string }): string {
  return ORG_LOCAL_SCOPES.has(budget.scope) ? budget.scopeId.slice(budget.scopeId.indexOf('/') + 1) : budget.scopeId;
}

/** The org of a team or user scope key. */
export function orgOfScopeKey(key: string): string {
  return key.slice(0, key.indexOf('/'));
}
