import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { AppException } from '../common/errors';
import { newId } from '../common/ids';
import { ListPage, ListPageQueryDto, pageOf } from '../common/list-page';
import { Org } from './org.entity';
import { canSeeOrg, Principal } from './principal';

@Injectable()
export class OrgsService {
  constructor(@InjectRepository(Org) private readonly orgs: Repository<Org>) {}

  async create(name: string): Promise<Org> {
    return this.orgs.save(this.orgs.create({ id: newId('org'), name }));
  }

  /** One page of every org, oldest first. */
  list(query: ListPageQueryDto): Promise<ListPage<Org>> {
    return pageOf(this.orgs.createQueryBuilder('o'), query);
  }

  /** The org, if the principal may see it; another tenant's org is a 404, as if it did not exist. */
  async getVisible(principal: Principal, orgId: string): Promise<Org> {
    const org = canSeeOrg(principal, orgId) ? await this.orgs.findOneBy({ id: orgId }) : null;
    if (!org) throw AppException.notFound('Org', orgId);
    return org;
  }

  async exists(orgId: string): Promise<boolean> {
    return this.orgs.existsBy({ id: orgId });
  }
}
