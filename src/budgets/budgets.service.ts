import { randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { EntityManager, Repository } from 'typeorm';
import { ApiKeysService } from '../auth/api-keys.service';
import { OrgsService } from '../auth/orgs.service';
import { Principal } from '../auth/principal';
import { Role } from '../auth/role';
import { formatNano, numberToDecimalString, parseDecimalToNano } from '../common/money';
import { currentWindow, evaluateBudget } from './budget-evaluation';
import { canonicalTimeZoneCase, DEFAULT_TIME_ZONE } from './budget-window';
import type { WebhookUrlView } from './budget.mapper';
import { AppException } from '../common/errors';
import { newId } from '../common/ids';
import { ListPage, pageOf } from '../common/list-page';
import { openSecret, sealSecret } from '../common/secret-box';
import { assertPublicTarget, UnsafeWebhookTarget } from '../common/ssrf';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { Budget, BudgetOwner, BudgetScope } from './budget.entity';
import { displayScopeId, ORG_LOCAL_SCOPES, orgOfScopeKey } from './budget-scope';
import { ListBudgetsQueryDto, SetBudgetDto } from './dto/budget.dto';

/**
 * A validated pct (a canonical decimal, at most 6 decimals and 10^9) as the JSON number stored in
 * `thresholds`: PostgreSQL keeps JSON numbers as exact numerics, and every such decimal is a
 * double whose shortest form is that decimal again (budgets.service.spec.ts checks the edges).
 */
export function storedPct(pct: string): number {
  const value = Number(pct);
  if (numberToDecimalString(value) !== pct) throw new RangeError(`pct ${pct} is not exactly representable`);
  return value;
}

/** How long the previous webhook secret still signs after a change (SPEC §5). */
export const SECRET_ROTATION_MS = 24 * 3_600_000;

/** What a budget's reservation counters count (a change of any of it moves its counter_epoch). */
export type CounterDefinition = Pick<Budget, 'period' | 'timezone' | 'limitKind' | 'thresholds'>;

/**
 * What a budget write must also do inside its transaction (the reservations module's, passed by
 * the budget change workflow): `beforeRewrite` once an existing budget's row is locked, before it
 * is rewritten as `next`; `afterWrite` once the row is written (with the counter epoch it had,
 * null for a new budget).
 */
export interface BudgetWriteHooks {
  beforeRewrite(manager: EntityManager, existing: Budget, next: CounterDefinition): Promise<void>;
  afterWrite(manager: EntityManager, budget: Budget, previousEpoch: string | null): Promise<void>;
}

/**
 * Budgets: who may read and write which, and the webhook settings stored with them. Storage
 * only: what a change triggers (block state, evaluation) is in BudgetChangeWorkflow.
 */
@Injectable()
export class BudgetsService {
  constructor(
    @InjectRepository(Budget) private readonly budgets: Repository<Budget>,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly orgs: OrgsService,
    private readonly apiKeys: ApiKeysService,
  ) {}

  private zoneSpellings?: Promise<Map<string, string>>;

  /**
   * A time zone as the time zone database spells it when only its letter case differs (`utc` →
   * `UTC`, `asia/kolkata` → `Asia/Kolkata`): the names PostgreSQL's own tz database knows, links
   * included (this runtime's ICU lists only its older canonical names), read once per process.
   */
  private async spellTimeZone(name: string): Promise<string> {
    this.zoneSpellings ??= this.budgets.manager
      .query('SELECT name FROM pg_timezone_names')
      .then((rows: Array<{ name: string }>) => new Map(rows.map((r) => [r.name.toLowerCase(), r.name])));
    const spellings = await this.zoneSpellings.catch(() => {
      this.zoneSpellings = undefined; // tried again on the next PUT
      return new Map<string, string>();
    });
    return spellings.get(name.toLowerCase()) ?? canonicalTimeZoneCase(name);
  }

  /** Creates or replaces the (scope, scope_id, owner) budget. Returns a generated webhook secret once. */
  async set(principal: Principal, scope: BudgetScope, scopeId: string, dto: SetBudgetDto, hooks: BudgetWriteHooks): Promise<{ budget: Budget; generatedSecret?: string }> {
    const owner: BudgetOwner = dto.owner ?? 'org';
    if (owner === 'cluster' && principal.role !== Role.ClusterAdmin) {
      throw AppException.forbidden('Only cluster admins set owner: cluster budgets');
    }
    const orgId = await this.scopeOrg(principal, scope, scopeId);
    const url = dto.webhook_url ?? null;
    if (url === null && typeof dto.webhook_secret === 'string') {
      throw AppException.validation([{ param: 'webhook_secret', message: 'needs a webhook_url' }]);
    }
    if (url !== null) {
      try {
        await assertPublicTarget(new URL(url), this.config.webhookAllowPrivateTargets);
      } catch (err) {
        if (err instanceof UnsafeWebhookTarget) throw AppException.validation([{ param: 'webhook_url', message: err.message }]);
        throw err;
      }
    }
    // Validated exactly (ExactDecimalField): canonical decimal strings within SPEC §4's rules.
    const limit = parseDecimalToNano(dto.limit);
    const thresholds = dto.thresholds.map((t) => ({ pct: storedPct(t.pct), action: t.action ?? 'alert' }));
    const timezone = await this.spellTimeZone(dto.timezone ?? DEFAULT_TIME_ZONE);

    return this.budgets.manager.transaction(async (manager) => {
      const repo = manager.getRepository(Budget);
      const existing = await repo
        .createQueryBuilder('b')
        .addSelect('b.webhookSecretSealed')
        .addSelect('b.webhookPreviousSecretSealed')
        .where('b.scope = :scope AND b.scope_id = :scopeId AND b.owner = :owner', { scope, scopeId, owner })
        .setLock('pessimistic_write')
        .getOne();
      let sealed: Buffer | null = null;
      let generatedSecret: string | undefined;
      if (url !== null) {
        if (typeof dto.webhook_secret === 'string') sealed = sealSecret(this.secretsKey, dto.webhook_secret);
        else if (dto.webhook_secret === undefined && existing?.webhookSecretSealed) sealed = existing.webhookSecretSealed;
        else {
          generatedSecret = `whsec_${randomBytes(32).toString('base64')}`;
          sealed = sealSecret(this.secretsKey, generatedSecret);
        }
      }
      const rotation = this.rotation(existing, sealed);
      const values = {
        period: dto.period,
        timezone,
        limitKind: dto.limit_kind,
        limitValue: formatNano(limit),
        thresholds,
        webhookUrl: url,
        webhookSecretSealed: sealed,
        ...rotation,
        webhookDisabledAt: null,
        updatedBy: principal.apiKeyId,
        updatedOnBehalfOf: principal.onBehalfOf,
      };
      let id: string;
      if (existing) {
        await hooks.beforeRewrite(manager, existing, values);
        await repo.update({ id: existing.id }, values);
        id = existing.id;
      } else {
        id = newId('bud');
        // A concurrent PUT of the same (scope, scope_id, owner) loses the race on the unique index
        // and is retried by the client; ON CONFLICT turns it into an update instead.
        await repo
          .createQueryBuilder()
          .insert()
          .values({ id, scope, scopeId, orgId, owner, ...values })
          .orUpdate(['period', 'timezone', 'limit_kind', 'limit_value', 'thresholds', 'webhook_url', 'webhook_secret_sealed', 'webhook_previous_secret_sealed', 'webhook_previous_secret_expires_at', 'webhook_disabled_at', 'updated_by', 'updated_on_behalf_of', 'updated_at'], ['scope', 'scope_id', 'owner'])
          .execute();
      }
      const budget = await repo.findOneByOrFail({ scope, scopeId, owner });
      // What is stored must evaluate: anything that throws here rolls the whole PUT back.
      evaluateBudget(budget, { costNano: 0n, tokens: 0n }, currentWindow(budget, new Date()));
      await hooks.afterWrite(manager, budget, existing?.counterEpoch ?? null);
      return { budget, generatedSecret };
    });
  }

  /** One page of the budgets the principal may see, oldest first. */
  async list(principal: Principal, query: ListBudgetsQueryDto): Promise<ListPage<Budget>> {
    if (query.org_id !== undefined && principal.role !== Role.ClusterAdmin) {
      throw AppException.forbidden('Only cluster admins may filter by org_id');
    }
    const qb = this.budgets.createQueryBuilder('b');
    if (query.scope) qb.andWhere('b.scope = :scope', { scope: query.scope });
    if (query.owner) qb.andWhere('b.owner = :owner', { owner: query.owner });
    if (principal.role === Role.ClusterAdmin) {
      if (query.org_id) qb.andWhere('b.org_id = :orgId', { orgId: query.org_id });
    } else if (principal.role === Role.OrgAdmin) {
      qb.andWhere('b.org_id = :orgId', { orgId: principal.orgId });
    } else {
      qb.andWhere(`b.scope = 'apikey' AND b.scope_id = :keyId`, { keyId: principal.apiKeyId });
    }
    return pageOf(qb, query);
  }

  /** The budgets of one scope the principal may see (404 when the scope itself is not visible). */
  async listForScope(principal: Principal, scope: BudgetScope, scopeId: string, owner?: BudgetOwner): Promise<Budget[]> {
    await this.scopeOrg(principal, scope, scopeId);
    const budgets = await this.budgets.find({ where: { scope, scopeId, ...(owner ? { owner } : {}) }, order: { owner: 'ASC' } });
    return budgets.filter((b) => this.canSee(principal, b));
  }

  async getVisible(principal: Principal, id: string): Promise<Budget> {
    const budget = await this.budgets.findOneBy({ id });
    if (!budget || !this.canSee(principal, budget)) throw AppException.notFound('Budget', id);
    return budget;
  }

  /** The visible budget of a scope and owner (404 when the scope or the budget is not visible). */
  async getForScope(principal: Principal, scope: BudgetScope, scopeId: string, owner: BudgetOwner): Promise<Budget> {
    const [budget] = await this.listForScope(principal, scope, scopeId, owner);
    if (!budget) throw AppException.notFound('Budget', `${scope} ${displayScopeId({ scope, scopeId })} (owner ${owner})`);
    return budget;
  }

  /**
   * Deletes the budget in one transaction that first locks its row and runs `beforeDelete` (which
   * records what the deletion implies, e.g. resolved events, atomically with it); answers what
   * `beforeDelete` returned. A budget deleted meanwhile by another request answers 404.
   */
  async delete<T>(principal: Principal, id: string, beforeDelete: (manager: EntityManager, budget: Budget) => Promise<T>): Promise<{ budget: Budget; result: T }> {
    const budget = await this.getVisible(principal, id);
    if (!this.mayChange(principal, budget)) throw AppException.forbidden('Only cluster admins delete owner: cluster budgets');
    const result = await this.budgets.manager.transaction(async (manager) => {
      const locked = await manager.getRepository(Budget).createQueryBuilder('b').setLock('pessimistic_write').where('b.id = :id', { id }).getOne();
      if (!locked) throw AppException.notFound('Budget', id);
      const done = await beforeDelete(manager, locked);
      await manager.delete(Budget, { id });
      return done;
    });
    return { budget, result };
  }

  /**
   * SPEC §5 rotation: when the signing secret changes, the old one keeps signing beside the new one
   * for {@link SECRET_ROTATION_MS}; an unchanged secret keeps any rotation under way; no URL ends it.
   */
  private rotation(existing: Budget | null, sealed: Buffer | null): Pick<Budget, 'webhookPreviousSecretSealed' | 'webhookPreviousSecretExpiresAt'> {
    const none = { webhookPreviousSecretSealed: null, webhookPreviousSecretExpiresAt: null };
    if (sealed === null || !existing?.webhookSecretSealed) return none;
    const before = openSecret(this.secretsKey, existing.webhookSecretSealed);
    if (before === openSecret(this.secretsKey, sealed)) {
      return { webhookPreviousSecretSealed: existing.webhookPreviousSecretSealed ?? null, webhookPreviousSecretExpiresAt: existing.webhookPreviousSecretExpiresAt };
    }
    return { webhookPreviousSecretSealed: existing.webhookSecretSealed, webhookPreviousSecretExpiresAt: new Date(Date.now() + SECRET_ROTATION_MS) };
  }

  private get secretsKey(): Buffer {
    if (!this.config.secretsKey) throw new Error('SECRETS_KEY was not resolved at start-up');
    return this.config.secretsKey;
  }

  /**
   * Whether the principal may change (set, delete) this visible budget: cluster admins always, org
   * admins the `owner: org` budgets of their org, members never. Only they see its webhook URL in full.
   */
  mayChange(principal: Principal, budget: Budget): boolean {
    if (principal.role === Role.ClusterAdmin) return true;
    return principal.role === Role.OrgAdmin && budget.owner === 'org' && budget.orgId === principal.orgId;
  }

  /** How the principal sees the budget's webhook URL (SPEC §4 "Who sees webhook URLs"). */
  urlView(principal: Principal, budget: Budget): WebhookUrlView {
    return this.mayChange(principal, budget) ? 'full' : 'masked';
  }

  private canSee(principal: Principal, budget: Budget): boolean {
    switch (principal.role) {
      case Role.ClusterAdmin:
        return true;
      case Role.OrgAdmin:
        return budget.orgId === principal.orgId;
      default:
        return budget.scope === 'apikey' && budget.scopeId === principal.apiKeyId;
    }
  }

  /** The org of a scope the principal may see; 404 for unknown or another tenant's. */
  private async scopeOrg(principal: Principal, scope: BudgetScope, scopeId: string): Promise<string> {
    // A team or user scope lives in its org: the org's rules (members see neither).
    const orgId = scope === 'org' ? scopeId : ORG_LOCAL_SCOPES.has(scope) ? orgOfScopeKey(scopeId) : null;
    if (orgId !== null) {
      if (principal.role === Role.Member) throw AppException.notFound('Org', orgId);
      return (await this.orgs.getVisible(principal, orgId)).id;
    }
    return (await this.apiKeys.getVisible(principal, scopeId)).orgId;
  }
}
