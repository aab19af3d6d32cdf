import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Gauge } from 'prom-client';
import { DataSource, MoreThan } from 'typeorm';
import { describeError } from '../common/error-mapping';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { MetricsService } from '../metrics/metrics.service';
import { Budget } from './budget.entity';
import { Evaluation } from './budget-evaluation';
import { BudgetEvaluator } from './budget-evaluator';

const PAGE = 500;
/** Scrapes closer together than this reuse the last figures (two Prometheus servers, say). */
const REUSE_MS = 5000;
/** A scrape waits at most this long; a slower evaluation fills the gauges for the next one. */
const SCRAPE_WAIT_MS = 5000;

interface Ratio {
  labels: { budget_id: string; org_id: string; scope: string; limit_kind: string };
  value: number;
}

/**
 * METRICS_BUDGET_GAUGES=true (SPEC §7): `tally_budget_spend_ratio{budget_id,…}`, each budget's
 * spend in its current window over its limit (1 = at the limit), computed on scrape from the same
 * spend reads the evaluator makes (budget-spend.ts: the org and key budgets of whole-UTC-day
 * windows of a page in one statement), so the figures are as fresh as the scrape, in whichever
 * worker is scraped. Opt-in, since it is one series per budget. Budgets are read a page at a
 * time; one that cannot be evaluated is left out (and logged), not the rest.
 */
@Injectable()
export class BudgetGauges implements OnModuleInit {
  private readonly logger = new Logger(BudgetGauges.name);
  private last: { at: number; ratios: Ratio[] } | undefined;
  private running: Promise<Ratio[] | undefined> | undefined;

  constructor(
    private readonly metrics: MetricsService,
    private readonly evaluator: BudgetEvaluator,
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onModuleInit(): void {
    if (!this.config.metricsBudgetGauges) return;
    this.metrics.gauge(
      'tally_budget_spend_ratio',
      "Each budget's spend in its current window divided by its limit (1 = at the limit); METRICS_BUDGET_GAUGES=true",
      ['budget_id', 'org_id', 'scope', 'limit_kind'],
      (gauge) => this.collect(gauge),
    );
  }

  private async collect(gauge: Gauge<string>): Promise<void> {
    if (!this.last || Date.now() - this.last.at > REUSE_MS) {
      this.running ??= this.evaluate()
        .catch((err) => {
          this.logger.warn({ msg: 'Budget spend gauges could not be computed; they keep their last values', ...describeError(err) });
          return undefined;
        })
        .finally(() => (this.running = undefined));
      const ratios = await Promise.race([this.running, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), SCRAPE_WAIT_MS).unref())]);
      if (ratios) this.last = { at: Date.now(), ratios };
    }
    gauge.reset(); // deleted budgets disappear
    for (const ratio of this.last?.ratios ?? []) gauge.set(ratio.labels, ratio.value);
  }

  private async evaluate(): Promise<Ratio[]> {
    const ratios: Ratio[] = [];
    const repository = this.dataSource.getRepository(Budget);
    let after = '';
    for (;;) {
      const page = await repository.find({ where: { id: MoreThan(after) }, order: { id: 'ASC' }, take: PAGE });
      if (page.length === 0) break;
      for (const e of await this.evaluatePage(page)) {
        ratios.push({
          labels: { budget_id: e.budget.id, org_id: e.budget.orgId, scope: e.budget.scope, limit_kind: e.budget.limitKind },
          value: e.pct / 100,
        });
      }
      after = page[page.length - 1].id;
    }
    return ratios;
  }

  /** Budgets that cannot be evaluated are left out (the evaluator logs and counts them). */
  private evaluatePage(page: Budget[]): Promise<Evaluation[]> {
    return this.evaluator.evaluateCurrent(page);
  }
}
