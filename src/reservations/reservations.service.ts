import { Injectable } from '@nestjs/common';
import { ApiKeysService } from '../auth/api-keys.service';
import { BudgetEvaluator } from '../budgets/budget-evaluator';
import { newId } from '../common/ids';
import { AppException, ErrorCode } from '../common/errors';
import { TokenPrices } from '../common/money';
import { PriceBookService } from '../usage/price-book.service';
import { CreateReservationDto } from './dto/reservation.dto';
import { ReservationCounters } from './reservation-counters';
import { AdmitOutcome, CounterWindow, windowId } from './reservation-counter-types';
import { StoredDecision } from './reservation-decision';
import { decisionOf, fencesOf } from './admission-decision';
import { Reservation } from './reservation.entity';
import { applicableBudgets, ApplicableBudget, costTerms, counterWindow, holdCostNano, Isolate, seconds, windowsToHold } from './reservation-budgets';
import { BudgetInWindow, ReservationLoader } from './reservation-loader.service';
import { ReservationMetrics } from './reservation-metrics';
import { ReservationsRepository } from './reservations.repository';
import { StoreRow } from './admission-batches';

/** Rebuilds an admission may wait for before it gives up (each one loads every window it lacked). */
const MAX_LOADS = 3;
/** Times an admission may decide again after its row was refused for a moved fence (a rebuild, a repair, a budget change). */
const MAX_STALE = 6;
/** Pause before deciding again once the same fences were seen moved twice (a rebuild between its bump and its stamp). */
const STALE_PAUSE_MS = 25;
const PRICE_CACHE_MS = 1000;
const DEFAULT_TTL_SECONDS = 600;
const PRICE_CACHE_MAX = 10_000;
/** How long a repeated request id waits for the first request's row to be stored. */
const DUPLICATE_WAIT_MS = 3000;

/** The 409 of a request id whose first reservation is not stored yet. */
function stillBeingMade(): AppException {
  return AppException.conflict('A reservation with this request_id is still being made; retry', 'request_id');
}

/** The 503 of an admission that gave up waiting for its counters (rebuilt, repaired, or fenced off again and again). */
function countersRebuilding(): AppException {
  return AppException.unavailable(ErrorCode.RedisUnavailable, 'Budget counters are being rebuilt; retry shortly', 1);
}

type Attempt =
  | { kind: 'stored'; row: Reservation }
  /** The request id is taken: stored, or (from Redis, with `reservationId`) maybe being stored. */
  | { kind: 'replay'; reservationId?: string }
  | { kind: 'stale'; moved: string; generations: BudgetInWindow[] }
  | { kind: 'unloaded'; windows: BudgetInWindow[]; others: BudgetInWindow[] };

/**
 * Reservations (SPEC §4.1): one atomic admission across every applicable budget in Redis, then
 * the reservation stored in PostgreSQL only while the fences it decided from still hold (see
 * AdmissionBatches): a rebuild after Redis lost its data sees every hold that was stored, and a
 * hold granted from counters it replaced is removed and decided again.
 */
@Injectable()
export class ReservationsService {
  private readonly prices = new Map<string, { at: number; prices: TokenPrices | undefined }>();

  constructor(
    private readonly apiKeys: ApiKeysService,
    private readonly priceBook: PriceBookService,
    private readonly repository: ReservationsRepository,
    private readonly counters: ReservationCounters,
    private readonly loader: ReservationLoader,
    private readonly metrics: ReservationMetrics,
    private readonly evaluator: BudgetEvaluator,
  ) {}

