import { unixSeconds } from '../common/unix-time';
import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import Redis from 'ioredis';
import { Repository } from 'typeorm';
import { CoherentCache } from '../redis/coherent-cache';
import { REDIS, RedisKeys } from '../redis/redis.module';
import { Spend, UsageSpendService } from '../usage/usage-spend.service';
import { Budget, BudgetOwner, BudgetScope } from './budget.entity';
import { currentWindow, evaluateBudget, Evaluation } from './budget-evaluation';
import { BudgetWindow } from './budget-window';

/** One blocking budget as the check reports it. */
export interface BlockEntry {
  budget_id: string;
  scope: BudgetScope;
  owner: BudgetOwner;
  pct: number;
  resets_at: number;
}

interface ScopeState {
  /** When the evaluation that wrote this started (ms): older evaluations never overwrite newer ones. */
  at: number;
  blocks: BlockEntry[];
}

const STATE_TTL_MS = 40 * 86_400_000;
/** In-memory copies of states: at most this many, each re-read from Redis after a minute at the latest. */
const STATE_CACHE_TTL_MS = 60_000;
const STATE_CACHE_MAX_ENTRIES = 200_000;

/** Writes `ARGV[1]` (a ScopeState) unless the stored one is newer. */
const SET_IF_NEWER = `
local current = redis.call('GET', KEYS[1])
if current then
  local stored = cjson.decode(current)
  if stored.at > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1`;

/**
 * Live budget state. Evaluates budgets against the usage aggregates and keeps, per scope, the
 * list of blocking budgets in Redis, so the budget check answers whatever the number of records.
 * Refreshed after ingest, on every budget change, and by the worker. Every process keeps the
 * states it has read in memory, dropped on all processes whenever one rewrites them: the check,
 * called before each gateway request, is then a memory lookup.
 */
@Injectable()
export class BudgetStateService implements OnModuleInit, OnApplicationShutdown {
  private readonly states: CoherentCache<ScopeState | null>;

