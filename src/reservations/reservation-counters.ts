import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import Redis from 'ioredis';
import { REDIS, RedisKeys } from '../redis/redis.module';
import { guardRedis } from '../redis/redis-unavailable';
import { AdmitOutcome, AdmitRequest, CounterWindow, HoldEntry, windowId, WindowSpend } from './reservation-counter-types';

/** Keys of a window outlive it by two days: a hold made just before the reset still settles. */
const KEY_GRACE_MS = 2 * 86_400_000;
/** The arguments of reconcile.lua's 'check' and 'finish'. */
function reconcileArgs(step: 'check' | 'finish', committed: bigint, generation: string, holds: HoldEntry[], seen: string[], token: string): string[] {
  return [step, committed.toString(), generation, String(seen.length), ...seen, ...holds.flatMap((h) => [h.reservationId, h.amount.toString(), String(h.expiresAtMs)]), token];
}

/** A random token naming one run of a load or a repair (see load-begin.lua, reconcile.lua). */
function runToken(): string {
  return randomBytes(9).toString('base64url');
}

/** After how long a repair of a window that has not finished is taken over by another (its run died). */
const RECONCILE_TAKEOVER_MS = 5 * 60_000;
/** How long a request id is remembered in Redis (PostgreSQL's unique key stays the backstop). */
const IDEMPOTENCY_GRACE_MS = 86_400_000;

type Script = 'admit' | 'forget' | 'restamp' | 'settle' | 'settleSums' | 'loadBegin' | 'loadFinish' | 'reconcile';
const SCRIPT_FILES: Record<Script, string> = {
  admit: 'admit.lua',
  forget: 'forget.lua',
  restamp: 'restamp.lua',
  settle: 'settle.lua',
  settleSums: 'settle-sums.lua',
  loadBegin: 'load-begin.lua',
  loadFinish: 'load-finish.lua',
  reconcile: 'reconcile.lua',
};

/**
 * The fast counters of reservations in Redis: per budget and window, committed spend and live
 * holds kept apart (a hash with `committed` and `held`, a sorted set of hold ids by expiry, and a
 * hash of hold amounts), changed only by the Lua scripts in ./lua. Every script call touches keys
 * of one org only. Keys are `<prefix>:rsv:{org_…}:…`: on Redis Cluster (REDIS_CLUSTER_NODES) the
 * prefix is itself the hash tag `{REDIS_PREFIX}` and, being the first `{…}` of the key, it is the
 * one that counts, so every key of the deployment (these included) is in one slot; the `{org_…}`
 * after it counts only where the prefix is not a tag, and keeps an org's keys together there.
 */
@Injectable()
export class ReservationCounters {
  private readonly scripts: Record<Script, string>;
  private readonly sha = new Map<Script, string>();

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {
    this.scripts = Object.fromEntries(
      Object.entries(SCRIPT_FILES).map(([name, file]) => [name, readFileSync(join(__dirname, 'lua', file), 'utf8')]),
    ) as Record<Script, string>;
  }

  /** The keys of one budget window: state hash, holds by expiry, hold amounts. */
  windowKeys(w: CounterWindow): [string, string, string] {
    const base = this.windowBase(w);
    return [`${base}:s`, `${base}:z`, `${base}:a`];
  }

  /** What every key of a window's counters begins with. Epoch 0 (a budget never redefined) keeps the names counters had before epochs. */
  private windowBase(w: CounterWindow): string {
    return `${this.orgTag(w.orgId)}:${w.budgetId}${w.epoch === '0' ? '' : `.${w.epoch}`}:${w.start}`;
  }

  async admit(req: AdmitRequest): Promise<AdmitOutcome> {
    const keys = [this.requestKey(req.orgId, req.apiKeyId, req.requestId), ...req.budgets.flatMap((b) => this.windowKeys(b.window))];
    const args: string[] = [
      req.reservationId,
      String(req.ttlSeconds * 1000),
      String(req.inputTokens),
      String(req.maxOutputTokens),
      String(req.minOutputTokens),
      String(req.ttlSeconds * 1000 + IDEMPOTENCY_GRACE_MS),
      String(req.budgets.length),
    ];
    for (const b of req.budgets) {
      args.push(b.kind, b.blockLimit.toString(), b.q1.toString(), b.r1.toString(), b.qo.toString(), b.ro.toString(), String(this.expireAt(b.window)));
    }
    const out = (await this.run('admit', keys, args)) as Array<string | number>;
    if (out[0] === 'dup') return { kind: 'duplicate', reservationId: String(out[1]) };
    if (out[0] === 'unloaded') return { kind: 'unloaded', windows: out.slice(1).map((i) => req.budgets[Number(i) - 1].window) };
    const budgets = req.budgets.map((_b, i) => {
      const at = 5 + 5 * i;
      return { committed: BigInt(out[at]), held: BigInt(out[at + 1]), amount: BigInt(out[at + 2]), reason: String(out[at + 3]), generation: String(out[at + 4]) };
    });
    return { kind: 'decided', held: out[1] === 'held', granted: Number(out[2]), expiresAtMs: Number(out[3]), nowMs: Number(out[4]), budgets };
  }