  /**
   * A revoked key is denied without touching a counter (`reason: "api_key_revoked"`, as the
   * check answers). Otherwise, while Redis is down or hung this fails at once with
   * RedisUnavailableError (503 `redis_unavailable`), before anything is stored.
   */
  async reserve(dto: CreateReservationDto): Promise<Reservation> {
    const key = await this.apiKeys.status(dto.api_key_id);
    if (key === null) throw AppException.notFound('API key', dto.api_key_id);
    const orgId = key.orgId;
    if (key.revoked) return this.denyRevoked(orgId, dto);
    await this.counters.ensureAvailable();
    // One id for every try: a try whose row was not stored removed its holds, so the next one may take the request id again.
    const id = newId('res');
    try {
      return await this.admit(orgId, id, key.teamId, dto);
    } catch (err) {
      // Nothing stored: the gateway's retry with this request id must decide afresh, not wait for this id.
      await this.counters.forgetRequest(orgId, dto.api_key_id, dto.request_id, id).catch(() => undefined);
      throw err;
    }
  }

  private async admit(orgId: string, id: string, teamId: string | null, dto: CreateReservationDto): Promise<Reservation> {
    let lastMoved = '';
    let repeats = 0;
    let forgotten = false;
    for (let loads = 0, stale = 0; ; ) {
      // Read before the locked section: a second connection taken inside it could starve the pool.
      const prices = await this.priceOf(dto.model, new Date());
      const scopes = { teamId, userId: dto.user_id ?? null };
      const attempt = await this.repository.admission(orgId, dto.api_key_id, scopes, (budgets, store) => {
        const now = new Date();
        const isolate: Isolate = (b, step) => this.evaluator.isolate(b, step);
        return this.attempt(orgId, id, dto, now, windowsToHold(applicableBudgets(budgets, now, isolate), now, dto.ttl_seconds ?? DEFAULT_TTL_SECONDS, isolate), prices, store);
      });
      if (attempt.kind === 'stored') {
        this.metrics.decided(attempt.row);
        return attempt.row;
      }
      if (attempt.kind === 'replay') {
        const row = await this.storedRequest(orgId, dto);
        if (row) {
          this.metrics.replayed();
          return row;
        }
        // Redis names a reservation for this request id that was never stored: an admission whose
        // script ran after its command had timed out (its 503 sent, its cleanup refused while Redis
        // looked hung). Let go of the id once and decide afresh; were that admission still storing,
        // the request id's unique key stops the second row, and this one answers the first.
        if (forgotten || attempt.reservationId === undefined) throw stillBeingMade();
        forgotten = true;
        await this.counters.forgetRequest(orgId, dto.api_key_id, dto.request_id, attempt.reservationId);
        continue;
      }
      if (attempt.kind === 'stale') {
        this.metrics.staled();
        if (++stale > MAX_STALE) throw countersRebuilding();
        repeats = attempt.moved === lastMoved ? repeats + 1 : 0;
        lastMoved = attempt.moved;
        // The same fences at the same values a third time, with a pause between: no rebuild is on
        // its way to stamp those generations (its repair hit another window, or it failed after its
        // bump). Stamp the fences' values on them; budget-target fences need only the new read of
        // the budgets this try makes.
        // (Not while a repair of the window is under way: its finish stamps, or it ends at its
        // check with nothing changed and a later try stamps; so the pauses grow.)
        if (repeats >= 2 && attempt.generations.length > 0) await this.loader.restamp(orgId, attempt.generations);
        if (repeats >= 1) await new Promise((resolve) => setTimeout(resolve, STALE_PAUSE_MS * repeats));
        continue;
      }
      if (++loads > MAX_LOADS) throw countersRebuilding();
      await this.loader.load(orgId, attempt.windows);
      // A budget held in two windows (near a reset) whose other window was loaded already: stamp the
      // fence the load moved on it now, rather than through the stale retries (see restamp()).
      if (attempt.others.length > 0) await this.loader.restamp(orgId, attempt.others);
    }
  }

  async get(id: string): Promise<Reservation> {
    const row = await this.repository.findById(id);
    if (!row) throw AppException.notFound('Reservation', id);
    return row;
  }

