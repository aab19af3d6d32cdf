import { Principal } from '../auth/principal';
import { Role } from '../auth/role';
import { AppException } from '../common/errors';
import { UsageFilter } from './usage-aggregator';

interface FilterParams {
  org_id?: string;
  api_key_ids?: string[];
  user_ids?: string[];
  models?: string[];
  project_ids?: string[];
  batch?: boolean;
}

/**
 * The records a principal may read, narrowed by the query's filters. Cluster admins: every org,
 * or one with `org_id`; org admins: their org; members: their own key. X-On-Behalf-Of narrows any
 * role to that end user's records. `org_id` from anyone but a cluster admin is a 403.
 */
export function usageFilter(principal: Principal, params: FilterParams): UsageFilter {
  const clusterAdmin = principal.role === Role.ClusterAdmin;
  if (params.org_id !== undefined && !clusterAdmin) throw AppException.forbidden('Only cluster admins may filter by org_id');
  const anyOf: UsageFilter['anyOf'] = [];
  const add = (dimension: UsageFilter['anyOf'][number]['dimension'], values: string[] | undefined) => {
    if (values !== undefined) anyOf.push({ dimension, values });
  };
  add('api_key_id', params.api_key_ids);
  add('user_id', params.user_ids);
  add('model', params.models);
  add('project_id', params.project_ids);
  if (principal.role === Role.Member) add('api_key_id', [principal.apiKeyId]);
  if (principal.onBehalfOf !== null) add('user_id', [principal.onBehalfOf]);
  return { orgId: clusterAdmin ? params.org_id : principal.orgId, anyOf, batch: params.batch };
}
