import { scopeKey } from '../budgets/budget-scope';
import { INestApplicationContext } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { ApiKeysService } from '../auth/api-keys.service';
import { OrgsService } from '../auth/orgs.service';
import { Principal } from '../auth/principal';
import { Role, SYSTEM_ORG_ID } from '../auth/role';
import { nanoToNumber, numberToDecimalString } from '../common/money';
import { prng } from '../common/random';
import { budgetWindow, BudgetPeriod } from '../budgets/budget-window';
import type { BudgetScope, Threshold } from '../budgets/budget.entity';
import { BudgetChangeWorkflow } from '../workflows/budget-change.workflow';
import type { LimitKind } from '../budgets/budget.entity';
import type { IngestRecordDto } from '../usage/dto/ingest.dto';
import { PriceBookService } from '../usage/price-book.service';
import { UsageIngestService } from '../usage/usage-ingest.service';
import { UsageSpendService } from '../usage/usage-spend.service';
import { DEMO_MODELS, DEMO_ORGS, DEMO_SUFFIX, DemoPeriod, demoPeriods, generateRecords, JANUARY_2024 } from './demo-data';

export interface DemoOptions {
  /** Volume factor: 1 ≈ 2,300 requests on a weekday across the orgs. */
  scale: number;
  /** "Now" in Unix seconds: the current period ends here. */
  now: number;
  seed?: number;
  batchSize?: number;
}

export interface DemoKeyReport {
  org: string;
  name: string;
  role: Role;
  id: string;
  /** The secret: shown once, by the command, on stdout. */
  key: string;
}

export interface DemoReport {
  orgs: Array<{ id: string; name: string }>;
  keys: DemoKeyReport[];
  periods: DemoPeriod[];
  /** Records stored, per org name and period label. */
  records: Record<string, Record<string, number>>;
  totalRecords: number;
  budgets: Array<{ id: string; scope: BudgetScope; name: string; owner: 'cluster' | 'org'; period: BudgetPeriod; limit: number }>;
}

export class DemoAlreadyLoaded extends Error {}

/**
 * Loads the demo data through the services the API uses: orgs and keys, the price book, completion
 * records through the ingest service (so rollups and budget state stay consistent, exactly as with
 * real traffic), then budgets sized against the spend just stored. Refuses to load twice.
 */
export async function fillDemo(app: INestApplicationContext, options: DemoOptions, onProgress: (done: number, total: number) => void = () => undefined): Promise<DemoReport> {
  const dataSource = app.get(DataSource);
  const existing: Array<{ name: string }> = await dataSource.query(`SELECT name FROM orgs WHERE name LIKE $1 ORDER BY name`, [`%${DEMO_SUFFIX}`]);
  if (existing.length > 0) {
    throw new DemoAlreadyLoaded(`This database already holds the demo data (${existing.map((o) => o.name).join(', ')}); nothing was changed.`);
  }
  const operator = await operatorPrincipal(dataSource);
  const rand = prng(options.seed ?? 20240101);
  const periods = demoPeriods(options.now);

  const priceBook = app.get(PriceBookService, { strict: false });
  for (const { model, price } of DEMO_MODELS) {
    if (!price) continue;
    const dto = { input_per_mtok: price.input, cached_input_per_mtok: price.cached, output_per_mtok: price.output, effective_from: JANUARY_2024.start };
    await priceBook.set(operator, model, dto);
  }

  const orgsService = app.get(OrgsService, { strict: false });
  const apiKeys = app.get(ApiKeysService, { strict: false });
  const report: DemoReport = { orgs: [], keys: [], periods, records: {}, totalRecords: 0, budgets: [] };
  const keyIds = new Map<string, string>();
  const records: IngestRecordDto[] = [];
  for (const org of DEMO_ORGS) {
    const created = await orgsService.create(org.name);
    report.orgs.push({ id: created.id, name: created.name });
    const ids = new Map<string, string>();
    for (const key of org.keys) {
      const { key: stored, secret } = await apiKeys.create(operator, { name: key.name, role: key.role, org_id: created.id, team_id: key.teamId });
      ids.set(key.name, stored.id);
      keyIds.set(key.name, stored.id);
      report.keys.push({ org: org.name, name: key.name, role: key.role, id: stored.id, key: secret });
    }
    let n = 0;
    report.records[org.name] = {};
    for (const period of periods) {
      const generated = generateRecords(rand, { org, keyIds: ids }, period, options.scale, () => `chatcmpl-demo-${org.slug}-${++n}`);
      report.records[org.name][period.label] = generated.length;
      records.push(...generated);
    }
  }
  const gateway = await apiKeys.create(operator, { name: 'demo-gateway', role: Role.Ingest });
  report.keys.push({ org: 'system', name: 'demo-gateway', role: Role.Ingest, id: gateway.key.id, key: gateway.secret });

  // Oldest first, in batches, as a gateway would report them.
  records.sort((a, b) => a.created_at - b.created_at);
  const ingest = app.get(UsageIngestService, { strict: false });
  const batchSize = options.batchSize ?? 1000;
  onProgress(0, records.length);
  for (let i = 0; i < records.length; i += batchSize) {
    const { accepted } = await ingest.ingest(records.slice(i, i + batchSize));
    report.totalRecords += accepted;
    onProgress(Math.min(i + batchSize, records.length), records.length);
  }

  report.budgets = await setBudgets(app, operator, report, keyIds, new Date(options.now * 1000));
  return report;
}