  /** Frees a live hold; a settled, denied, released or expired reservation stays as it is. */
  async release(id: string): Promise<Reservation> {
    const row = await this.get(id);
    // Released already: its holds are taken away again (nothing to do unless the first release
    // stored its row and then could not reach Redis; the client's retry finishes it). Best effort:
    // the stored row is the answer, Redis up or down (the hold expires in any case).
    if (row.status === 'released') await this.counters.settle(row.orgId, this.holdWindows(row), []).catch(() => undefined);
    if (row.status !== 'held') return row;
    // Redis down: answer 503 before PostgreSQL changes, so a retry releases for real.
    await this.counters.ensureAvailable();
    const released = await this.repository.release(row.orgId, id);
    if (!released) return row;
    await this.counters.settle(row.orgId, this.holdWindows(released), []);
    return released;
  }

  /** The windows of a reservation's holds, for removing them from the counters. */
  holdWindows(row: Pick<Reservation, 'orgId' | 'id' | 'holds'>): Array<{ window: CounterWindow; reservationId: string }> {
    return row.holds.map((h) => ({
      reservationId: row.id,
      window: { orgId: row.orgId, budgetId: h.budget_id, epoch: h.epoch ?? '0', start: h.window_start, end: h.window_start },
    }));
  }

  private async attempt(
    orgId: string,
    id: string,
    dto: CreateReservationDto,
    now: Date,
    // Each budget in its current window, some also in their next (windowsToHold).
    budgets: ApplicableBudget[],
    prices: TokenPrices | undefined,
    store: StoreRow,
  ): Promise<Attempt> {
    const input = dto.input_tokens;
    const maxOut = dto.max_output_tokens;
    const minOut = dto.min_output_tokens ?? 1;
    const ttl = dto.ttl_seconds ?? DEFAULT_TTL_SECONDS;
    const row = newReservation(orgId, id, dto);

    let outcome: AdmitOutcome;
    if (budgets.length === 0) {
      outcome = { kind: 'decided', held: true, granted: maxOut, expiresAtMs: now.getTime() + ttl * 1000, nowMs: now.getTime(), budgets: [] };
    } else {
      outcome = await this.counters.admit({
        orgId,
        apiKeyId: dto.api_key_id,
        requestId: dto.request_id,
        reservationId: id,
        ttlSeconds: ttl,
        inputTokens: input,
        maxOutputTokens: maxOut,
        minOutputTokens: minOut,
        budgets: budgets.map((b) => {
          const kind = b.budget.limitKind === 'tokens' ? 'tokens' : prices ? 'cost' : 'unpriced';
          const terms = kind === 'cost' ? costTerms(input, prices!) : { q1: 0n, r1: 0n, qo: 0n, ro: 0n };
          return { window: this.windowOf(b), kind, blockLimit: b.blockLimit, ...terms };
        }),
      });
    }
    if (outcome.kind === 'duplicate') return { kind: 'replay', reservationId: outcome.reservationId };
    if (outcome.kind === 'unloaded') {
      const windows = outcome.windows.map((w) => ({ budget: budgets.find((b) => b.budget.id === w.budgetId)!.budget, window: w }));
      // The loaded windows of the same budgets: a load bumps the budget's fence, which leaves them behind.
      const loading = new Set(windows.map((w) => windowId(w.window)));
      const others = budgets
        .filter((b) => windows.some((w) => w.budget.id === b.budget.id) && !loading.has(windowId(this.windowOf(b))))
        .map((b) => ({ budget: b.budget, window: this.windowOf(b) }));
      return { kind: 'unloaded', windows, others };
    }

    const decision = decisionOf(budgets, outcome);
    Object.assign(row, {
      status: outcome.held ? 'held' : 'denied',
      grantedOutputTokens: String(outcome.granted),
      reservedTokens: outcome.held ? String(input + outcome.granted) : '0',
      reservedCostNano: outcome.held && prices ? holdCostNano(input, outcome.granted, prices).toString() : '0',
      holds: outcome.held
        ? budgets.map((b, i) => {
            const w = this.windowOf(b);
            return { budget_id: b.budget.id, window_start: w.start, amount: outcome.budgets[i].amount.toString(), epoch: w.epoch };
          })
        : [],
      decision: decision as unknown as Record<string, unknown>,
      expiresAt: outcome.held ? new Date(outcome.expiresAtMs) : null,
      createdAt: new Date(outcome.nowMs),
    } satisfies Partial<Reservation>);
    const fences = fencesOf(budgets, outcome);
    const stored = await store(row, fences);
    if (stored.outcome === 'inserted') return { kind: 'stored', row };
    // Not stored: undo this hold. Stale: decide again. Duplicate: the request id is stored already
    // (Redis had forgotten it): answer the stored one.
    if (row.holds.length > 0) await this.counters.settle(orgId, this.holdWindows(row), []);
    if (stored.outcome === 'duplicate') return { kind: 'replay' };
    const moved = new Set(stored.moved.map((m) => m.slice(0, m.lastIndexOf('='))));
    const generations = budgets.filter((b) => moved.has(b.budget.id)).map((b) => ({ budget: b.budget, window: this.windowOf(b) }));
    return { kind: 'stale', moved: stored.moved.join(','), generations };
  }

