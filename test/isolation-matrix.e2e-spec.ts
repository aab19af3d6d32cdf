import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { record } from './helpers/usage';
import { waitFor } from './helpers/wait-for';

/**
 * Tenant isolation, generated from one table: for every authenticated operation in the live
 * OpenAPI document, every role against its own org's object and another org's, plus no key and
 * a revoked key. An operation without a row fails the completeness test.
 */
type RoleName = 'cluster_admin' | 'org_admin' | 'member' | 'ingest';
const ROLES: RoleName[] = ['cluster_admin', 'org_admin', 'member', 'ingest'];

interface Tenant {
  orgId: string;
  memberKeyId: string;
  keyBudgetId: string;
  /** A logged webhook delivery of this org's key budget. */
  deliveryId: string;
  /** Creates a throwaway key / budget in this org (for destructive operations). */
  freshKeyId(): Promise<string>;
  freshBudgetId(): Promise<string>;
  /** The URL of a new team or end-user budget of this org (set by the cluster admin), for deletes. */
  freshLocalBudgetUrl(kind: 'teams' | 'users'): Promise<string>;
  /** A logged delivery of a new alert whose delivery has ended (redelivery is one sequence per alert at a time). */
  freshDeliveryId(): Promise<string>;
  /** A reservation on this org's member key, made by the cluster admin. */
  freshReservationId(): Promise<string>;
}

/** Expected status for [own org, other org]; one number when the target does not matter. */
type Expect = number | [number, number];

interface Row {
  method: string;
  path: string; // the OpenAPI path, to check coverage
  request(target: Tenant): Promise<{ url: string; body?: unknown }>;
  expect: Record<RoleName, Expect>;
}

const budgetBody = { period: 'monthly', limit_kind: 'cost', limit: 100, thresholds: [{ pct: 80 }] };
const now = Math.floor(Date.now() / 1000);
const same = (url: string, body?: unknown) => async () => ({ url, body });

let otlpSpans = 0;
/** An OTLP/JSON export of one GenAI span of `apiKeyId`. */
const otlpExport = (apiKeyId: string) => ({
  resourceSpans: [
    {
      resource: { attributes: [{ key: 'tally.api_key_id', value: { stringValue: apiKeyId } }] },
      scopeSpans: [
        {
          spans: [
            {
              traceId: 'aa'.repeat(16),
              spanId: (++otlpSpans).toString(16).padStart(16, '0'),
              endTimeUnixNano: `${now}000000000`,
              attributes: [
                { key: 'gen_ai.request.model', value: { stringValue: 'm' } },
                { key: 'gen_ai.usage.input_tokens', value: { intValue: '1' } },
              ],
            },
          ],
        },
      ],
    },
  ],
});

