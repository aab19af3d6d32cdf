import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { ListPageDto, ListPageQueryDto } from '../../common/list-page';
import { StringField } from '../../common/validation';
import { unixSeconds } from '../../common/unix-time';
import { Org } from '../org.entity';

@ApiSchema({ name: 'CreateOrgRequest' })
export class CreateOrgDto {
  @StringField({ description: 'Display name of the org', example: 'Acme', maxLength: 200 })
  name: string;
}

@ApiSchema({ name: 'Org' })
export class OrgDto {
  @ApiProperty({ example: 'org_3ZkQ9mW2pL8xYc4RtV7bN1sD' })
  id: string;

  @ApiProperty({ example: 'Acme' })
  name: string;

  @ApiProperty({ type: 'integer', description: 'Creation time, Unix seconds', example: 1735689600 })
  created_at: number;

  static from(org: Org): OrgDto {
    return { id: org.id, name: org.name, created_at: unixSeconds(org.createdAt) };
  }
}

@ApiSchema({ name: 'OrgList' })
export class OrgListDto extends ListPageDto {
  @ApiProperty({ enum: ['list'], example: 'list' })
  object: 'list';

  @ApiProperty({ type: [OrgDto] })
  data: OrgDto[];
}

export class ListOrgsQueryDto extends ListPageQueryDto {}
