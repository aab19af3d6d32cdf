import { Injectable, Logger } from '@nestjs/common';
import { Budget } from '../budgets/budget.entity';
import { currentWindow } from '../budgets/budget-evaluation';
import { displayScopeId } from '../budgets/budget-scope';
import { BudgetRepository } from '../budgets/budget.repository';
import { BudgetEvaluator } from '../budgets/budget-evaluator';
import { describeError } from '../common/error-mapping';
import type { IngestedRecord } from '../usage/ingest-records';
import { ReservationCounters } from './reservation-counters';
import { CounterWindow, windowId, WindowSpend } from './reservation-counter-types';
import { counterWindow, lowestBlockPct } from './reservation-budgets';
import { ReservationMetrics } from './reservation-metrics';
import { ReservationsRepository } from './reservations.repository';
import { ReservationsService } from './reservations.service';

/** A usage record just stored (never one skipped as a duplicate), as settling needs it. */
type SettledRecord = Pick<IngestedRecord, 'orgId' | 'id' | 'apiKeyId' | 'teamId' | 'userId' | 'createdAt' | 'tokens' | 'costNano' | 'reservationId'>;

/**
 * Step 2 of the ingest workflow (src/workflows/ingest.workflow.ts), after the records are stored: adds the newly stored records' spend to the committed
 * counters of every budget with a block threshold they count in (the org's, the key's, the key's
 * team's and the end user's, each in its own time zone's window), and settles the reservations
 * they name, replacing each hold by the record's actual usage in one script call per org. Called
 * once per stored record (duplicates are never passed), so a record re-sent settles once; a
 * record of an expired or released reservation still counts, once.
 */
@Injectable()
export class ReservationSettlementService {
  private readonly logger = new Logger(ReservationSettlementService.name);

  constructor(
    private readonly repository: ReservationsRepository,
    private readonly budgets: BudgetRepository,
    private readonly counters: ReservationCounters,
    private readonly reservations: ReservationsService,
    private readonly metrics: ReservationMetrics,
    private readonly evaluator: BudgetEvaluator,
  ) {}

  /**
   * Never throws: the records are stored whatever happens here. A failure leaves the counters
   * behind PostgreSQL (the reconciler repairs them) and the hold to expire by itself.
   */
  async settle(records: SettledRecord[], loaded?: Budget[]): Promise<void> {
    if (records.length === 0) return;
    try {
      await this.settleOrThrow(records, loaded);
    } catch (err) {
      this.metrics.settleFailed();
      this.logger.error({ msg: 'Settling reservations after an ingest failed; the reconciler will repair the counters', ...describeError(err) });
    }
  }

