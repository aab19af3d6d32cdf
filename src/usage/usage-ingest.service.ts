import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { InjectDataSource } from '@nestjs/typeorm';
import type { PoolClient } from 'pg';
import { DataSource, EntityManager } from 'typeorm';
import { NUMERIC_OUT_OF_RANGE, pgErrorCode } from '../database/pg-errors';
import { AppException, FieldProblem } from '../common/errors';
import { MAX_BIGINT } from '../common/money';
import { IngestRecordDto } from './dto/ingest.dto';
import { IngestMetrics } from './ingest-metrics';
import { IngestedRecord, interner, price, recordColumns, StoredRecord, toDraft } from './ingest-records';
import { pastRetention } from './ingest-validator';
import { ensurePartitions, isMissingPartition } from './partitions';
import { PriceBookService } from './price-book.service';
import { insertRecordsSql } from './rollup-journal';
import { DAY } from './time-buckets';

/** What an ingest touched in one org: the keys and UTC days of its new records (the ingest workflow evaluates their budgets). */
export interface UsageTouched {
  orgId: string;
  /** Keys with new records in this batch, sorted. */
  apiKeyIds: string[];
  /** UTC days (YYYY-MM-DD) of the new records' created_at, sorted. */
  days: string[];
  /** Teams (of the keys) and end users of the new records, sorted. */
  teamIds: string[];
  userIds: string[];
}

export interface IngestResult {
  accepted: number;
  duplicates: number;
  /** The records this ingest stored (never one skipped as a duplicate), in (org, id) order. */
  stored: IngestedRecord[];
  /** One entry per org with new records. */
  touched: UsageTouched[];
}

interface KeyRow {
  id: string;
  org_id: string;
  team_id: string | null;
}

const INSERT_SQL = insertRecordsSql();
const INSERT_STATEMENT = 'tally_insert_records';

/** Serialises rollup rebuilds (exclusive) against ingests (shared) per org; first key of pg_advisory_xact_lock(int, int). */
export const ROLLUP_LOCK_CLASS = 7_240_116;

const RETRYABLE = new Set(['40P01', '40001']); // deadlock, serialization failure

@Injectable()
export class UsageIngestService {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly priceBook: PriceBookService,
    private readonly metrics: IngestMetrics,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /**
   * Stores a batch: checks every key reference and prices every record first (a 400 naming each
   * bad index, nothing written), then inserts the new records and appends their per-minute sums
   * to the rollup journal in one statement (no shared row is updated: see rollup-journal.ts).
   * Records already stored (same org and id) are skipped and counted as duplicates.
   * Storage only: what an ingest triggers is in IngestWorkflow (src/workflows).
   */
  ingest(records: IngestRecordDto[]): Promise<IngestResult> {
    // Not async: an async function keeps its arguments alive until it returns, and a batch's
    // parsed body would then live through every round trip below and be promoted to the old
    // generation. Each record becomes one flat object here, before anything is awaited.
    try {
      const intern = interner();
      return this.ingestDrafts(records.map((record) => toDraft(record, intern)));
    } catch (err) {
      return Promise.reject(err as Error); // as an async function would
    }
  }

  private async ingestDrafts(drafts: StoredRecord[]): Promise<IngestResult> {
    const sent = drafts.length;
    const stored = await this.prepare(drafts);
    // Sorted by (org, id): concurrent batches take row locks in the same order. The sort is
    // stable, so of records sent twice in the batch the first one sent is kept.
    const sorted = stored.sort((a, b) => compare(a.orgId, b.orgId) || compare(a.id, b.id));
    const unique = sorted.filter((r, i) => i === 0 || r.id !== sorted[i - 1].id || r.orgId !== sorted[i - 1].orgId);
    const fresh = await this.store(unique);
    await this.metrics.record(fresh, sent - fresh.length);
    return { accepted: fresh.length, duplicates: sent - fresh.length, stored: fresh, touched: touchedBy(fresh) };
  }

