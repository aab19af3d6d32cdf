import { Body, Controller, Delete, Get, Param, Post, Query } from '@nestjs/common';
import { AFTER_LAST_ID, CursorPaginated } from '../common/sdk-extensions';
import { SdkNamespace } from '../common/sdk-namespace';
import { ApiTags } from '@nestjs/swagger';
import { Operation } from '../common/api-responses';
import { ApiKeysService } from './api-keys.service';
import { Auth, Authenticated } from './auth.decorators';
import {
  API_KEY_NOT_FOUND,
  ApiKeyDto,
  ApiKeyIdParamsDto,
  ApiKeyListDto,
  CreateApiKeyDto,
  CreatedApiKeyDto,
  ListApiKeysQueryDto,
  ORG_NOT_FOUND,
} from './dto/api-key.dto';
import { Principal } from './principal';
import { Role } from './role';

@ApiTags('auth')
@SdkNamespace('apiKeys')
@Controller('api/v1/api-keys')
export class ApiKeysController {
  constructor(private readonly apiKeys: ApiKeysService) {}

  @Post()
  @Authenticated(Role.ClusterAdmin, Role.OrgAdmin)
  @Operation({
    summary: 'Create an API key',
    description:
      'Creates a key and returns its secret (`key`) once. Org admins create org_admin and member keys in their own org; ' +
      'cluster admins create any role in any org (cluster_admin and ingest keys belong to the system org).',
    response: CreatedApiKeyDto,
    created: true,
    notFound: ORG_NOT_FOUND,
  })
  async create(@Auth() principal: Principal, @Body() body: CreateApiKeyDto): Promise<CreatedApiKeyDto> {
    const { key, secret } = await this.apiKeys.create(principal, body);
    return { ...ApiKeyDto.from(key), key: secret };
  }

  @Get()
  @Authenticated(Role.ClusterAdmin, Role.OrgAdmin, Role.Member)
  @Operation({
    summary: 'List API keys',
    description:
      'Cluster admins see every key (optionally of one org); org admins their org\'s; members their own. ' +
      'Oldest first, a page at a time (`limit`, default 100, at most 1000): while `has_more` is true, pass `last_id` as `after`.',
    response: ApiKeyListDto,
  })
  @CursorPaginated(AFTER_LAST_ID)
  async list(@Auth() principal: Principal, @Query() query: ListApiKeysQueryDto): Promise<ApiKeyListDto> {
    const page = await this.apiKeys.list(principal, query);
    return { object: 'list', data: page.items.map(ApiKeyDto.from), has_more: page.has_more, last_id: page.last_id };
  }

  @Get(':apiKeyId')
  @Authenticated(Role.ClusterAdmin, Role.OrgAdmin, Role.Member)
  @Operation({
    summary: 'Get an API key',
    description: 'The key without its secret.',
    response: ApiKeyDto,
    notFound: API_KEY_NOT_FOUND,
  })
  async get(@Auth() principal: Principal, @Param() params: ApiKeyIdParamsDto): Promise<ApiKeyDto> {
    return ApiKeyDto.from(await this.apiKeys.getVisible(principal, params.apiKeyId));
  }

  @Delete(':apiKeyId')
  @Authenticated(Role.ClusterAdmin, Role.OrgAdmin)
  @Operation({
    summary: 'Revoke an API key',
    description: 'Revokes the key on every instance at once and returns it. Revoking a revoked key returns it unchanged.',
    response: ApiKeyDto,
    notFound: API_KEY_NOT_FOUND,
  })
  async revoke(@Auth() principal: Principal, @Param() params: ApiKeyIdParamsDto): Promise<ApiKeyDto> {
    return ApiKeyDto.from(await this.apiKeys.revoke(principal, params.apiKeyId));
  }
}
