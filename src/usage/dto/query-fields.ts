import { IntField, StringArrayQueryField, StringField } from '../../common/validation';
import { ID_PATTERN, LATEST_QUERY_TIME, MODEL_MAX_LENGTH, PROJECT_ID_MAX_LENGTH, USER_ID_MAX_LENGTH } from '../usage-fields';

/** Query parameters shared by the usage and cost reports. */

export const StartTimeField = () =>
  IntField({ description: 'Start time (Unix seconds), inclusive', example: 1704067200, min: 0, max: LATEST_QUERY_TIME, fromQuery: true });

export const EndTimeField = (options: { optional: boolean }) =>
  IntField({
    description: `End time (Unix seconds), exclusive${options.optional ? '; default now' : ''}`,
    example: 1704153600,
    min: 1,
    max: LATEST_QUERY_TIME,
    fromQuery: true,
    optional: options.optional,
  });

export const PageField = () =>
  StringField({
    description:
      'Pagination cursor: `next_page` of the previous response, sent unchanged with the same parameters (otherwise 400 `invalid_cursor`). A value that is not a cursor this service issues (they begin with `eyJ`), such as `cursor_abc123`, reads as the first page.',
    example: 'cursor_abc123',
    maxLength: 1000,
    optional: true,
  });

export const OrgIdFilterField = () =>
  StringField({
    description: 'Only this org (cluster admins only; any other role gets a 403). Without it a cluster admin sees every org.',
    example: 'org_3ZkQ9mW2pL8xYc4RtV7bN1sD',
    maxLength: 40,
    pattern: ID_PATTERN,
    optional: true,
  });

const ARRAY_NOTE = ' Repeated keys, `key[]=` and one comma-separated value are all accepted; a value that holds a comma is sent with `key[]=` or repeated keys, which take each value whole.';

export const UserIdsField = () =>
  StringArrayQueryField({
    description: `Filter by external users (externalUserIds: the user_id of records).${ARRAY_NOTE}`,
    example: ['user_123', 'user_456'],
    maxLength: USER_ID_MAX_LENGTH,
    optional: true,
  });

export const ApiKeyIdsField = () =>
  StringArrayQueryField({ description: `Filter by API key ids.${ARRAY_NOTE}`, example: ['key_abc123'], maxLength: 40, optional: true });

export const ModelsField = () =>
  StringArrayQueryField({
    description: `Filter by model names.${ARRAY_NOTE}`,
    example: ['meetkai:functionary-urdu-mini-pak'],
    maxLength: MODEL_MAX_LENGTH,
    optional: true,
  });

export const ProjectIdsField = () =>
  StringArrayQueryField({ description: `Filter by project ids.${ARRAY_NOTE}`, example: ['proj_search'], maxLength: PROJECT_ID_MAX_LENGTH, optional: true });
