import { HttpClient } from '../harness/http';
import { MODELS, ORGS, TenantKeys } from './traffic';

export interface IssuedKey {
  id: string;
  key: string;
}

export interface Tenancy {
  /** Orgs and their application keys, in the order of {@link ORGS} (what the records reference). */
  tenants: TenantKeys[];
  /** One org_admin key per org: the dashboards' reader. */
  orgAdmins: IssuedKey[];
  /** The gateway's key (role ingest): writes records, calls the budget check. */
  ingest: IssuedKey;
}

/**
 * Creates the tenants through the API as an operator would: five orgs, their application keys
 * (about 50, two of three with a team), an org_admin key each, the gateway's ingest key, and a
 * price for every model in force from `pricedFrom` (Unix seconds).
 */
export async function createTenancy(admin: HttpClient, pricedFrom: number): Promise<Tenancy> {
  const key = (body: Record<string, unknown>) => admin.json<IssuedKey & { team_id: string | null }>('POST', '/api/v1/api-keys', body, { expect: 201 });
  const tenants: TenantKeys[] = [];
  const orgAdmins: IssuedKey[] = [];
  for (const org of ORGS) {
    const { id: orgId } = await admin.json<{ id: string }>('POST', '/api/v1/orgs', { name: org.name }, { expect: 201 });
    const keys = await Promise.all(
      Array.from({ length: org.keys }, (_v, k) =>
        key({ name: `${org.name} app ${k + 1}`, role: 'member', org_id: orgId, ...(k % 3 === 0 ? {} : { team_id: `team-${k % 3}` }) }),
      ),
    );
    tenants.push({ orgId, keys: keys.map((k) => ({ id: k.id, teamId: k.team_id })) });
    orgAdmins.push(await key({ name: `${org.name} admin`, role: 'org_admin', org_id: orgId }));
  }
  const ingest = await key({ name: 'gateway', role: 'ingest' });
  for (const model of MODELS) {
    await admin.json('PUT', `/api/v1/llm/prices/${encodeURIComponent(model.name)}`, {
      input_per_mtok: model.input,
      cached_input_per_mtok: model.cached,
      output_per_mtok: model.output,
      effective_from: pricedFrom,
    });
  }
  return { tenants, orgAdmins, ingest };
}
