/** One role per API key (SPEC §2). */
export enum Role {
  ClusterAdmin = 'cluster_admin',
  OrgAdmin = 'org_admin',
  Member = 'member',
  Ingest = 'ingest',
}

export const ALL_ROLES = Object.values(Role);

/** Roles whose keys belong to the system org rather than a tenant. */
export const SYSTEM_ROLES: readonly Role[] = [Role.ClusterAdmin, Role.Ingest];

/** The org that holds cluster-admin and ingest keys; created by the first migration. */
export const SYSTEM_ORG_ID = 'org_system';
