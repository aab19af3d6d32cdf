import { Body, Controller, Get, Param, Post, Query } from '@nestjs/common';
import { AFTER_LAST_ID, CursorPaginated } from '../common/sdk-extensions';
import { SdkNamespace } from '../common/sdk-namespace';
import { ApiTags } from '@nestjs/swagger';
import { Operation } from '../common/api-responses';
import { Auth, Authenticated } from './auth.decorators';
import { ORG_NOT_FOUND, OrgIdParamsDto } from './dto/api-key.dto';
import { CreateOrgDto, ListOrgsQueryDto, OrgDto, OrgListDto } from './dto/org.dto';
import { OrgsService } from './orgs.service';
import { Principal } from './principal';
import { Role } from './role';

@ApiTags('orgs')
@SdkNamespace('orgs')
@Controller('api/v1/orgs')
export class OrgsController {
  constructor(private readonly orgs: OrgsService) {}

  @Post()
  @Authenticated(Role.ClusterAdmin)
  @Operation({ summary: 'Create an org', description: 'Creates a tenant. Cluster admins only.', response: OrgDto, created: true })
  async create(@Body() body: CreateOrgDto): Promise<OrgDto> {
    return OrgDto.from(await this.orgs.create(body.name));
  }

  @Get()
  @Authenticated(Role.ClusterAdmin)
  @Operation({
    summary: 'List orgs',
    description:
      'Every org, oldest first, a page at a time (`limit`, default 100, at most 1000): while `has_more` is true, pass `last_id` as `after`. Cluster admins only.',
    response: OrgListDto,
  })
  @CursorPaginated(AFTER_LAST_ID)
  async list(@Query() query: ListOrgsQueryDto): Promise<OrgListDto> {
    const page = await this.orgs.list(query);
    return { object: 'list', data: page.items.map(OrgDto.from), has_more: page.has_more, last_id: page.last_id };
  }

  @Get(':orgId')
  @Authenticated(Role.ClusterAdmin, Role.OrgAdmin, Role.Member)
  @Operation({
    summary: 'Get an org',
    description: 'Cluster admins read any org; org admins and members read their own.',
    response: OrgDto,
    notFound: ORG_NOT_FOUND,
  })
  async get(@Auth() principal: Principal, @Param() params: OrgIdParamsDto): Promise<OrgDto> {
    return OrgDto.from(await this.orgs.getVisible(principal, params.orgId));
  }
}