  /** Fills in each record's org, team and cost, or throws one 400 naming every bad index (nothing is written). */
  private async prepare(drafts: StoredRecord[]): Promise<StoredRecord[]> {
    const keyIds = [...new Set(drafts.map((r) => r.apiKeyId))];
    const keyRows: KeyRow[] = await this.dataSource.query('SELECT id, org_id, team_id FROM api_keys WHERE id = ANY($1)', [keyIds]);
    const keys = new Map(keyRows.map((k) => [k.id, k]));
    const prices = await this.priceBook.resolver([...new Set(drafts.filter((r) => r.sentCostNano === null).map((r) => r.model))]);

    const problems: FieldProblem[] = [];
    drafts.forEach((record, index) => {
      const key = keys.get(record.apiKeyId);
      const tooOld = pastRetention(record.createdAt, this.config.recordsRetentionDays);
      if (tooOld) {
        // The HTTP route refuses these while validating; other paths (OTLP) meet the rule here.
        problems.push({ param: `records[${index}].created_at`, message: tooOld });
      } else if (!key) {
        problems.push({ param: `records[${index}].api_key_id`, message: `unknown API key '${record.apiKeyId}'` });
      } else if (record.sentOrgId !== null && record.sentOrgId !== key.org_id) {
        problems.push({ param: `records[${index}].org_id`, message: `does not match the org of API key '${key.id}'` });
      } else {
        record.orgId = key.org_id;
        record.teamId = key.team_id || null;
        price(record, prices);
        if (record.costNano > MAX_BIGINT) {
          problems.push({ param: `records[${index}]`, message: 'the cost computed from the price book exceeds 2^63 − 1 nano-units' });
        }
      }
    });
    if (problems.length > 0) throw AppException.validation(problems);
    return drafts;
  }

  private async store(records: StoredRecord[]): Promise<StoredRecord[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.dataSource.transaction((manager) => this.storeIn(manager, records));
      } catch (err) {
        if (isMissingPartition(err) && attempt < 3) {
          // A month without a partition yet (the worker makes them ahead; back-dated records may precede them).
          await ensurePartitions(this.dataSource, 'completion_records', records.map((r) => r.createdAt));
          continue;
        }
        const code = pgErrorCode(err);
        if (code === NUMERIC_OUT_OF_RANGE) {
          throw AppException.validation([{ param: 'records', message: 'the stored sums would exceed 2^63 − 1' }]);
        }
        if (!code || !RETRYABLE.has(code) || attempt >= 3) throw err;
      }
    }
  }

  private async storeIn(manager: EntityManager, records: StoredRecord[]): Promise<StoredRecord[]> {
    if (records.length === 0) return [];
    const orgIds = [...new Set(records.map((r) => r.orgId))];
    // Shared per-org locks: ingests run side by side; a rollup rebuild of the org waits for them.
    await manager.query(
      `SELECT pg_advisory_xact_lock_shared(${ROLLUP_LOCK_CLASS}, h) FROM (SELECT DISTINCT hashtext(o) AS h FROM unnest($1::text[]) o ORDER BY 1) l`,
      [orgIds],
    );
    // A named statement: planned once per connection (partitions added later invalidate it in PostgreSQL).
    const client = (await manager.queryRunner!.connect()) as PoolClient;
    const rows: Array<{ inserted: number; org_id: string | null; id: string | null }> = (
      await client.query({ name: INSERT_STATEMENT, text: INSERT_SQL, values: [...recordColumns(records), records.length] }).catch((err: unknown) => {
        // Read like TypeORM's QueryFailedError by the retry logic of store().
        throw Object.defineProperty(err as object, 'driverError', { value: err, enumerable: false });
      })
    ).rows;
    // The records are unique: when every one was inserted the statement names none of them.
    if (rows[0].inserted === records.length) return records;
    const insertedIds = new Map<string, Set<string>>();
    for (const row of rows) {
      if (row.org_id === null || row.id === null) continue;
      const ids = insertedIds.get(row.org_id);
      if (ids) ids.add(row.id);
      else insertedIds.set(row.org_id, new Set([row.id]));
    }
    return records.filter((r) => insertedIds.get(r.orgId)?.has(r.id) === true);
  }
}

/** Per org with new records: its keys and the UTC days of the records, sorted. */
function touchedBy(fresh: StoredRecord[]): UsageTouched[] {
  const byOrg = new Map<string, { keys: Set<string>; days: Set<number>; teams: Set<string>; users: Set<string> }>();
  for (const record of fresh) {
    let entry = byOrg.get(record.orgId);
    if (!entry) byOrg.set(record.orgId, (entry = { keys: new Set(), days: new Set(), teams: new Set(), users: new Set() }));
    entry.keys.add(record.apiKeyId);
    entry.days.add(Math.floor(record.createdAt / DAY));
    if (record.teamId) entry.teams.add(record.teamId);
    if (record.userId) entry.users.add(record.userId);
  }
  return [...byOrg].map(([orgId, { keys, days, teams, users }]) => ({
    orgId,
    apiKeyIds: [...keys].sort(),
    days: [...days].sort((a, b) => a - b).map((day) => new Date(day * DAY * 1000).toISOString().slice(0, 10)),
    teamIds: [...teams].sort(),
    userIds: [...users].sort(),
  }));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
