import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import Redis from 'ioredis';
import { CoherentCache } from '../redis/coherent-cache';
import { REDIS, RedisKeys } from '../redis/redis.module';
import { guardRedis } from '../redis/redis-unavailable';
import { BudgetOwner, BudgetScope } from './budget.entity';

/** One blocking budget as the check reports it. */
export interface BlockEntry {
  budget_id: string;
  scope: BudgetScope;
  owner: BudgetOwner;
  pct: number;
  resets_at: number;
}

export interface ScopeRef {
  scope: BudgetScope;
  scopeId: string;
}

export interface ScopeState extends ScopeRef {
  blocks: BlockEntry[];
}

interface StoredState {
  /** The version of the refresh that wrote it (see {@link BlockStateStore.nextVersion}). */
  v: number;
  blocks: BlockEntry[];
}

const STATE_TTL_MS = 40 * 86_400_000;
/** In-memory copies of states: at most this many, each re-read from Redis after a minute at the latest. */
const STATE_CACHE_TTL_MS = 60_000;
const STATE_CACHE_MAX_ENTRIES = 200_000;

/**
 * A version from Redis' clock (microseconds), strictly greater than every version handed out
 * before, whatever the process asking: one authority orders every state write.
 */
const NEXT_VERSION = `
local t = redis.call('TIME')
local v = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if v <= last then v = last + 1 end
redis.call('SET', KEYS[1], string.format('%.0f', v))
return string.format('%.0f', v)`;

/**
 * Writes ARGV[1] (a StoredState of version ARGV[2]) unless the stored one is as new or newer;
 * keeps KEYS[2], the set of scopes whose state blocks, in step (the repair pass reads it).
 * Answers 0 when it did not write, 1 when the blocks changed or no state was stored, 2 when only
 * the version did (the blocks end the stored JSON; ARGV[6] is that ending). No stored state may
 * mean Redis lost it (FLUSHDB, a restart) while processes still hold copies that block: they
 * must be dropped, so it counts as a change even when the new state blocks nothing.
 */
const SET_IF_NEWER = `
local current = redis.call('GET', KEYS[1])
if current then
  local stored = cjson.decode(current)
  if (tonumber(stored.v) or 0) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
if ARGV[4] == '1' then redis.call('SADD', KEYS[2], ARGV[5]) else redis.call('SREM', KEYS[2], ARGV[5]) end
if current and string.sub(current, -string.len(ARGV[6])) == ARGV[6] then return 2 end
return 1`;

/**
 * Sets the mark of a complete rebuild (KEYS[2]) if the rebuild that began with token ARGV[1]
 * (KEYS[1]) is still the one Redis knows: data lost since it began took its token with it.
 */
