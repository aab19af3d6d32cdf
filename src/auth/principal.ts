import { Role } from './role';

/** Who is calling: the resolved API key and the optional X-On-Behalf-Of end user. */
export interface Principal {
  apiKeyId: string;
  orgId: string;
  role: Role;
  teamId: string | null;
  /** The integrator's end user named by X-On-Behalf-Of, or null. */
  onBehalfOf: string | null;
}

export function isClusterAdmin(principal: Principal): boolean {
  return principal.role === Role.ClusterAdmin;
}

/** True when the principal may see objects of `orgId` at all (its own org, or any org for cluster admins). */
export function canSeeOrg(principal: Principal, orgId: string): boolean {
  return principal.role === Role.ClusterAdmin || principal.orgId === orgId;
}
