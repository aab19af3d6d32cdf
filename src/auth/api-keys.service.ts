import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { IsNull, Repository } from 'typeorm';
import { AppException } from '../common/errors';
import { newId } from '../common/ids';
import { ListPage, pageOf } from '../common/list-page';
import { ApiKeyCache, CachedKey } from './api-key-cache';
import { ApiKey } from './api-key.entity';
import { CreateApiKeyDto, ListApiKeysQueryDto } from './dto/api-key.dto';
import { OrgsService } from './orgs.service';
import { Principal } from './principal';
import { Role, SYSTEM_ORG_ID, SYSTEM_ROLES } from './role';
import { hashApiKeySecret, looksLikeApiKey, newApiKeySecret } from './secrets';

@Injectable()
export class ApiKeysService {
  /** A key's org never changes, so this needs no invalidation (bounded, oldest dropped first). */
  private readonly orgByKey = new Map<string, string>();

  constructor(
    @InjectRepository(ApiKey) private readonly keys: Repository<ApiKey>,
    private readonly orgs: OrgsService,
    private readonly cache: ApiKeyCache,
  ) {}

  /** Resolves a bearer secret to its active key, from the cache when it can. Null when unknown or revoked. */
  async authenticate(secret: string): Promise<CachedKey | null> {
    if (!looksLikeApiKey(secret)) return null;
    const hash = hashApiKeySecret(secret);
    const hex = hash.toString('hex');
    let cached = this.cache.get(hex);
    if (!cached) {
      const snapshot = this.cache.snapshot();
      const row = await this.keys.findOne({
        where: { secretHash: hash },
        select: { id: true, orgId: true, role: true, teamId: true, revokedAt: true },
      });
      if (!row) return null;
      cached = { id: row.id, orgId: row.orgId, role: row.role, teamId: row.teamId, revoked: row.revokedAt !== null };
      this.cache.set(hex, cached, snapshot);
    }
    return cached.revoked ? null : cached;
  }

  /**
   * The org of a key and whether it is revoked, or null for an unknown key: from memory once seen,
   * dropped on every process when the key is revoked (as {@link authenticate}'s entries are).
   */
  async status(keyId: string): Promise<{ orgId: string; teamId: string | null; revoked: boolean } | null> {
    let cached = this.cache.getById(keyId);
    if (!cached) {
      const snapshot = this.cache.snapshot();
      const row = await this.keys.findOne({ where: { id: keyId }, select: { id: true, orgId: true, role: true, teamId: true, revokedAt: true } });
      if (!row) return null;
      cached = { id: row.id, orgId: row.orgId, role: row.role, teamId: row.teamId, revoked: row.revokedAt !== null };
      this.cache.setById(cached, snapshot);
    }
    return { orgId: cached.orgId, teamId: cached.teamId, revoked: cached.revoked };
  }

  /** The org of a key (revoked or not), or null for an unknown key; answered from memory once seen. */
  async orgOf(keyId: string): Promise<string | null> {
    const cached = this.orgByKey.get(keyId);
    if (cached !== undefined) return cached;
    const row = await this.keys.findOne({ where: { id: keyId }, select: { id: true, orgId: true } });
    if (!row) return null;
    if (this.orgByKey.size >= 100_000) this.orgByKey.delete(this.orgByKey.keys().next().value as string);
    this.orgByKey.set(keyId, row.orgId);
    return row.orgId;
  }

  async create(principal: Principal, dto: CreateApiKeyDto): Promise<{ key: ApiKey; secret: string }> {
    const orgId = await this.targetOrg(principal, dto);
    const secret = newApiKeySecret();
    const key = await this.keys.save(
      this.keys.create({
        id: newId('key'),
        orgId,
        name: dto.name,
        role: dto.role,
        teamId: dto.team_id ?? null,
        secretHash: hashApiKeySecret(secret),
        secretPrefix: secret.slice(0, 7),
        createdBy: principal.apiKeyId,
        createdOnBehalfOf: principal.onBehalfOf,
        revokedAt: null,
      }),
    );
    return { key, secret };
  }

  /** One page of the keys the principal may see: every key (cluster admin), its org's (org admin), itself (member). */
  list(principal: Principal, query: ListApiKeysQueryDto): Promise<ListPage<ApiKey>> {
    if (query.org_id !== undefined && principal.role !== Role.ClusterAdmin) {
      throw AppException.forbidden('Only cluster admins may filter by org_id');
    }
    const qb = this.keys.createQueryBuilder('k');
    if (principal.role === Role.ClusterAdmin) {
      if (query.org_id !== undefined) qb.andWhere('k.org_id = :orgId', { orgId: query.org_id });
    } else if (principal.role === Role.OrgAdmin) {
      qb.andWhere('k.org_id = :orgId', { orgId: principal.orgId });
    } else {
      qb.andWhere('k.id = :keyId', { keyId: principal.apiKeyId });
    }
    return pageOf(qb, query);
  }

  async getVisible(principal: Principal, id: string): Promise<ApiKey> {
    const key = await this.keys.findOneBy({ id });
    if (!key || !this.canSee(principal, key)) throw AppException.notFound('API key', id);
    return key;
  }

  /** Revokes at once on every process (idempotent: revoking a revoked key returns it unchanged). */
  async revoke(principal: Principal, id: string): Promise<ApiKey> {
    const key = await this.getVisible(principal, id);
    if (key.revokedAt === null) await this.keys.update({ id, revokedAt: IsNull() }, { revokedAt: () => 'now()' });
    // Told to every process on every call, revoked already or not: a first call whose message
    // could not be sent (a 503) is retried by the client, and the retry must send it.
    await this.cache.revoked(id);
    return this.keys.findOneByOrFail({ id });
  }

  private canSee(principal: Principal, key: ApiKey): boolean {
    switch (principal.role) {
      case Role.ClusterAdmin:
        return true;
      case Role.OrgAdmin:
        return key.orgId === principal.orgId;
      default:
        return key.id === principal.apiKeyId;
    }
  }

  private async targetOrg(principal: Principal, dto: CreateApiKeyDto): Promise<string> {
    const systemRole = SYSTEM_ROLES.includes(dto.role);
    if (principal.role === Role.OrgAdmin) {
      if (systemRole) throw AppException.forbidden(`Org admins cannot create ${dto.role} keys`);
      if (dto.org_id !== undefined && dto.org_id !== principal.orgId) throw AppException.notFound('Org', dto.org_id);
      return principal.orgId;
    }
    // Cluster admin.
    if (systemRole) {
      if (dto.org_id !== undefined && dto.org_id !== SYSTEM_ORG_ID) {
        throw AppException.validation([{ param: 'org_id', message: `${dto.role} keys belong to the system org; omit org_id` }]);
      }
      return SYSTEM_ORG_ID;
    }
    if (dto.org_id === undefined) {
      throw AppException.validation([{ param: 'org_id', message: `is required for ${dto.role} keys` }]);
    }
    if (dto.org_id === SYSTEM_ORG_ID) {
      throw AppException.validation([{ param: 'org_id', message: 'the system org holds only cluster_admin and ingest keys' }]);
    }
    if (!(await this.orgs.exists(dto.org_id))) throw AppException.notFound('Org', dto.org_id);
    return dto.org_id;
  }
}