  /**
   * The denial of a revoked key: stored like any decision (the same request id answers the same),
   * holding nothing, with no budget figures (no counter is read).
   */
  private async denyRevoked(orgId: string, dto: CreateReservationDto): Promise<Reservation> {
    const decision: StoredDecision = { reason: 'api_key_revoked', denied_by: [], budgets: [] };
    const row = Object.assign(newReservation(orgId, newId('res'), dto), {
      status: 'denied',
      grantedOutputTokens: '0',
      reservedTokens: '0',
      reservedCostNano: '0',
      holds: [],
      decision: decision as unknown as Record<string, unknown>,
      expiresAt: null,
      createdAt: new Date(),
    } satisfies Partial<Reservation>);
    if (await this.repository.insert(row)) {
      this.metrics.decided(row);
      return row;
    }
    const stored = await this.storedRequest(orgId, dto);
    if (!stored) throw stillBeingMade();
    this.metrics.replayed();
    return stored;
  }

  /** The reservation of a request id seen before; the first request may still be storing it (null: none after DUPLICATE_WAIT_MS). */
  private async storedRequest(orgId: string, dto: CreateReservationDto): Promise<Reservation | null> {
    const giveUpAt = Date.now() + DUPLICATE_WAIT_MS;
    for (;;) {
      const row = await this.repository.findByRequest(orgId, dto.api_key_id, dto.request_id);
      if (row || Date.now() > giveUpAt) return row;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /**
   * The model's price now, from the price book, kept for a second per model. A hold priced at a
   * price a second old still keeps committed + held within the limit: the invariant does not
   * depend on which price a hold used (records are priced at ingest).
   */
  private async priceOf(model: string, now: Date): Promise<TokenPrices | undefined> {
    const cached = this.prices.get(model);
    if (cached && now.getTime() - cached.at < PRICE_CACHE_MS) return cached.prices;
    const prices = (await this.priceBook.resolver([model]))(model, seconds(now));
    if (this.prices.size >= PRICE_CACHE_MAX) this.prices.clear();
    this.prices.set(model, { at: now.getTime(), prices });
    return prices;
  }

  private windowOf(b: ApplicableBudget): CounterWindow {
    return counterWindow(b.budget, b.window);
  }
}

/** A new reservation's request fields; the decision's fields are filled in by the caller. */
function newReservation(orgId: string, id: string, dto: CreateReservationDto): Reservation {
  return Object.assign(new Reservation(), {
    orgId,
    id,
    apiKeyId: dto.api_key_id,
    requestId: dto.request_id,
    userId: dto.user_id ?? null,
    model: dto.model,
    inputTokens: String(dto.input_tokens),
    maxOutputTokens: String(dto.max_output_tokens),
    minOutputTokens: String(dto.min_output_tokens ?? 1),
    recordId: null,
    settledAt: null,
    releasedAt: null,
  } satisfies Partial<Reservation>);
}
