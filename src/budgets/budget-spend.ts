import { forEachLimited } from '../common/for-each-limited';
import { Spend, UsageSpendService } from '../usage/usage-spend.service';
import { Budget, BudgetScope } from './budget.entity';
import { displayScopeId } from './budget-scope';

/** A budget and the span its spend is read over (its window, as its time zone has it). */
export interface BudgetSpan {
  budget: Budget;
  start: Date;
  end: Date;
}

const LOCAL_DIMENSIONS = [
  ['team', 'team_id'],
  ['user', 'user_id'],
] as const;

/**
 * The spend of each budget over its span, in order. Budgets of one org and span share their
 * reads: org and key budgets one read of the org's keys (all of them, or only the budgets' keys),
 * read for every (org, span) at once where spans are whole UTC days ({@link
 * UsageSpendService.spendByKeys}); team budgets one read grouped by team, end-user budgets one
 * grouped by user. At most `concurrency` reads run at once.
 */
export async function budgetSpends(spend: UsageSpendService, spans: BudgetSpan[], concurrency: number): Promise<Spend[]> {
  const spends: Spend[] = spans.map(() => ({ costNano: 0n, tokens: 0n }));
  const groups = new Map<string, { orgId: string; start: Date; end: Date; members: number[] }>();
  spans.forEach(({ budget, start, end }, i) => {
    const key = `${budget.orgId}|${start.getTime()}|${end.getTime()}`;
    const group = groups.get(key);
    if (group) group.members.push(i);
    else groups.set(key, { orgId: budget.orgId, start, end, members: [i] });
  });
  const of = (members: number[], scopes: BudgetScope[]) => members.filter((i) => scopes.includes(spans[i].budget.scope));

  const keyed = [...groups.values()].map((g) => ({ ...g, members: of(g.members, ['org', 'apikey']) })).filter((g) => g.members.length > 0);
  const byKeys = await spend.spendByKeys(
    keyed.map(({ orgId, start, end, members }) => ({
      orgId,
      from: start,
      to: end,
      apiKeyIds: members.some((i) => spans[i].budget.scope === 'org') ? undefined : [...new Set(members.map((i) => spans[i].budget.scopeId))],
    })),
    concurrency,
  );
  keyed.forEach(({ members }, k) => {
    for (const i of members) {
      const { budget } = spans[i];
      spends[i] = budget.scope === 'org' ? byKeys[k].total : (byKeys[k].byKey.get(budget.scopeId) ?? spends[i]);
    }
  });

  // Teams (the team_id records carry) and end users: one read each, grouped by the org-local id.
  const local = [...groups.values()].flatMap((g) =>
    LOCAL_DIMENSIONS.map(([scope, dimension]) => ({ ...g, dimension, members: of(g.members, [scope]) })).filter((l) => l.members.length > 0),
  );
  await forEachLimited(local, concurrency, async ({ orgId, start, end, dimension, members }) => {
    const ids = [...new Set(members.map((i) => displayScopeId(spans[i].budget)))];
    const { byValue } = await spend.spendByDimension(orgId, start, end, dimension, ids);
    for (const i of members) spends[i] = byValue.get(displayScopeId(spans[i].budget)) ?? spends[i];
  });
  return spends;
}
