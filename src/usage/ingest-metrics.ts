import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Counter } from 'prom-client';
import { DataSource } from 'typeorm';
import { nanoToNumber } from '../common/money';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { MetricsService } from '../metrics/metrics.service';

/** Model labels are the price book's models (set by cluster admins only), at most this many; anything else is `other`. */
const MAX_MODEL_LABELS = 200;
const PRICED_MODELS_TTL_MS = 60_000;
export const OTHER_MODEL = 'other';

/** What one ingest stored, for the metrics. */
export interface IngestedRecord {
  model: string;
  costNano: bigint;
}

/**
 * Ingest figures (SPEC §7): records stored and duplicates skipped, and spend by model. Models are
 * whatever a client sends, so labelling by them would be unbounded: the `model` label is the
 * model's name only when the price book has it — a list only cluster admins extend, capped at
 * 200 — and `other` for the rest. The list is re-read at most once a minute.
 */
@Injectable()
export class IngestMetrics {
  private readonly ingested: Counter<string>;
  private readonly duplicates: Counter<string>;
  private readonly spend: Counter<string>;
  private priced: { models: Set<string>; readAt: number } | undefined;
  private reading: Promise<void> | undefined;

  constructor(
    metrics: MetricsService,
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.ingested = metrics.counter('tally_records_ingested_total', 'Completion records stored by ingest (duplicates not included)');
    this.duplicates = metrics.counter('tally_records_duplicates_total', 'Ingested completion records skipped as already stored (same org and id)');
    this.spend = metrics.counter(
      'tally_spend_total',
      'Cost of the stored records in major units of the currency, by model (models of the price book by name, others as "other")',
      ['model', 'currency'],
    );
    this.ingested.inc(0);
    this.duplicates.inc(0);
  }

  /** Counts a batch; never throws (metrics must not fail an ingest that is already stored). */
  async record(stored: IngestedRecord[], duplicates: number): Promise<void> {
    try {
      await this.count(stored, duplicates);
    } catch {
      // a figure lost, nothing else
    }
  }

  private async count(stored: IngestedRecord[], duplicates: number): Promise<void> {
    this.ingested.inc(stored.length);
    if (duplicates > 0) this.duplicates.inc(duplicates);
    if (stored.length === 0) return;
    const models = await this.pricedModels().catch(() => new Set<string>());
    const byModel = new Map<string, bigint>();
    for (const r of stored) {
      const label = models.has(r.model) ? r.model : OTHER_MODEL;
      byModel.set(label, (byModel.get(label) ?? 0n) + r.costNano);
    }
    for (const [model, nano] of byModel) {
      if (nano > 0n) this.spend.inc({ model, currency: this.config.currency }, nanoToNumber(nano));
    }
  }

  /** The price book changed in this process: read the model list again on the next ingest. */
  invalidate(): void {
    this.priced = undefined;
  }

  private async pricedModels(): Promise<Set<string>> {
    const fresh = this.priced && Date.now() - this.priced.readAt < PRICED_MODELS_TTL_MS;
    if (!fresh) {
      this.reading ??= this.dataSource
        .query(`SELECT DISTINCT model FROM model_prices ORDER BY model LIMIT $1`, [MAX_MODEL_LABELS])
        .then((rows: Array<{ model: string }>) => {
          this.priced = { models: new Set(rows.map((row) => row.model)), readAt: Date.now() };
        })
        .finally(() => (this.reading = undefined));
      if (!this.priced) await this.reading;
    }
    return this.priced?.models ?? new Set();
  }
}
