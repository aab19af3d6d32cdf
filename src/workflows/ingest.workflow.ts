import { Injectable, Logger } from '@nestjs/common';
import { Budget } from '../budgets/budget.entity';
import { BudgetRepository } from '../budgets/budget.repository';
import { BudgetStateRefresher } from '../budgets/budget-state-refresher';
import { describeError } from '../common/error-mapping';
import { RedisUnavailableError } from '../redis/redis-unavailable';
import { ReservationSettlementService } from '../reservations/reservation-settlement.service';
import { IngestRecordDto } from '../usage/dto/ingest.dto';
import { IngestResult, UsageIngestService, UsageTouched } from '../usage/usage-ingest.service';
import { EvaluationEnqueuer } from './evaluation-enqueuer';

/**
 * What an ingest does, in order (the REST batch endpoint and every other ingest path call this):
 * 1. store the records ({@link UsageIngestService.ingest}: validated, deduplicated, committed);
 * 2. take a block-state version, then read the budgets of the touched scopes once, in one
 *    statement (the key, org, team and end-user budgets of each org with new records): steps 3 to
 *    5 share that read;
 * 3. settle reservations ({@link ReservationSettlementService.settle}): the new records' spend
 *    goes into the reservation counters, and the holds of the reservations they name are replaced
 *    by it in one step (each record once: duplicates are never passed on);
 * 4. rewrite the block state of the budgeted scopes of every org with new records (one refresh
 *    for all of them: the spend of their org and key budgets over whole UTC days in one read), so
 *    the check blocks before the ingest answers;
 * 5. enqueue evaluations of those scopes in the windows the records fell in (late records alert
 *    for their own window; {@link EvaluationEnqueuer}).
 * Steps 3 and 4 run side by side. Steps 2 to 5 never fail or hold up the ingest: when Redis is down they give up at once; the
 * reservation reconciler repairs the counters, the evaluations go to the PostgreSQL backlog, and
 * the worker's evaluate-all repairs the block state once Redis is back.
 */
@Injectable()
export class IngestWorkflow {
  private readonly logger = new Logger(IngestWorkflow.name);

  constructor(
    private readonly usage: UsageIngestService,
    private readonly budgets: BudgetRepository,
    private readonly settlement: ReservationSettlementService,
    private readonly refresher: BudgetStateRefresher,
    private readonly evaluations: EvaluationEnqueuer,
  ) {}

  ingest(records: IngestRecordDto[]): Promise<{ accepted: number; duplicates: number }> {
    // Not async, so that no frame keeps the parsed records alive while the batch is stored (see
    // UsageIngestService.ingest).
    return this.afterIngest(this.usage.ingest(records)); // ingest() rejects rather than throws
  }

  private async afterIngest(storing: Promise<IngestResult>): Promise<{ accepted: number; duplicates: number }> {
    const { accepted, duplicates, stored, touched } = await storing;
    if (touched.length > 0) await this.afterStore(stored, touched);
    return { accepted, duplicates };
  }

  private async afterStore(stored: Parameters<ReservationSettlementService['settle']>[0], touched: UsageTouched[]): Promise<void> {
    // The version comes before any read of budgets or spend (see BudgetStateRefresher).
    const version = await this.refresher.nextVersion().catch((err: unknown) => err as Error);
    let budgets: Budget[][];
    try {
      budgets = await this.budgets.findForUsage(touched);
    } catch (err) {
      this.logger.warn({ msg: 'Could not read the budgets an ingest touched; evaluate-all will refresh them', ...describeError(err) });
      await this.settlement.settle(stored); // reads them itself, or reports its failure
      await Promise.all(touched.map((t) => this.evaluations.keep(t)));
      return;
    }
    // The counters and the block state are apart: steps 3 and 4 run side by side.
    await Promise.all([this.settlement.settle(stored, budgets.flat()), this.afterUsage(touched, budgets, version)]);
  }

  /** Steps 4 and 5: the block state of every touched org's budgets, then each org's evaluations. */
  private async afterUsage(touched: UsageTouched[], budgets: Budget[][], version: number | Error): Promise<void> {
    const orgs = touched.map((t, i): OrgBudgets => ({ touched: t, budgets: budgets[i] })).filter((o) => o.budgets.length > 0);
    if (orgs.length === 0) return;
    const failed = await this.refreshStates(orgs, version);
    for (const [t, err] of failed) {
      this.logger.warn({ msg: 'Could not refresh budget state after ingest; evaluate-all will', orgId: t.orgId, ...describeError(err) });
    }
    // Redis is down: do not wait for it a second time in this request.
    const redisDown = (o: OrgBudgets) => failed.get(o.touched) instanceof RedisUnavailableError;
    await Promise.all(orgs.map((o) => (redisDown(o) ? this.evaluations.keep(o.touched) : this.evaluations.add(o.budgets, o.touched))));
  }

  /**
   * One refresh of the orgs' budgets together (budget-spend.ts says how their spend is read).
   * When it fails for another reason than Redis, each org is refreshed on its own, so that one
   * org's failing read delays only its own state. Returns the orgs that failed, with the error.
   */
  private async refreshStates(orgs: OrgBudgets[], version: number | Error): Promise<Map<UsageTouched, unknown>> {
    const refresh = (some: OrgBudgets[]) =>
      version instanceof Error ? Promise.reject(version) : this.refresher.refreshLoaded(version, some.flatMap((o) => o.budgets));
    try {
      await refresh(orgs);
      return new Map();
    } catch (err) {
      if (err instanceof RedisUnavailableError || orgs.length === 1) return new Map(orgs.map((o) => [o.touched, err]));
    }
    const failed = new Map<UsageTouched, unknown>();
    await Promise.all(orgs.map((o) => refresh([o]).catch((err: unknown) => void failed.set(o.touched, err))));
    return failed;
  }
}

interface OrgBudgets {
  touched: UsageTouched;
  budgets: Budget[];
}