  /** Lets go of the request id of a reservation that was not stored, if it still names it (see forget.lua). */
  async forgetRequest(orgId: string, apiKeyId: string, requestId: string, reservationId: string): Promise<void> {
    await this.run('forget', [this.requestKey(orgId, apiKeyId, requestId)], [reservationId]);
  }

  /** Stamps `generation` on a loaded window, counters unchanged (see restamp.lua); false when not loaded, already newer, or being repaired. */
  async restamp(window: CounterWindow, generation: string): Promise<boolean> {
    return Number(await this.run('restamp', [this.windowKeys(window)[0]], [generation, String(RECONCILE_TAKEOVER_MS)])) === 1;
  }

  private requestKey(orgId: string, apiKeyId: string, requestId: string): string {
    return `${this.orgTag(orgId)}:rq:${apiKeyId}:${requestId}`;
  }

  /** Records settled into a window while it is being rebuilt, by id. */
  pendingKey(w: CounterWindow): string {
    return `${this.windowBase(w)}:p`;
  }

  /** Keys a rebuild uses besides the window's: removed-while-loading holds, records its read counted. */
  private rebuildKeys(w: CounterWindow): [string, string] {
    const base = this.windowBase(w);
    return [`${base}:r`, `${base}:n`];
  }

  /**
   * Removes holds and adds the spend of records in one step, per org (one script call each;
   * without holds to remove, a first call adds whole windows' sums, skips the windows nobody has
   * loaded, and a second, if needed, adds the windows a rebuild or reconciler is looking at,
   * record by record). `spends`: one per window. Returns the number of holds that were still there.
   */
  async settle(orgId: string, removals: Array<{ window: CounterWindow; reservationId: string }>, spends: WindowSpend[]): Promise<number> {
    if (removals.length === 0 && spends.length === 0) return 0;
    for (const w of [...removals.map((r) => r.window), ...spends.map((spend) => spend.window)]) {
      if (w.orgId !== orgId) throw new Error('settle(): every window must belong to the org');
    }
    if (new Set(spends.map(({ window }) => windowId(window))).size < spends.length) {
      throw new Error('settle(): one spend per window');
    }
    let windows = spends;
    if (removals.length === 0 && windows.length > 0) {
      // Without holds to remove, most windows take their sum in one step (settle-sums.lua); the rest go record by record below.
      const deferred = (await this.run(
        'settleSums',
        windows.flatMap(({ window }) => [this.windowKeys(window)[0], this.rebuildKeys(window)[1]]),
        windows.map((w) => w.sum.toString()),
      )) as number[];
      windows = deferred.map((j) => windows[j - 1]);
      if (windows.length === 0) return 0;
    }
    const keys = [
      ...removals.flatMap((r) => [...this.windowKeys(r.window), this.rebuildKeys(r.window)[0]]),
      ...windows.flatMap(({ window }) => [this.windowKeys(window)[0], this.pendingKey(window), this.rebuildKeys(window)[1]]),
    ];
    const args = [
      String(removals.length),
      String(windows.length),
      ...removals.map((r) => r.reservationId),
      ...windows.flatMap(({ sum, records }) => {
        const list = records();
        return [String(list.length), sum.toString(), ...list.flatMap((r) => [r.recordId, r.amount.toString()])];
      }),
    ];
    return Number(await this.run('settle', keys, args));
  }

  /** Rebuild step 1 for windows of one org (see load-begin.lua): the token of each window, for step 2 ('' when it is loaded). */
  async beginLoad(windows: CounterWindow[]): Promise<string[]> {
    if (windows.length === 0) return [];
    const token = runToken();
    return (await this.run('loadBegin', windows.flatMap((w) => [this.windowKeys(w)[0], this.pendingKey(w)]), [...windows.map((w) => String(this.expireAt(w))), token])) as string[];
  }

  /** The ids of records settled into a window since its rebuild began. */
  async pendingRecords(window: CounterWindow): Promise<string[]> {
    return guardRedis(this.redis, () => this.redis.hkeys(this.pendingKey(window)));
  }

