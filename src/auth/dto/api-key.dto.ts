import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { notFound } from '../../common/api-responses';
import { ListPageDto, ListPageQueryDto } from '../../common/list-page';
import { EnumField, StringField } from '../../common/validation';
import { ApiKey } from '../api-key.entity';
import { ALL_ROLES, Role } from '../role';
import { unixSeconds } from '../../common/unix-time';
import { ID_PATTERN } from '../../common/ids';


@ApiSchema({ name: 'CreateApiKeyRequest' })
export class CreateApiKeyDto {
  @StringField({ description: 'Display name of the key', example: 'gateway-prod', maxLength: 200 })
  name: string;

  @EnumField(ALL_ROLES, { description: 'Role of the key', enumName: 'Role', example: Role.Member })
  role: Role;

  @StringField({
    description:
      'Org the key belongs to. Org admins may omit it (their own org). Cluster admins must give it for org_admin and member keys; cluster_admin and ingest keys belong to the system org.',
    example: 'org_3ZkQ9mW2pL8xYc4RtV7bN1sD',
    maxLength: 40,
    pattern: ID_PATTERN,
    optional: true,
  })
  org_id?: string;

  @StringField({
    description: 'Free-form team (sub-tenant) inside the org, reported by cost reports',
    example: 'team-search',
    maxLength: 128,
    optional: true,
    nullable: true,
  })
  team_id?: string | null;
}

@ApiSchema({ name: 'ApiKey' })
export class ApiKeyDto {
  @ApiProperty({ example: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD', description: 'Public id (the api_key_id usage reports)' })
  id: string;

  @ApiProperty({ example: 'org_3ZkQ9mW2pL8xYc4RtV7bN1sD' })
  org_id: string;

  @ApiProperty({ example: 'gateway-prod' })
  name: string;

  @ApiProperty({ enum: ALL_ROLES, enumName: 'Role', example: Role.Member })
  role: Role;

  @ApiProperty({ type: String, nullable: true, example: 'team-search' })
  team_id: string | null;

  @ApiProperty({ example: 'mk-Ab3d', description: 'First characters of the secret, to tell keys apart' })
  key_prefix: string;

  @ApiProperty({ type: 'integer', description: 'Creation time, Unix seconds', example: 1735689600 })
  created_at: number;

  @ApiProperty({ type: 'integer', nullable: true, description: 'Revocation time, Unix seconds, or null', example: null })
  revoked_at: number | null;

  static from(key: ApiKey): ApiKeyDto {
    return {
      id: key.id,
      org_id: key.orgId,
      name: key.name,
      role: key.role,
      team_id: key.teamId,
      key_prefix: key.secretPrefix,
      created_at: unixSeconds(key.createdAt),
      revoked_at: key.revokedAt ? unixSeconds(key.revokedAt) : null,
    };
  }
}

@ApiSchema({ name: 'CreatedApiKey' })
export class CreatedApiKeyDto extends ApiKeyDto {
  @ApiProperty({
    example: 'mk-9fKp2QzX7LwR4tYb8NcV3mHs6DgJ1aEu5ZqWxT0o',
    description: 'The secret. Shown in this response only: store it now.',
  })
  key: string;
}

@ApiSchema({ name: 'ApiKeyList' })
export class ApiKeyListDto extends ListPageDto {
  @ApiProperty({ enum: ['list'], example: 'list' })
  object: 'list';

  @ApiProperty({ type: [ApiKeyDto] })
  data: ApiKeyDto[];
}

export class ListApiKeysQueryDto extends ListPageQueryDto {
  @StringField({
    description: 'Only keys of this org (cluster admins only)',
    example: 'org_3ZkQ9mW2pL8xYc4RtV7bN1sD',
    maxLength: 40,
    pattern: ID_PATTERN,
    optional: true,
  })
  org_id?: string;
}

export const API_KEY_NOT_FOUND = notFound('API key', 'key_8hYt2LmQ4xWv9RkP3sZc6NbD');
export const ORG_NOT_FOUND = notFound('Org', 'org_3ZkQ9mW2pL8xYc4RtV7bN1sD');

export class ApiKeyIdParamsDto {
  @StringField({ description: 'API key id', example: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD', maxLength: 40, pattern: ID_PATTERN })
  apiKeyId: string;
}

export class OrgIdParamsDto {
  @StringField({ description: 'Org id', example: 'org_3ZkQ9mW2pL8xYc4RtV7bN1sD', maxLength: 40, pattern: ID_PATTERN })
  orgId: string;
}

