import { Injectable, Logger } from '@nestjs/common';
import { Budget } from '../budgets/budget.entity';
import { currentWindow } from '../budgets/budget-evaluation';
import { displayScopeId } from '../budgets/budget-scope';
import { BudgetRepository } from '../budgets/budget.repository';
import { describeError } from '../common/error-mapping';
import type { IngestedRecord } from '../usage/usage-ingest.service';
import { CounterWindow, ReservationCounters, WindowSpend } from './reservation-counters';
import { lowestBlockPct, seconds } from './reservation-budgets';
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
    const budgets = (loaded ?? (await this.budgetsOf(records))).filter((b) => lowestBlockPct(b) !== undefined);
    const settled = await this.repository.settle(
      records.filter((r) => r.reservationId).map((r) => ({ orgId: r.orgId, apiKeyId: r.apiKeyId, reservationId: r.reservationId!, recordId: r.id })),
    );

    const perOrg = new Map<string, { removals: Array<{ window: CounterWindow; reservationId: string }>; spends: Map<string, WindowSpend> }>();
    const of = (orgId: string) => {
      let entry = perOrg.get(orgId);
      if (!entry) perOrg.set(orgId, (entry = { removals: [], spends: new Map() }));
      return entry;
    };
    for (const row of settled) of(row.orgId).removals.push(...this.reservations.holdWindows(row));
    // Budgets by the scope they count (see appliesTo); the last window of each, reused while records fall in it.
    const byScope = new Map<string, Budget[]>();
    for (const budget of budgets) {
      const key = scopeOf(budget);
      byScope.set(key, [...(byScope.get(key) ?? []), budget]);
    }
    const lastWindow = new Map<Budget, WindowSpend>();
    for (const record of records) {
      const applying = [`org:${record.orgId}`, `apikey:${record.orgId}:${record.apiKeyId}`, `team:${record.orgId}:${record.teamId}`, `user:${record.orgId}:${record.userId}`];
      for (const budget of applying.flatMap((key) => byScope.get(key) ?? [])) {
        const amount = amountFor(budget, record);
        if (amount === 0n) continue;
        let spend = lastWindow.get(budget);
        if (!spend || record.createdAt < spend.window.start || record.createdAt >= spend.window.end) {
          // The record's window in the budget's own time zone (the same function the evaluator uses).
          const window = currentWindow(budget, new Date(record.createdAt * 1000));
          const counter: CounterWindow = { orgId: record.orgId, budgetId: budget.id, start: seconds(window.start), end: seconds(window.end) };
          const spends = of(record.orgId).spends;
          spend = spends.get(`${budget.id}:${counter.start}`);
          if (!spend) spends.set(`${budget.id}:${counter.start}`, (spend = { window: counter, sum: 0n, records: () => recordsIn(records, budget, counter) }));
          lastWindow.set(budget, spend);
        }
        spend.sum += amount;
      }
    }
    await Promise.all([...perOrg].map(([orgId, { removals, spends }]) => this.counters.settle(orgId, removals, [...spends.values()])));
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
    return (await Promise.all([...scopesByOrg].map(([orgId, s]) => this.budgets.findForUsage(orgId, [...s.keys], [...s.teams], [...s.users])))).flat();
  }
}

/** The key {@link appliesTo} matches a record's scopes by (a superset: appliesTo decides). */
function scopeOf(budget: Budget): string {
  return budget.scope === 'org' ? `org:${budget.orgId}` : `${budget.scope}:${budget.orgId}:${budget.scope === 'apikey' ? budget.scopeId : displayScopeId(budget)}`;
}

/** What the record adds to the budget's counter: 0 when the budget does not count it. */
function amountFor(budget: Budget, record: SettledRecord): bigint {
  if (!appliesTo(budget, record)) return 0n;
  return budget.limitKind === 'cost' ? record.costNano : record.tokens;
}

/**
 * The records that add to this window of the budget, one by one, read again from the batch
 * (only for a window a rebuild or reconciler is reading: see ReservationCounters.settle).
 */
function recordsIn(records: SettledRecord[], budget: Budget, window: CounterWindow): Array<{ recordId: string; amount: bigint }> {
  const list: Array<{ recordId: string; amount: bigint }> = [];
  for (const record of records) {
    if (record.createdAt < window.start || record.createdAt >= window.end) continue;
    const amount = amountFor(budget, record);
    if (amount !== 0n) list.push({ recordId: record.id, amount });
  }
  return list;
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