  /**
   * Throws {@link RedisUnavailableError} at once while Redis is down, or within a second of a
   * command that got no answer: a change that needs the counters (an admission, a release) does
   * not start then (the caller answers 503 `redis_unavailable`).
   */
  async ensureAvailable(): Promise<void> {
    await guardRedis(this.redis, async () => undefined);
  }

  /**
   * Rebuild step 2 for one window: `seen` are records the PostgreSQL read counted that may be
   * settled around now (recently stored, or settled since step 1); `generation` the budget's fence
   * value the rebuild set (stamped on the window either way); `token` what step 1 gave the window.
   * False when another run loaded it first, or when it was lost again since step 1.
   */
  async finishLoad(window: CounterWindow, committed: bigint, holds: HoldEntry[], seen: string[], generation: string, token: string): Promise<boolean> {
    const args = [
      committed.toString(),
      String(this.expireAt(window)),
      generation,
      token,
      String(seen.length),
      ...seen,
      ...holds.flatMap((h) => [h.reservationId, h.amount.toString(), String(h.expiresAtMs)]),
    ];
    return Number(await this.run('loadFinish', [...this.windowKeys(window), this.pendingKey(window), ...this.rebuildKeys(window)], args)) === 1;
  }

  /**
   * Reconciler step 1: this run's token, or null when the window is not loaded (nothing to
   * compare) or another run began repairing it less than {@link RECONCILE_TAKEOVER_MS} ago.
   */
  async beginReconcile(window: CounterWindow): Promise<string | null> {
    const token = runToken();
    return Number(await this.run('reconcile', this.reconcileKeys(window), ['begin', token, String(RECONCILE_TAKEOVER_MS)])) === 1 ? token : null;
  }

  /**
   * Reconciler step 2, before any fence moves: 'equal' when the counters already equal this read
   * (the run ends, nothing changed), 'differs' when they do not (the run stays begun for
   * {@link finishReconcile} from a fenced read), undefined when the run is no longer this one's.
   */
  async checkReconcile(window: CounterWindow, committed: bigint, holds: HoldEntry[], seen: string[], token: string): Promise<'equal' | 'differs' | undefined> {
    const out = await this.run('reconcile', this.reconcileKeys(window), reconcileArgs('check', committed, '0', holds, seen, token));
    return out === 'equal' || out === 'differs' ? out : undefined;
  }

  /** Reconciler step 3 (stamps `generation`, as a rebuild does): the counters before and after, or undefined when the repair was not applied. */
  async finishReconcile(
    window: CounterWindow,
    committed: bigint,
    holds: HoldEntry[],
    seen: string[],
    generation: string,
    token: string,
  ): Promise<{ committed: [bigint, bigint]; held: [bigint, bigint] } | undefined> {
    const out = (await this.run('reconcile', this.reconcileKeys(window), reconcileArgs('finish', committed, generation, holds, seen, token))) as string[];
    if (out.length === 0) return undefined;
    return { committed: [BigInt(out[0]), BigInt(out[1])], held: [BigInt(out[2]), BigInt(out[3])] };
  }

  /** The current counters of a window (null when not loaded): for the reconciler and tests. */
  async read(window: CounterWindow): Promise<{ committed: bigint; held: bigint } | null> {
    const [loaded, committed, held] = await guardRedis(this.redis, () => this.redis.hmget(this.windowKeys(window)[0], 'loaded', 'committed', 'held'));
    if (loaded !== '1') return null;
    return { committed: BigInt(committed ?? '0'), held: BigInt(held ?? '0') };
  }

  private reconcileKeys(w: CounterWindow): string[] {
    return [...this.windowKeys(w), this.pendingKey(w), this.rebuildKeys(w)[1]];
  }

  private orgTag(orgId: string): string {
    return `${this.keys.key('rsv')}:{${orgId}}`;
  }

  private expireAt(w: CounterWindow): number {
    return w.end * 1000 + KEY_GRACE_MS;
  }

  /**
   * EVALSHA; on NOSCRIPT (a restart, SCRIPT FLUSH, or a Redis Cluster node that has not seen the
   * script yet) EVAL, which runs it on the node of its keys and caches it there. While Redis is
   * down or hung it fails at once with {@link RedisUnavailableError} (see guardRedis): no hang.
   */
  private run(script: Script, keys: string[], args: string[]): Promise<unknown> {
    let sha = this.sha.get(script);
    if (!sha) {
      sha = createHash('sha1').update(this.scripts[script]).digest('hex');
      this.sha.set(script, sha);
    }
    return guardRedis(this.redis, async () => {
      try {
        return await this.redis.evalsha(sha, keys.length, ...keys, ...args);
      } catch (err) {
        if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err;
        return this.redis.eval(this.scripts[script], keys.length, ...keys, ...args);
      }
    });
  }
}
