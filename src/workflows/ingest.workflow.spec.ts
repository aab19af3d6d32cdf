import { Logger } from '@nestjs/common';
import { Budget } from '../budgets/budget.entity';
import { BudgetStateRefresher } from '../budgets/budget-state-refresher';
import { RedisUnavailableError } from '../redis/redis-unavailable';
import { UsageTouched } from '../usage/usage-ingest.service';
import { EvaluationEnqueuer } from './evaluation-enqueuer';
import { IngestWorkflow } from './ingest.workflow';

/**
 * The block-state refresh after an ingest over several orgs: one refresh for all of them, and,
 * when that fails for another reason than Redis, one per org, so that one org's failing read
 * delays only its own state. The refresher and the enqueuer are recorders here; the refresh
 * itself runs against PostgreSQL and Redis in test/budget-teams-users.e2e-spec.ts.
 */
describe('IngestWorkflow: refreshing the block state of several orgs', () => {
  const touched = (orgId: string): UsageTouched => ({ orgId, apiKeyIds: [`key_${orgId}`], days: ['2026-12-03'], teamIds: [], userIds: [] });
  const budget = (orgId: string) => Object.assign(new Budget(), { id: `bud_${orgId}`, orgId });
  const orgs = ['a', 'b', 'c'];

  function workflow(failFor: (orgIds: string[]) => Error | null) {
    const refreshed: string[][] = [];
    const added: string[] = [];
    const kept: string[] = [];
    const refresher = {
      refreshLoaded: async (_version: number, budgets: Budget[]) => {
        const orgIds = budgets.map((b) => b.orgId);
        refreshed.push(orgIds);
        const err = failFor(orgIds);
        if (err) throw err;
        return [];
      },
    } as unknown as BudgetStateRefresher;
    const evaluations = {
      add: async (_budgets: Budget[], t: UsageTouched) => void added.push(t.orgId),
      keep: async (t: UsageTouched) => void kept.push(t.orgId),
    } as unknown as EvaluationEnqueuer;
    const flow = new IngestWorkflow(undefined as never, undefined as never, undefined as never, refresher, evaluations);
    const warned: string[] = [];
    jest.spyOn(Logger.prototype, 'warn').mockImplementation((line: { orgId?: string }) => void warned.push(line.orgId!));
    const run = () =>
      (flow as unknown as { afterUsage(t: UsageTouched[], b: Budget[][], v: number): Promise<void> }).afterUsage(
        [...orgs.map(touched), touched('none')],
        [...orgs.map((o) => [budget(o)]), []],
        7,
      );
    return { run, refreshed, added, kept, warned };
  }
  afterEach(() => jest.restoreAllMocks());

  it('refreshes every org with budgets in one call', async () => {
    const w = workflow(() => null);
    await w.run();
    expect(w.refreshed).toEqual([['a', 'b', 'c']]);
    expect(w.added.sort()).toEqual(['a', 'b', 'c']);
    expect(w.warned).toEqual([]);
  });

  it("retries org by org when the refresh fails, so one org's failure leaves the others refreshed", async () => {
    const w = workflow((orgIds) => (orgIds.includes('b') ? new Error('canceling statement due to statement timeout') : null));
    await w.run();
    expect(w.refreshed).toEqual([['a', 'b', 'c'], ['a'], ['b'], ['c']]);
    expect(w.warned).toEqual(['b']);
    // Evaluations are enqueued for every org: the worker retries the failed read.
    expect(w.added.sort()).toEqual(['a', 'b', 'c']);
    expect(w.kept).toEqual([]);
  });

  it('gives up at once when Redis is down, and keeps every evaluation in the backlog', async () => {
    const w = workflow(() => new RedisUnavailableError());
    await w.run();
    expect(w.refreshed).toEqual([['a', 'b', 'c']]);
    expect(w.warned.sort()).toEqual(['a', 'b', 'c']);
    expect(w.kept.sort()).toEqual(['a', 'b', 'c']);
    expect(w.added).toEqual([]);
  });
});
