import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { unixSeconds } from '../common/unix-time';
import { describeError } from '../common/error-mapping';
import { BlockEntry, BlockStateStore, ScopeRef, ScopeState } from './budget-block-store';
import { Evaluation } from './budget-evaluation';
import { BudgetEvaluator } from './budget-evaluator';
import { BudgetRepository } from './budget.repository';
import { Budget } from './budget.entity';

const REPAIR_RETRY_MS = 1000;
const ORPHAN_PAGE = 500;

const refKey = (ref: ScopeRef) => `${ref.scope}:${ref.scopeId}`;

/**
 * Rewrites the block state of scopes from their budgets and live spend. Every refresh takes its
 * version from the store *before* it reads budgets or spend: of two refreshes, the one that
 * started later wins, whatever order their writes land in. A refresh that failed (Redis down)
 * after a budget change is retried by this process until it succeeds, and the worker's repair
 * pass ({@link repairOrphans} with evaluate-all) rewrites every scope in any case.
 */
@Injectable()
export class BudgetStateRefresher implements OnApplicationShutdown {
  private readonly logger = new Logger(BudgetStateRefresher.name);
  /** Scopes whose refresh failed here; retried until one succeeds. */
  private readonly pending = new Map<string, ScopeRef>();
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly repository: BudgetRepository,
    private readonly evaluator: BudgetEvaluator,
    private readonly store: BlockStateStore,
  ) {}

  onApplicationShutdown(): void {
    clearTimeout(this.retryTimer);
  }

  /** Re-evaluates every budget of the scopes in its current window and rewrites each scope's state (empty when it has no budget). */
  async refreshScopes(scopes: ScopeRef[], now?: Date): Promise<Evaluation[]> {
    if (scopes.length === 0) return [];
    const version = await this.store.nextVersion();
    const budgets = await this.repository.findByScopes(scopes);
    const evaluations = await this.evaluator.evaluateCurrent(budgets, now ?? new Date());
    await this.store.write(statesOf(scopes, evaluations), version);
    for (const scope of scopes) this.pending.delete(refKey(scope));
    return evaluations;
  }

  /**
   * The blocks of scopes whose state Redis lost and no rebuild has restored yet (see
   * {@link BlockStateStore.blocksOf}), from their budgets and spend in PostgreSQL. The states of
   * scopes with a budget are written for every process; a scope without one is remembered in
   * this process' memory only (any key or end user may be asked about: none gets a Redis key).
   */
  async recoverScopes(scopes: ScopeRef[]): Promise<BlockEntry[]> {
    const snapshot = this.store.snapshot();
    const version = await this.store.nextVersion();
    const budgets = await this.repository.findByScopes(scopes);
    const states = statesOf(scopes, await this.evaluator.evaluateCurrent(budgets, new Date()));
    const budgeted = new Set(budgets.map(refKey));
    await this.store.write(states.filter((s) => budgeted.has(refKey(s))), version);
    this.store.remember(states.filter((s) => !budgeted.has(refKey(s))), snapshot);
    return states.flatMap((s) => s.blocks);
  }

  /**
   * After ingest, with the touched budgets already read by the caller *after* it took `version`
   * ({@link BlockStateStore.nextVersion}): re-evaluates them and rewrites their scopes' states.
   */
  async refreshLoaded(version: number, budgets: Budget[]): Promise<Evaluation[]> {
    if (budgets.length === 0) return [];
    const scopes = new Map(budgets.map((b) => [refKey(b), { scope: b.scope, scopeId: b.scopeId }]));
    const evaluations = await this.evaluator.evaluateCurrent(budgets);
    await this.store.write(statesOf([...scopes.values()], evaluations), version);
    return evaluations;
  }

  /** The version a refresh takes before it reads budgets or spend. */
  nextVersion(): Promise<number> {
    return this.store.nextVersion();
  }

  /** Marks the start of a pass that rewrites every scope's state (evaluate-all's). */
  beginRebuild(): Promise<string> {
    return this.store.beginRebuild();
  }

  /** Marks every state as rebuilt by the pass begun with `token`, unless Redis lost its data since. */
  endRebuild(token: string): Promise<boolean> {
    return this.store.endRebuild(token);
  }

  /** Rewrites the state of blocking scopes that no longer have a budget (a delete whose refresh was lost). */
  async repairOrphans(): Promise<number> {
    let repaired = 0;
    let cursor = '0';
    do {
      const page = await this.store.blockingScopes(cursor);
      cursor = page.cursor;
      for (let i = 0; i < page.scopes.length; i += ORPHAN_PAGE) {
        const chunk = page.scopes.slice(i, i + ORPHAN_PAGE);
        const budgeted = new Set((await this.repository.findByScopes(chunk)).map(refKey));
        const orphans = chunk.filter((s) => !budgeted.has(refKey(s)));
        if (orphans.length > 0) await this.refreshScopes(orphans);
        repaired += orphans.length;
      }
    } while (cursor !== '0');
    return repaired;
  }

  /** Refreshes after a budget change; on failure remembers the scope and retries it until it succeeds. */
  async refreshOrRetry(scopes: ScopeRef[]): Promise<Evaluation[] | undefined> {
    try {
      return await this.refreshScopes(scopes);
    } catch (err) {
      for (const scope of scopes) this.pending.set(refKey(scope), scope);
      this.logger.warn({ msg: 'Could not refresh budget state; retrying until Redis answers', scopes: scopes.length, ...describeError(err) });
      this.scheduleRetry();
      return undefined;
    }
  }

  /** True when a refresh of one of these scopes failed here and has not succeeded since. */
  hasPending(scopes: ScopeRef[]): boolean {
    return this.pending.size > 0 && scopes.some((s) => this.pending.has(refKey(s)));
  }

  /** Retries the failed refreshes now (throws while Redis is still down). */
  async retryPending(): Promise<void> {
    if (this.pending.size === 0) return;
    await this.refreshScopes([...this.pending.values()]);
  }

  private scheduleRetry(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.retryPending().then(
        () => this.logger.log('Budget state refreshed after a failed attempt'),
        () => this.scheduleRetry(),
      );
    }, REPAIR_RETRY_MS);
    this.retryTimer.unref();
  }
}

/** The state of each scope: its blocking budgets among the evaluations. */
function statesOf(scopes: ScopeRef[], evaluations: Evaluation[]): ScopeState[] {
  const byScope = new Map<string, ScopeState>(scopes.map((s) => [refKey(s), { scope: s.scope, scopeId: s.scopeId, blocks: [] as BlockEntry[] }]));
  for (const e of evaluations) {
    if (!e.blocked) continue;
    const state = byScope.get(refKey(e.budget));
    state?.blocks.push({ budget_id: e.budget.id, scope: e.budget.scope, owner: e.budget.owner, pct: e.pct, resets_at: unixSeconds(e.window.end) });
  }
  return [...byScope.values()];
}