  /** `loaded`: the budgets of the records' scopes, when the caller read them already (the ingest workflow). */
  private async settleOrThrow(records: SettledRecord[], loaded?: Budget[]): Promise<void> {
    // A budget whose thresholds cannot be read (a row stored around the API) is skipped like one
    // whose window cannot be computed (below): it never stops the settling of the others.
    const budgets = (loaded ?? (await this.budgetsOf(records))).filter((b) => this.evaluator.isolate(b, () => lowestBlockPct(b) !== undefined) === true);
    const settled = await this.repository.settle(
      records.filter((r) => r.reservationId).map((r) => ({ orgId: r.orgId, apiKeyId: r.apiKeyId, reservationId: r.reservationId!, recordId: r.id })),
    );

    const perOrg = new Map<string, { removals: Array<{ window: CounterWindow; reservationId: string }>; spends: WindowSpend[] }>();
    const of = (orgId: string) => {
      let entry = perOrg.get(orgId);
      if (!entry) perOrg.set(orgId, (entry = { removals: [], spends: [] }));
      return entry;
    };
    for (const row of settled) of(row.orgId).removals.push(...this.reservations.holdWindows(row));
    // Budgets by the scope they count (see appliesTo).
    const byScope = new Map<string, Budget[]>();
    for (const budget of budgets) {
      const key = scopeOf(budget);
      byScope.set(key, [...(byScope.get(key) ?? []), budget]);
    }
    // A budget whose window cannot be computed (a stored time zone this runtime does not know) is
    // skipped, logged and counted once: it never stops the settling of the other budgets, and
    // of other orgs' records in the same batch.
    const skipped = new Set<Budget>();
    const windowOf = (budget: Budget, at: number): CounterWindow | undefined => {
      if (skipped.has(budget)) return undefined;
      const current = this.evaluator.isolate(budget, () => currentWindow(budget, new Date(at * 1000)));
      if (!current) {
        skipped.add(budget);
        return undefined;
      }
      return counterWindow(budget, current);
    };
    // Each window's records one by one, listed in one more pass over the batch when a window first
    // needs them (one being rebuilt, or any window of an org with holds to remove).
    let lists: Map<string, Array<{ recordId: string; amount: bigint }>> | undefined;
    const listOf = (id: string) => {
      if (!lists) {
        const made = new Map<string, Array<{ recordId: string; amount: bigint }>>();
        forEachAddition(records, byScope, windowOf, (record, window, amount) => {
          const key = windowId(window);
          let list = made.get(key);
          if (!list) made.set(key, (list = []));
          list.push({ recordId: record.id, amount });
        });
        lists = made;
      }
      return lists.get(id) ?? [];
    };
    const spends = new Map<string, WindowSpend>();
    forEachAddition(records, byScope, windowOf, (_record, window, amount) => {
      const id = windowId(window);
      let spend = spends.get(id);
      if (!spend) {
        spends.set(id, (spend = { window, sum: 0n, records: () => listOf(id) }));
        of(window.orgId).spends.push(spend);
      }
      spend.sum += amount;
    });
    // Each org on its own: one org's failing script leaves the others' counters settled.
    const results = await Promise.allSettled([...perOrg].map(([orgId, entry]) => this.counters.settle(orgId, entry.removals, entry.spends)));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0) throw failed[0].reason;
  }

  /** Every budget of the records' scopes (org, key, team, end user). */
  private async budgetsOf(records: SettledRecord[]): Promise<Budget[]> {
    const scopesByOrg = new Map<string, { keys: Set<string>; teams: Set<string>; users: Set<string> }>();
    for (const r of records) {
      let scopes = scopesByOrg.get(r.orgId);
      if (!scopes) scopesByOrg.set(r.orgId, (scopes = { keys: new Set(), teams: new Set(), users: new Set() }));
      scopes.keys.add(r.apiKeyId);
      if (r.teamId) scopes.teams.add(r.teamId);
      if (r.userId) scopes.users.add(r.userId);
    }
    return (await this.budgets.findForUsage([...scopesByOrg].map(([orgId, s]) => ({ orgId, apiKeyIds: [...s.keys], teamIds: [...s.teams], userIds: [...s.users] })))).flat();
  }
}

/** The key {@link appliesTo} matches a record's scopes by (a superset: appliesTo decides). */
function scopeOf(budget: Budget): string {
  return budget.scope === 'org' ? `org:${budget.orgId}` : `${budget.scope}:${budget.orgId}:${budget.scope === 'apikey' ? budget.scopeId : displayScopeId(budget)}`;
}

/**
 * Calls `add` for every budget window a record adds to, in record order, with the amount (never
 * 0): the record's window in the budget's own time zone (`windowOf`: the function the evaluator
 * uses, or undefined to skip the budget), the last one of each budget reused while records fall in it.
 */
function forEachAddition(
  records: SettledRecord[],
  byScope: Map<string, Budget[]>,
  windowOf: (budget: Budget, at: number) => CounterWindow | undefined,
  add: (record: SettledRecord, window: CounterWindow, amount: bigint) => void,
): void {
  const lastWindow = new Map<Budget, CounterWindow>();
  for (const record of records) {
    const applying = [`org:${record.orgId}`, `apikey:${record.orgId}:${record.apiKeyId}`, `team:${record.orgId}:${record.teamId}`, `user:${record.orgId}:${record.userId}`];
    for (const budget of applying.flatMap((key) => byScope.get(key) ?? [])) {
      if (!appliesTo(budget, record)) continue;
      const amount = budget.limitKind === 'cost' ? record.costNano : record.tokens;
      if (amount === 0n) continue;
      let window = lastWindow.get(budget);
      if (!window || record.createdAt < window.start || record.createdAt >= window.end) {
        window = windowOf(budget, record.createdAt);
        if (!window) continue;
        lastWindow.set(budget, window);
      }
      add(record, window, amount);
    }
  }
}

function appliesTo(budget: Budget, record: SettledRecord): boolean {
  if (budget.orgId !== record.orgId) return false;
  switch (budget.scope) {
    case 'org':
      return budget.scopeId === record.orgId;
    case 'apikey':
      return budget.scopeId === record.apiKeyId;
    case 'team':
      return record.teamId !== null && displayScopeId(budget) === record.teamId;
    case 'user':
      return record.userId !== null && displayScopeId(budget) === record.userId;
  }
}