const TABLE: Record<string, Row> = {
  'orgs.create': { method: 'POST', path: '/api/v1/orgs', request: same('/api/v1/orgs', { name: 'New' }), expect: { cluster_admin: 201, org_admin: 403, member: 403, ingest: 403 } },
  'orgs.list': { method: 'GET', path: '/api/v1/orgs', request: same('/api/v1/orgs'), expect: { cluster_admin: 200, org_admin: 403, member: 403, ingest: 403 } },
  'orgs.get': { method: 'GET', path: '/api/v1/orgs/{orgId}', request: async (t) => ({ url: `/api/v1/orgs/${t.orgId}` }), expect: { cluster_admin: [200, 200], org_admin: [200, 404], member: [200, 404], ingest: 403 } },
  'apiKeys.create': {
    method: 'POST',
    path: '/api/v1/api-keys',
    request: async (t) => ({ url: '/api/v1/api-keys', body: { name: 'k', role: 'member', org_id: t.orgId } }),
    expect: { cluster_admin: [201, 201], org_admin: [201, 404], member: 403, ingest: 403 },
  },
  'apiKeys.list': { method: 'GET', path: '/api/v1/api-keys', request: same('/api/v1/api-keys'), expect: { cluster_admin: 200, org_admin: 200, member: 200, ingest: 403 } },
  'apiKeys.get': { method: 'GET', path: '/api/v1/api-keys/{apiKeyId}', request: async (t) => ({ url: `/api/v1/api-keys/${t.memberKeyId}` }), expect: { cluster_admin: [200, 200], org_admin: [200, 404], member: [200, 404], ingest: 403 } },
  'apiKeys.revoke': { method: 'DELETE', path: '/api/v1/api-keys/{apiKeyId}', request: async (t) => ({ url: `/api/v1/api-keys/${await t.freshKeyId()}` }), expect: { cluster_admin: [200, 200], org_admin: [200, 404], member: 403, ingest: 403 } },
  'llm.usage.ingestRecords': {
    method: 'POST',
    path: '/api/v1/llm/usage/records',
    request: async (t) => ({ url: '/api/v1/llm/usage/records', body: { records: [record(t.memberKeyId, { created_at: now })] } }),
    expect: { cluster_admin: [200, 200], org_admin: 403, member: 403, ingest: [200, 200] },
  },
  'llm.usage.completions': {
    method: 'GET',
    path: '/api/v1/llm/usage/completions',
    request: async (t) => ({ url: `/api/v1/llm/usage/completions?start_time=${now - 3600}&org_id=${t.orgId}` }),
    expect: { cluster_admin: [200, 200], org_admin: 403, member: 403, ingest: 403 }, // org_id is for cluster admins only
  },
  'llm.usage.costs': {
    method: 'GET',
    path: '/api/v1/llm/usage/costs',
    request: async () => ({ url: `/api/v1/llm/usage/costs?start_time=${now - 3600}&end_time=${now}` }),
    expect: { cluster_admin: 200, org_admin: 200, member: 200, ingest: 403 },
  },
  'organization.usage.completions': {
    method: 'GET',
    path: '/v1/organization/usage/completions',
    request: async () => ({ url: `/v1/organization/usage/completions?start_time=${now - 3600}` }),
    expect: { cluster_admin: 200, org_admin: 200, member: 200, ingest: 403 },
  },
  'organization.costs': {
    method: 'GET',
    path: '/v1/organization/costs',
    request: async () => ({ url: `/v1/organization/costs?start_time=${now - 86400}` }),
    expect: { cluster_admin: 200, org_admin: 200, member: 200, ingest: 403 },
  },
  'llm.prices.set': {
    method: 'PUT',
    path: '/api/v1/llm/prices/{model}',
    request: same('/api/v1/llm/prices/matrix-model', { input_per_mtok: '1', cached_input_per_mtok: '0.5', output_per_mtok: '2' }),
    expect: { cluster_admin: 200, org_admin: 403, member: 403, ingest: 403 },
  },
  'llm.prices.get': { method: 'GET', path: '/api/v1/llm/prices/{model}', request: same('/api/v1/llm/prices/matrix-model'), expect: { cluster_admin: 200, org_admin: 200, member: 200, ingest: 200 } },
  'llm.prices.list': { method: 'GET', path: '/api/v1/llm/prices', request: same('/api/v1/llm/prices'), expect: { cluster_admin: 200, org_admin: 200, member: 200, ingest: 200 } },
  'llm.budgets.setApiKey': {
    method: 'PUT',
    path: '/api/v1/llm/budgets/apikey/{apiKeyId}',
    request: async (t) => ({ url: `/api/v1/llm/budgets/apikey/${await t.freshKeyId()}`, body: budgetBody }),
    expect: { cluster_admin: [200, 200], org_admin: [200, 404], member: 403, ingest: 403 },
  },
  'llm.budgets.setOrg': {
    method: 'PUT',
    path: '/api/v1/llm/budgets/org/{orgId}',
    request: async (t) => ({ url: `/api/v1/llm/budgets/org/${t.orgId}`, body: budgetBody }),
    expect: { cluster_admin: [200, 200], org_admin: [200, 404], member: 403, ingest: 403 },
  },
  'llm.budgets.setTeam': {
    method: 'PUT',
    path: '/api/v1/llm/budgets/org/{orgId}/teams/{teamId}',
    request: async (t) => ({ url: `/api/v1/llm/budgets/org/${t.orgId}/teams/team-search`, body: budgetBody }),
    expect: { cluster_admin: [200, 200], org_admin: [200, 404], member: 403, ingest: 403 },
  },
  'llm.budgets.setUser': {
    method: 'PUT',
    path: '/api/v1/llm/budgets/org/{orgId}/users/{userId}',
    request: async (t) => ({ url: `/api/v1/llm/budgets/org/${t.orgId}/users/user_123`, body: budgetBody }),
    expect: { cluster_admin: [200, 200], org_admin: [200, 404], member: 403, ingest: 403 },
  },
  'llm.budgets.getTeam': {
    method: 'GET',
    path: '/api/v1/llm/budgets/org/{orgId}/teams/{teamId}',
    request: async (t) => ({ url: `/api/v1/llm/budgets/org/${t.orgId}/teams/team-search` }),
    expect: { cluster_admin: [200, 200], org_admin: [200, 404], member: [404, 404], ingest: 403 },
  },
  'llm.budgets.getUser': {
    method: 'GET',
    path: '/api/v1/llm/budgets/org/{orgId}/users/{userId}',
    request: async (t) => ({ url: `/api/v1/llm/budgets/org/${t.orgId}/users/user_123` }),
    expect: { cluster_admin: [200, 200], org_admin: [200, 404], member: [404, 404], ingest: 403 },
  },
  'llm.budgets.deleteTeam': {
    method: 'DELETE',
    path: '/api/v1/llm/budgets/org/{orgId}/teams/{teamId}',
    request: async (t) => ({ url: await t.freshLocalBudgetUrl('teams') }),
    expect: { cluster_admin: [200, 200], org_admin: [200, 404], member: 403, ingest: 403 },
  },
  'llm.budgets.deleteUser': {
    method: 'DELETE',
    path: '/api/v1/llm/budgets/org/{orgId}/users/{userId}',
    request: async (t) => ({ url: await t.freshLocalBudgetUrl('users') }),
    expect: { cluster_admin: [200, 200], org_admin: [200, 404], member: 403, ingest: 403 },
  },
  'llm.budgets.list': { method: 'GET', path: '/api/v1/llm/budgets', request: same('/api/v1/llm/budgets'), expect: { cluster_admin: 200, org_admin: 200, member: 200, ingest: 403 } },
  'llm.budgets.get': { method: 'GET', path: '/api/v1/llm/budgets/{budgetId}', request: async (t) => ({ url: `/api/v1/llm/budgets/${t.keyBudgetId}` }), expect: { cluster_admin: [200, 200], org_admin: [200, 404], member: [200, 404], ingest: 403 } },
  'llm.budgets.getOrg': { method: 'GET', path: '/api/v1/llm/budgets/org/{orgId}', request: async (t) => ({ url: `/api/v1/llm/budgets/org/${t.orgId}` }), expect: { cluster_admin: [200, 200], org_admin: [200, 404], member: [404, 404], ingest: 403 } },
  'llm.budgets.getApiKey': {
    method: 'GET',
    path: '/api/v1/llm/budgets/apikey/{apiKeyId}',
    request: async (t) => ({ url: `/api/v1/llm/budgets/apikey/${t.memberKeyId}` }),
    expect: { cluster_admin: [200, 200], org_admin: [200, 404], member: [200, 404], ingest: 403 },
  },
  'llm.budgets.delete': { method: 'DELETE', path: '/api/v1/llm/budgets/{budgetId}', request: async (t) => ({ url: `/api/v1/llm/budgets/${await t.freshBudgetId()}` }), expect: { cluster_admin: [200, 200], org_admin: [200, 404], member: 403, ingest: 403 } },
  'llm.budgets.listDeliveries': {
    method: 'GET',
    path: '/api/v1/llm/budgets/{budgetId}/deliveries',
    request: async (t) => ({ url: `/api/v1/llm/budgets/${t.keyBudgetId}/deliveries` }),
    expect: { cluster_admin: [200, 200], org_admin: [200, 404], member: 403, ingest: 403 },
  },
  'llm.budgets.redeliver': {
    method: 'POST',
    path: '/api/v1/llm/budgets/deliveries/{deliveryId}/redeliver',
    request: async (t) => ({ url: `/api/v1/llm/budgets/deliveries/${await t.freshDeliveryId()}/redeliver` }),
    expect: { cluster_admin: [202, 202], org_admin: [202, 404], member: 403, ingest: 403 },
  },
  'llm.usage.otlp.exportTraces': {
    method: 'POST',
    path: '/api/v1/llm/usage/otlp/v1/traces',
    request: async (t) => ({ url: '/api/v1/llm/usage/otlp/v1/traces', body: otlpExport(t.memberKeyId) }),
    expect: { cluster_admin: [200, 200], org_admin: 403, member: 403, ingest: [200, 200] },
  },
  // The forward-auth gate answers for the caller's own key, whatever its role: there is no target.
  'llm.budgets.authorize': {
    method: 'GET',
    path: '/api/v1/llm/budgets/authorize',
    request: same('/api/v1/llm/budgets/authorize'),
    expect: { cluster_admin: 200, org_admin: 200, member: 200, ingest: 200 },
  },
  'llm.budgets.check': {
    method: 'POST',
    path: '/api/v1/llm/budgets/check',
    request: async (t) => ({ url: '/api/v1/llm/budgets/check', body: { api_key_id: t.memberKeyId } }),
    expect: { cluster_admin: [200, 200], org_admin: 403, member: 403, ingest: [200, 200] },
  },
  'llm.budgets.reservations.create': {
    method: 'POST',
    path: '/api/v1/llm/budgets/reservations',
    request: async (t) => ({ url: '/api/v1/llm/budgets/reservations', body: { request_id: `matrix-${Math.random()}`, api_key_id: t.memberKeyId, model: 'matrix-model', input_tokens: 1, max_output_tokens: 1 } }),
    expect: { cluster_admin: [200, 200], org_admin: 403, member: 403, ingest: [200, 200] },
  },
  'llm.budgets.reservations.get': {
    method: 'GET',
    path: '/api/v1/llm/budgets/reservations/{reservationId}',
    request: async (t) => ({ url: `/api/v1/llm/budgets/reservations/${await t.freshReservationId()}` }),
    expect: { cluster_admin: [200, 200], org_admin: 403, member: 403, ingest: [200, 200] },
  },
  'llm.budgets.reservations.release': {
    method: 'POST',
    path: '/api/v1/llm/budgets/reservations/{reservationId}/release',
    request: async (t) => ({ url: `/api/v1/llm/budgets/reservations/${await t.freshReservationId()}/release` }),
    expect: { cluster_admin: [200, 200], org_admin: 403, member: 403, ingest: [200, 200] },
  },
};