  constructor(
    @InjectRepository(Budget) private readonly budgets: Repository<Budget>,
    private readonly spend: UsageSpendService,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {
    this.states = new CoherentCache(redis, {
      channel: keys.key('budget-blocks', 'changed'),
      onMessage: (payload) => this.states.drop(payload.split('\n')),
      ttlMs: STATE_CACHE_TTL_MS,
      maxEntries: STATE_CACHE_MAX_ENTRIES,
      logger: new Logger(BudgetStateService.name),
      lostWarning: 'Budget state channel lost; checking budgets in Redis until it is back',
    });
  }

  onModuleInit(): Promise<void> {
    return this.states.start();
  }

  onApplicationShutdown(): Promise<void> {
    return this.states.stop();
  }

  /** Evaluates one budget in its current window. */
  async evaluate(budget: Budget, now = new Date()): Promise<Evaluation> {
    return (await this.evaluateAll([budget], now))[0];
  }

  /**
   * Evaluates budgets in their current windows, in order, with one spend read per org and
   * window whatever the number of budgets (an ingest touching a dozen budgeted keys of an org
   * reads the daily per-key rollup once or twice, not once per budget).
   */
  async evaluateAll(budgets: Budget[], now = new Date()): Promise<Evaluation[]> {
    const groups = new Map<string, { orgId: string; window: BudgetWindow; budgets: Budget[] }>();
    for (const budget of budgets) {
      const window = currentWindow(budget, now);
      const key = `${budget.orgId}|${window.start.getTime()}|${window.end.getTime()}`;
      const group = groups.get(key);
      if (group) group.budgets.push(budget);
      else groups.set(key, { orgId: budget.orgId, window, budgets: [budget] });
    }
    const spends = new Map<Budget, Spend>();
    await Promise.all(
      [...groups.values()].map(async ({ orgId, window, budgets: members }) => {
        const keys = members.some((b) => b.scope === 'org') ? undefined : [...new Set(members.map((b) => b.scopeId))];
        const { total, byKey } = await this.spend.spendByKey(orgId, window.start, window.end, keys);
        for (const b of members) spends.set(b, b.scope === 'org' ? total : (byKey.get(b.scopeId) ?? { costNano: 0n, tokens: 0n }));
      }),
    );
    return budgets.map((b) => evaluateBudget(b, spends.get(b)!, currentWindow(b, now)));
  }

  /** Re-evaluates the budgets of an org and of some of its keys (after ingest touched them). */
  async refreshForUsage(orgId: string, apiKeyIds: string[]): Promise<Evaluation[]> {
    const budgets = await this.budgets
      .createQueryBuilder('b')
      .where(`(b.scope = 'org' AND b.scope_id = :orgId) OR (b.scope = 'apikey' AND b.scope_id = ANY(:keys))`, { orgId, keys: apiKeyIds })
      .getMany();
    return this.refreshBudgets(budgets, [
      { scope: 'org', scopeId: orgId },
      ...apiKeyIds.map((id) => ({ scope: 'apikey' as const, scopeId: id })),
    ]);
  }

  async refreshScope(scope: BudgetScope, scopeId: string): Promise<Evaluation[]> {
    return this.refreshScopes([{ scope, scopeId }]);
  }

  /** Re-evaluates every budget of the given scopes. */
  async refreshScopes(scopes: Array<{ scope: BudgetScope; scopeId: string }>): Promise<Evaluation[]> {
    if (scopes.length === 0) return [];
    const budgets = await this.budgets
      .createQueryBuilder('b')
      .where('(b.scope, b.scope_id) IN (SELECT * FROM unnest(CAST(:scopes AS varchar[]), CAST(:ids AS varchar[])))', {
        scopes: scopes.map((s) => s.scope),
        ids: scopes.map((s) => s.scopeId),
      })
      .getMany();
    return this.refreshBudgets(budgets, scopes);
  }

  /**
   * Evaluates `budgets` and rewrites the state of each scope in `scopes` (a scope with no budget
   * left gets an empty state). Every budget of a listed scope must be in `budgets`.
   */
  async refreshBudgets(budgets: Budget[], scopes: Array<{ scope: BudgetScope; scopeId: string }>): Promise<Evaluation[]> {
    const at = Date.now();
    const evaluations = await this.evaluateAll(budgets, new Date(at));
    const byScope = new Map<string, BlockEntry[]>(scopes.map((s) => [this.stateKey(s.scope, s.scopeId), []]));
    for (const e of evaluations) {
      const key = this.stateKey(e.budget.scope, e.budget.scopeId);
      if (!byScope.has(key)) byScope.set(key, []);
      if (e.blocked) {
        byScope.get(key)!.push({
          budget_id: e.budget.id,
          scope: e.budget.scope,
          owner: e.budget.owner,
          pct: e.pct,
          resets_at: unixSeconds(e.window.end),
        });
      }
    }
    const pipeline = this.redis.pipeline();
    for (const [key, blocks] of byScope) {
      const state: ScopeState = { at, blocks };
      pipeline.eval(SET_IF_NEWER, 1, key, JSON.stringify(state), String(at), String(STATE_TTL_MS));
    }
    await pipeline.exec();
    this.states.drop(byScope.keys());
    await this.states.publish([...byScope.keys()].join('\n'));
    return evaluations;
  }

  /** The blocking budgets of a key and its org; blocks of a past window have lifted. */
  async blocksFor(orgId: string, apiKeyId: string, now = Date.now()): Promise<BlockEntry[]> {
    const nowSeconds = Math.floor(now / 1000);
    const blocks: BlockEntry[] = [];
    for (const state of await this.read([this.stateKey('apikey', apiKeyId), this.stateKey('org', orgId)])) {
      for (const block of state?.blocks ?? []) {
        if (block.resets_at > nowSeconds) blocks.push(block);
      }
    }
    return blocks;
  }

  /** Scope states from memory, else from Redis (null: the scope has none). */
  private async read(keys: string[]): Promise<Array<ScopeState | null>> {
    const states = keys.map((key) => this.states.get(key));
    const missing = keys.filter((_key, i) => states[i] === undefined);
    if (missing.length > 0) {
      const snapshot = this.states.snapshot();
      const raw = await this.redis.mget(...missing);
      missing.forEach((key, i) => {
        const state = raw[i] ? (JSON.parse(raw[i]!) as ScopeState) : null;
        this.states.set(key, state, snapshot);
        states[keys.indexOf(key)] = state;
      });
    }
    return states as Array<ScopeState | null>;
  }

  private stateKey(scope: BudgetScope, scopeId: string): string {
    return this.keys.key('budget-blocks', scope, scopeId);
  }
}