/** The operator the demo acts as (audit fields): the oldest active cluster-admin key. */
async function operatorPrincipal(dataSource: DataSource): Promise<Principal> {
  const [row]: Array<{ id: string }> = await dataSource.query(
    `SELECT id FROM api_keys WHERE role = $1 AND revoked_at IS NULL ORDER BY created_at, id LIMIT 1`,
    [Role.ClusterAdmin],
  );
  if (!row) throw new Error('No active cluster-admin key: start Tally once (it creates one) before loading the demo');
  return { apiKeyId: row.id, orgId: SYSTEM_ORG_ID, role: Role.ClusterAdmin, teamId: null, onBehalfOf: null };
}

interface BudgetPlan {
  scope: BudgetScope;
  name: string;
  owner: 'cluster' | 'org';
  period: BudgetPeriod;
  kind: LimitKind;
  /** The limit, from what the scope spent in the current window (cost in major units, or tokens). */
  limit: (spent: number) => number;
  thresholds: Threshold[];
  /** IANA time zone of the windows (UTC when omitted). */
  timezone?: string;
  /** For team and user scopes (`name` is then the org's slug): the team or end-user id. */
  localId?: string;
}

const cents = (value: number) => Math.max(1, Math.ceil(value * 100) / 100);

/** A few budgets at telling levels: one under way, one alerting, one blocking the gateway. */
const BUDGETS: BudgetPlan[] = [
  { scope: 'org', name: 'acme', owner: 'cluster', period: 'monthly', kind: 'cost', limit: (s) => cents(s * 2), thresholds: [{ pct: 80, action: 'alert' }, { pct: 100, action: 'block' }] },
  { scope: 'org', name: 'acme', owner: 'org', period: 'monthly', kind: 'cost', limit: (s) => cents(s / 0.85), thresholds: [50, 80, 100].map((pct) => ({ pct, action: 'alert' as const })) },
  { scope: 'apikey', name: 'acme-search', owner: 'org', period: 'daily', kind: 'tokens', limit: (s) => Math.max(1000, Math.floor(s * 0.9)), thresholds: [{ pct: 80, action: 'alert' }, { pct: 100, action: 'block' }] },
  { scope: 'apikey', name: 'globex-assistant', owner: 'org', period: 'weekly', kind: 'tokens', limit: (s) => Math.max(10000, Math.ceil(s * 1.6)), thresholds: [{ pct: 75, action: 'alert' }] },
  { scope: 'org', name: 'initech', owner: 'org', period: 'monthly', kind: 'cost', limit: (s) => cents(Math.max(5, s * 3)), thresholds: [{ pct: 50, action: 'alert' }, { pct: 100, action: 'block' }], timezone: 'Europe/Amsterdam' },
  // A team budget (the keys with team_id "search") and an end-user budget (Acme's busiest user, across its keys).
  { scope: 'team', name: 'acme', localId: 'search', owner: 'org', period: 'weekly', kind: 'cost', limit: (s) => cents(Math.max(1, s * 1.25)), thresholds: [{ pct: 80, action: 'alert' }, { pct: 100, action: 'block' }] },
  { scope: 'user', name: 'acme', localId: 'acme_user_001', owner: 'org', period: 'daily', kind: 'tokens', limit: (s) => Math.max(1000, Math.floor(s * 0.95)), thresholds: [{ pct: 90, action: 'alert' }, { pct: 100, action: 'block' }], timezone: 'America/New_York' },
];

async function setBudgets(app: INestApplicationContext, operator: Principal, report: DemoReport, keyIds: Map<string, string>, now: Date): Promise<DemoReport['budgets']> {
  // Through the workflow, as the API does: each budget's block state and evaluation follow at once.
  const budgets = app.get(BudgetChangeWorkflow, { strict: false });
  const spendService = app.get(UsageSpendService, { strict: false });
  const orgIdOf = (slug: string) => report.orgs[DEMO_ORGS.findIndex((o) => o.slug === slug)].id;
  const made: DemoReport['budgets'] = [];
  for (const plan of BUDGETS) {
    const orgId = plan.scope === 'apikey' ? orgIdOf(plan.name.split('-')[0]) : orgIdOf(plan.name);
    const scopeId =
      plan.scope === 'org' ? orgId : plan.scope === 'apikey' ? (keyIds.get(plan.name) as string) : scopeKey(plan.scope, orgId, plan.localId as string);
    const window = budgetWindow(plan.period, now, plan.timezone);
    const spend =
      plan.scope === 'team' || plan.scope === 'user'
        ? (await spendService.spendByDimension(orgId, window.start, window.end, plan.scope === 'team' ? 'team_id' : 'user_id', [plan.localId as string])).total
        : await spendService.spend({ orgId, apiKeyId: plan.scope === 'apikey' ? scopeId : undefined }, window.start, window.end);
    const spent = plan.kind === 'cost' ? nanoToNumber(spend.costNano) : Number(spend.tokens);
    const limit = plan.limit(spent);
    const { evaluation } = await budgets.set(operator, plan.scope, scopeId, {
      period: plan.period,
      ...(plan.timezone ? { timezone: plan.timezone } : {}),
      limit_kind: plan.kind,
      limit: numberToDecimalString(limit),
      thresholds: plan.thresholds.map((t) => ({ pct: numberToDecimalString(t.pct), action: t.action })),
      owner: plan.owner,
    });
    const name = plan.localId ? `${plan.name}/${plan.localId}` : plan.name;
    made.push({ id: evaluation.budget.id, scope: plan.scope, name, owner: plan.owner, period: plan.period, limit });
  }
  return made;
}