describe('tenant isolation matrix', () => {
  let t: TestApp;
  const keys = {} as Record<RoleName, string>;
  const revoked = {} as Record<RoleName, string>;
  let own: Tenant;
  let other: Tenant;
  let ingestKey: string;

  async function tenant(name: string): Promise<{ tenant: Tenant; orgAdmin: string; member: string; make: (role: string) => Promise<{ id: string; key: string }> }> {
    const seeded = await seedOrg(t, name);
    // A key budget whose webhook goes to a closed loopback port, crossed at once: its one attempt
    // (WEBHOOK_MAX_ATTEMPTS=1) is logged and its alert fails.
    const loggedDelivery = async (keyId: string) => {
      const budget = await t.put(`/api/v1/llm/budgets/apikey/${keyId}`, { ...budgetBody, webhook_url: 'http://127.0.0.1:9/hook' });
      await t.post('/api/v1/llm/usage/records', { records: [record(keyId, { created_at: now, cost_nano: '90000000000' })] }, { key: ingestKey });
      const [delivery] = await waitFor(async () => {
        const rows: Array<{ id: string }> = await t.dataSource.query(
          `SELECT d.id FROM webhook_deliveries d JOIN alerts a ON a.id = d.alert_id WHERE d.budget_id = $1 AND a.state <> 'pending' LIMIT 1`,
          [budget.body.id],
        );
        return rows.length > 0 ? rows : null;
      }, 'a logged delivery');
      return { budgetId: budget.body.id as string, deliveryId: delivery.id };
    };
    const first = await loggedDelivery(seeded.member.id);
    return {
      orgAdmin: seeded.orgAdmin.key,
      member: seeded.member.key,
      make: seeded.make,
      tenant: {
        orgId: seeded.org.id,
        memberKeyId: seeded.member.id,
        keyBudgetId: first.budgetId,
        deliveryId: first.deliveryId,
        freshKeyId: async () => (await seeded.make('member')).id,
        freshBudgetId: async () => {
          const key = await seeded.make('member');
          return (await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, budgetBody)).body.id;
        },
        freshLocalBudgetUrl: async (kind) => {
          const url = `/api/v1/llm/budgets/org/${seeded.org.id}/${kind}/fresh-${Math.random().toString(36).slice(2)}`;
          const res = await t.put(url, budgetBody);
          if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
          return url;
        },
        freshDeliveryId: async () => (await loggedDelivery((await seeded.make('member')).id)).deliveryId,
        freshReservationId: async () =>
          (
            await t.post('/api/v1/llm/budgets/reservations', {
              request_id: `matrix-${Math.random()}`,
              api_key_id: seeded.member.id,
              model: 'matrix-model',
              input_tokens: 1,
              max_output_tokens: 1,
            })
          ).body.id,
      },
    };
  }

  beforeAll(async () => {
    t = await startTestApp({ WEBHOOK_MAX_ATTEMPTS: '1' });
    ingestKey = (await createSystemKey(t, 'ingest')).key;
    await t.put('/api/v1/llm/prices/matrix-model', { input_per_mtok: '1', cached_input_per_mtok: '0.5', output_per_mtok: '2' });
    const a = await tenant('Own');
    const b = await tenant('Other');
    own = a.tenant;
    other = b.tenant;
    keys.cluster_admin = t.adminKey;
    keys.org_admin = a.orgAdmin;
    keys.member = a.member;
    keys.ingest = ingestKey;
    for (const role of ROLES) {
      const created = role === 'org_admin' || role === 'member' ? await a.make(role) : await createSystemKey(t, role);
      await t.delete(`/api/v1/api-keys/${created.id}`);
      revoked[role] = created.key;
    }
  });
  afterAll(() => t.close());

  it('has a row for every authenticated operation of the API', async () => {
    const doc = (await t.get('/docs-json', { key: null })).body;
    const operations: string[] = [];
    for (const [path, item] of Object.entries<Record<string, any>>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        if (!op.security?.length) continue; // public routes
        operations.push(op.operationId);
        expect({ op: op.operationId, method: TABLE[op.operationId]?.method, path: TABLE[op.operationId]?.path }).toEqual({ op: op.operationId, method: method.toUpperCase(), path });
      }
    }
    expect(Object.keys(TABLE).sort()).toEqual(operations.sort());
  });

  const cells: Array<[string, RoleName, 'own' | 'other']> = [];
  for (const [op, row] of Object.entries(TABLE)) {
    for (const role of ROLES) {
      cells.push([op, role, 'own']);
      if (Array.isArray(row.expect[role])) cells.push([op, role, 'other']);
    }
  }

  it.each(cells)('%s as %s on its %s org', async (op, role, target) => {
    const row = TABLE[op];
    const { url, body } = await row.request(target === 'own' ? own : other);
    const res = await t.request(row.method, url, body, { key: keys[role] });
    const expected = row.expect[role];
    const status = Array.isArray(expected) ? expected[target === 'own' ? 0 : 1] : expected;
    expect({ status: res.status, text: res.status === status ? '' : res.text }).toEqual({ status, text: '' });
    if (status >= 400) expect(Object.keys(res.body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  });

  it.each(Object.keys(TABLE))('%s without a key or with a revoked key is 401', async (op) => {
    const row = TABLE[op];
    const { url, body } = await row.request(own);
    expect((await t.request(row.method, url, body, { key: null })).status).toBe(401);
    for (const role of ROLES) {
      expect({ role, status: (await t.request(row.method, url, body, { key: revoked[role] })).status }).toEqual({ role, status: 401 });
    }
  });
});