const END_REBUILD = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
return 1`;

/** What a read of scope states found. */
export interface ScopeBlocks {
  /** The blocks of the scopes whose state is known, in windows not yet over. */
  blocks: BlockEntry[];
  /**
   * Scopes with no stored state while Redis has not had every state rebuilt since it last lost
   * its data: no state may then mean a lost one, so only PostgreSQL can tell.
   */
  unknown: ScopeRef[];
}

/**
 * The block state of every budgeted scope, in Redis: per scope, the list of its blocking budgets.
 * Writes are ordered by a version taken from Redis before the writer read anything, so an
 * evaluation that started earlier can never overwrite one that started later, whichever process
 * ran them. Every process keeps the states it read in memory, dropped everywhere when one
 * rewrites them, so the check is a memory lookup.
 */
@Injectable()
export class BlockStateStore implements OnModuleInit, OnApplicationShutdown {
  private readonly states: CoherentCache<StoredState | null>;
  /** State keys whose change this process wrote and could not yet tell the others, with the write that changed them last. */
  private readonly unpublished = new Map<string, number>();
  private writes = 0;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {
    this.states = new CoherentCache(redis, {
      channel: keys.key('budget-blocks', 'changed'),
      onMessage: (payload) => this.states.drop(payload.split('\n')),
      ttlMs: STATE_CACHE_TTL_MS,
      maxEntries: STATE_CACHE_MAX_ENTRIES,
      logger: new Logger(BlockStateStore.name),
      lostWarning: 'Budget state channel lost; checking budgets in Redis until it is back',
    });
  }

  onModuleInit(): Promise<void> {
    return this.states.start();
  }

  onApplicationShutdown(): Promise<void> {
    return this.states.stop();
  }

  /** Take before reading budgets or spend; pass to {@link write}. */
  async nextVersion(): Promise<number> {
    return Number(await guardRedis(this.redis, () => this.redis.eval(NEXT_VERSION, 1, this.keys.key('budget-blocks', 'version'))));
  }

  /**
   * Writes the states (each unless a newer one is stored) and drops those whose blocks changed
   * from every process' memory. A copy whose blocks did not change stays: it answers the check as
   * the new one would (only the version moved), so an ingest that blocks nothing new costs no
   * check a trip to Redis.
   */
  async write(states: ScopeState[], version: number): Promise<void> {
    if (states.length === 0) return;
    const index = this.indexKey();
    const pipeline = this.redis.pipeline();
    for (const state of states) {
      const blocks = JSON.stringify(state.blocks);
      // The same text as JSON.stringify({ v, blocks }): the blocks end it.
      const stored = `{"v":${version},"blocks":${blocks}}`;
      const blocking = state.blocks.length > 0 ? '1' : '0';
      pipeline.eval(SET_IF_NEWER, 2, this.stateKey(state), index, stored, String(version), String(STATE_TTL_MS), blocking, memberOf(state), `"blocks":${blocks}}`);
    }
    const results = (await guardRedis(this.redis, () => pipeline.exec())) ?? [];
    const failed = results.find(([err]) => err);
    if (failed) throw failed[0];
    const changed = states.filter((_state, i) => results[i]?.[1] === 1).map((state) => this.stateKey(state));
    this.states.drop(changed);
    // Sent with this write: its own changes, and those of an earlier write whose message failed
    // (its retry finds the state written already, an unchanged one, and would send nothing). A key
    // leaves the set only if no later change of it came in while this message was on its way.
    const sequence = ++this.writes;
    for (const key of changed) this.unpublished.set(key, sequence);
    if (this.unpublished.size === 0) return;
    const message = new Map(this.unpublished);
    await guardRedis(this.redis, () => this.states.publish([...message.keys()].join('\n')));
    for (const [key, sent] of message) if (this.unpublished.get(key) === sent) this.unpublished.delete(key);
  }

  /** The blocking budgets of the scopes (blocks of a past window have lifted), and the scopes whose state is unknown. */
  async blocksOf(scopes: ScopeRef[], now = Date.now()): Promise<ScopeBlocks> {
    const nowSeconds = Math.floor(now / 1000);
    const found: ScopeBlocks = { blocks: [], unknown: [] };
    const states = await this.read(scopes.map((ref) => this.stateKey(ref)));
    scopes.forEach((scope, i) => {
      const state = states[i];
      if (state === undefined) found.unknown.push(scope);
      for (const block of state?.blocks ?? []) {
        if (block.resets_at > nowSeconds) found.blocks.push(block);
      }
    });
    return found;
  }

  /**
   * Marks the start of a pass that rewrites every scope's state; {@link endRebuild} with the
   * token it returns marks every state as rebuilt, unless Redis lost its data in between.
   */
  async beginRebuild(): Promise<string> {
    const token = randomUUID();
    await guardRedis(this.redis, () => this.redis.set(this.rebuildKey(), token));
    return token;
  }

  /** True when the mark was set (the pass begun with `token` ran on data Redis still holds). */
  async endRebuild(token: string): Promise<boolean> {
    return (await guardRedis(this.redis, () => this.redis.eval(END_REBUILD, 2, this.rebuildKey(), this.rebuiltKey(), token))) === 1;
  }

  /** Keeps in memory that these scopes have no state (they have no budget): read before `snapshot` was taken. */
  remember(scopes: ScopeRef[], snapshot: number): void {
    for (const scope of scopes) this.states.set(this.stateKey(scope), null, snapshot);
  }

  /** Take before reading budgets for {@link remember}. */
  snapshot(): number {
    return this.states.snapshot();
  }

  /** Scopes whose stored state blocks (for the repair pass), a page at a time. */
  async blockingScopes(cursor: string): Promise<{ cursor: string; scopes: ScopeRef[] }> {
    const [next, members] = await guardRedis(this.redis, () => this.redis.sscan(this.indexKey(), cursor, 'COUNT', 500));
    return { cursor: next, scopes: members.map(parseMember).filter((s): s is ScopeRef => s !== null) };
  }

  /**
   * Scope states from memory, else from Redis (null: the scope has none; undefined: it has none
   * stored, and Redis lost its data since the last complete rebuild, so it may have had one).
   */
  private async read(keys: string[]): Promise<Array<StoredState | null | undefined>> {
    const states = keys.map((key) => this.states.get(key));
    const missing = keys.filter((_key, i) => states[i] === undefined);
    if (missing.length > 0) {
      const snapshot = this.states.snapshot();
      // The rebuild mark in the same read: a state written after the loss is known either way.
      const raw = await guardRedis(this.redis, () => this.redis.mget(...missing, this.rebuiltKey()));
      const rebuilt = raw[missing.length] !== null;
      missing.forEach((key, i) => {
        const state = raw[i] ? (JSON.parse(raw[i]!) as StoredState) : null;
        if (state === null && !rebuilt) return;
        this.states.set(key, state, snapshot);
        states[keys.indexOf(key)] = state;
      });
    }
    return states;
  }

  private stateKey(ref: ScopeRef): string {
    return this.keys.key('budget-blocks', ref.scope, ref.scopeId);
  }

  private indexKey(): string {
    return this.keys.key('budget-blocks', 'blocking');
  }

  /** The token of the rebuild pass under way (or last begun). */
  private rebuildKey(): string {
    return this.keys.key('budget-blocks', 'rebuilding');
  }

  /** Set once a rebuild pass ended on data Redis still holds: gone when Redis loses its data. */
  private rebuiltKey(): string {
    return this.keys.key('budget-blocks', 'rebuilt');
  }
}

function memberOf(ref: ScopeRef): string {
  return `${ref.scope}:${ref.scopeId}`;
}

function parseMember(member: string): ScopeRef | null {
  const at = member.indexOf(':');
  const scope = member.slice(0, at);
  if (at < 0 || (scope !== 'org' && scope !== 'apikey' && scope !== 'team' && scope !== 'user')) return null;
  return { scope, scopeId: member.slice(at + 1) };
}
