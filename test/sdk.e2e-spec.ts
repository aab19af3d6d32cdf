import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import type * as Sdk from './.generated/sdk';
import type * as SdkClient from './.generated/sdk/client';
import { startTestApp, TestApp } from './helpers/test-app';
import { HOUR, T0 } from './helpers/usage';

/**
 * The integrator's path: a TypeScript client generated from the checked-in openapi.yaml by
 * @hey-api/openapi-ts (regenerated on every run, into the git-ignored test/.generated/sdk) drives
 * the main flows against the real app. No hand-written HTTP: if a call or a type is wrong here,
 * the fix belongs in the decorators that produce openapi.yaml. `npm run typecheck` compiles this
 * file against the generated types.
 */
const ROOT = resolve(__dirname, '..');
const SDK_DIR = resolve(__dirname, '.generated', 'sdk');

/** The successful body of an SDK call; a non-2xx answer fails with its status and error body. */
async function ok<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok || data === undefined) throw new Error(`${response.status} ${JSON.stringify(error)}`);
  return data;
}

/** The status and typed error body of an SDK call that must fail. */
async function failure<E>(call: Promise<{ error?: E; response: Response }>): Promise<{ status: number; error: E | undefined }> {
  const { error, response } = await call;
  return { status: response.status, error };
}

describe('generated TypeScript SDK round trip (@hey-api/openapi-ts from openapi.yaml)', () => {
  let t: TestApp;
  let sdk: typeof Sdk;
  let client: typeof SdkClient;
  /** A Tally SDK for one API key: the key goes to the bearer scheme only (X-On-Behalf-Of is per call). */
  let as: (key: string) => Sdk.Tally;

  beforeAll(async () => {
    execFileSync(process.execPath, [resolve(ROOT, 'scripts', 'generate-sdk.mjs'), SDK_DIR], { cwd: ROOT, stdio: 'pipe' });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    sdk = require(SDK_DIR) as typeof Sdk;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    client = require(resolve(SDK_DIR, 'client')) as typeof SdkClient;
    t = await startTestApp();
    as = (key) =>
      new sdk.Tally({ client: client.createClient({ baseUrl: t.baseUrl, auth: (scheme) => (scheme.scheme === 'bearer' ? key : undefined) }) });
  });
  afterAll(() => t?.close());

  const PRICED = 'meetkai:functionary-urdu-mini-pak';
  const UNPRICED = 'meetkai:unpriced-preview';

  it('creates an org and keys, ingests, reads usage and costs, sets and reads budgets, and runs the check', async () => {
    const admin = as(t.adminKey);

    // Org and keys.
    const org = await ok(admin.orgs.create({ createOrgRequest: { name: 'Acme' } }));
    expect(org).toEqual({ id: expect.stringMatching(/^org_/), name: 'Acme', created_at: expect.any(Number) });
    const orgAdminKey = await ok(admin.apiKeys.create({ createApiKeyRequest: { name: 'acme-admin', role: 'org_admin', org_id: org.id } }));
    expect(orgAdminKey).toMatchObject({ org_id: org.id, role: 'org_admin', key: expect.stringMatching(/^mk-/), revoked_at: null });
    const acme = as(orgAdminKey.key);
    const memberKey = await ok(acme.apiKeys.create({ createApiKeyRequest: { name: 'acme-search', role: 'member', team_id: 'team-search' } }));
    expect(memberKey).toMatchObject({ org_id: org.id, role: 'member', team_id: 'team-search' });
    const member = as(memberKey.key);
    const ingestKey = await ok(admin.apiKeys.create({ createApiKeyRequest: { name: 'gateway', role: 'ingest' } }));
    const gateway = as(ingestKey.key);
    expect((await ok(acme.apiKeys.list())).data.map((k) => k.id).sort()).toEqual([orgAdminKey.id, memberKey.id].sort());

    // Price book, then records: priced at ingest, given a cost, or unpriced.
    const price = await ok(
      admin.llm.prices.set({
        model: PRICED,
        setPriceRequest: { input_per_mtok: '2.50', cached_input_per_mtok: '1.25', output_per_mtok: '10.00', effective_from: T0 },
      }),
    );
    expect(price).toMatchObject({ object: 'llm.price', model: PRICED, input_per_mtok: '2.5', output_per_mtok: '10' });
    const records: Sdk.CompletionRecord[] = [
      // (1000 × 2.50 + 200 × 1.25 + 300 × 10.00) / 1e6 = 0.00575 → 5,750,000 nano
      { id: 'chatcmpl-1', api_key_id: memberKey.id, model: PRICED, input_tokens: 1200, input_cached_tokens: 200, output_tokens: 300, user_id: 'user_1', created_at: T0 + 60 },
      { id: 'chatcmpl-2', api_key_id: memberKey.id, model: PRICED, input_tokens: 800, output_tokens: 120, cost_nano: '5250000', user_id: 'user_2', created_at: T0 + HOUR + 5 },
      { id: 'chatcmpl-3', api_key_id: orgAdminKey.id, model: UNPRICED, input_tokens: 50, output_tokens: 5, batch: true, created_at: T0 + HOUR + 30 },
    ];
    expect(await ok(gateway.llm.usage.ingestRecords({ ingestRecordsRequest: { records } }))).toEqual({
      object: 'usage.records.ingest',
      accepted: 3,
      duplicates: 0,
    });
    expect(await ok(gateway.llm.usage.ingestRecords({ ingestRecordsRequest: { records } }))).toMatchObject({ accepted: 0, duplicates: 3 });

    // Usage report: hourly buckets grouped by model, and the member's view on behalf of one user.
    const usage = await ok(
      acme.llm.usage.completions({ start_time: T0, end_time: T0 + 2 * HOUR, bucket_width: '1h', group_by: ['model'] }),
    );
    expect(usage.has_more).toBe(false);
    expect(usage.data.map((b) => [b.start_time, b.results.map((r) => [r.model, r.num_model_requests, r.input_tokens, r.output_tokens])])).toEqual([
      [T0, [[PRICED, 1, 1200, 300]]],
      [T0 + HOUR, expect.arrayContaining([[PRICED, 1, 800, 120], [UNPRICED, 1, 50, 5]])],
    ]);
    const onBehalf = await ok(member.llm.usage.completions({ 'X-On-Behalf-Of': 'user_2', start_time: T0, end_time: T0 + 2 * HOUR, bucket_width: '1d' }));
    expect(onBehalf.data[0].results).toEqual([expect.objectContaining({ input_tokens: 800, output_tokens: 120, num_model_requests: 1, user_id: null })]);

    // Cost report: exact nano totals, the unpriced model listed.
    const costs = await ok(acme.llm.usage.costs({ start_time: T0, end_time: T0 + 2 * HOUR, group_by: ['model'] }));
    expect(costs).toMatchObject({ total_cost_nano: '11000000', total_cost: 0.011, unpriced_models: [UNPRICED] });
    expect(costs.data).toEqual([
      expect.objectContaining({ model: PRICED, cost_nano: '11000000' }),
      expect.objectContaining({ model: UNPRICED, cost_nano: '0' }),
    ]);
    // The OpenAI-compatible alias, through the same client.
    const openAi = await ok(acme.organization.costs({ start_time: T0, end_time: T0 + 86400, group_by: ['line_item'] }));
    expect(openAi.data[0].results).toEqual(
      expect.arrayContaining([expect.objectContaining({ line_item: PRICED, amount: { value: 0.011, currency: costs.currency } })]),
    );

    // Budgets on live spend: 1,500 tokens this month on the member's key.
    const now = Math.floor(Date.now() / 1000);
    const monthStart = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1) / 1000;
    const live = { id: 'chatcmpl-live', api_key_id: memberKey.id, model: PRICED, input_tokens: 1000, output_tokens: 500, created_at: Math.max(monthStart, now - 5) };
    await ok(gateway.llm.usage.ingestRecords({ ingestRecordsRequest: { records: [live] } }));
    const thresholds: Sdk.BudgetThreshold[] = [{ pct: 80 }, { pct: 100, action: 'block' }];
    const roomy = await ok(
      acme.llm.budgets.setApiKey({ apiKeyId: memberKey.id, setBudgetRequest: { period: 'monthly', limit_kind: 'tokens', limit: 10000, thresholds } }),
    );
    expect(roomy).toMatchObject({
      object: 'llm.budget',
      scope: 'apikey',
      scope_id: memberKey.id,
      owner: 'org',
      thresholds: [{ pct: 80, action: 'alert' }, { pct: 100, action: 'block' }],
      alert_webhook_url: null,
      spend: { tokens_spent: '1500', pct: 15 },
    });
    expect(await ok(gateway.llm.budgets.check({ budgetCheckRequest: { api_key_id: memberKey.id } }))).toEqual({ allowed: true, blocked_by: [] });

    const tight = await ok(
      acme.llm.budgets.setApiKey({ apiKeyId: memberKey.id, setBudgetRequest: { period: 'monthly', limit_kind: 'tokens', limit: 1000, thresholds } }),
    );
    expect(tight.id).toBe(roomy.id);
    expect(tight.spend.pct).toBe(150);
    const blocked = await ok(gateway.llm.budgets.check({ budgetCheckRequest: { api_key_id: memberKey.id } }));
    expect(blocked).toEqual({
      allowed: false,
      blocked_by: [{ budget_id: tight.id, scope: 'apikey', owner: 'org', pct: 150, resets_at: tight.spend.resets_at }],
    });

    // The member reads its own key's budgets; the org admin lists them; get by id.
    const mine = await ok(member.llm.budgets.getApiKey({ apiKeyId: memberKey.id }));
    expect(mine.data.map((b) => [b.id, b.limit, b.spend.tokens_spent])).toEqual([[tight.id, 1000, '1500']]);
    expect((await ok(acme.llm.budgets.list({ scope: 'apikey' }))).data.map((b) => b.id)).toEqual([tight.id]);
    // The forecast moves with the clock (the window's average rate so far), so it is compared by type.
    expect(await ok(acme.llm.budgets.get({ budgetId: tight.id }))).toEqual({
      ...tight,
      updated_at: expect.any(Number),
      spend: { ...tight.spend, forecast_exhaustion_at: expect.any(Number) },
    });

    // Deleting the budget lifts the block at once.
    expect(await ok(acme.llm.budgets.delete({ budgetId: tight.id }))).toEqual({ id: tight.id, object: 'llm.budget.deleted', deleted: true });
    expect(await ok(gateway.llm.budgets.check({ budgetCheckRequest: { api_key_id: memberKey.id } }))).toEqual({ allowed: true, blocked_by: [] });
  });

  it('returns the documented error bodies as typed errors', async () => {
    const admin = as(t.adminKey);
    const org = await ok(admin.orgs.create({ createOrgRequest: { name: 'Globex' } }));
    const globexAdmin = await ok(admin.apiKeys.create({ createApiKeyRequest: { name: 'globex-admin', role: 'org_admin', org_id: org.id } }));
    const member = await ok(admin.apiKeys.create({ createApiKeyRequest: { name: 'globex-member', role: 'member', org_id: org.id } }));
    const other = await ok(admin.orgs.create({ createOrgRequest: { name: 'Initech' } }));

    // 400 naming the bad field, 403 for the role, 404 for another tenant's object, 401 once revoked.
    const invalid = await failure(
      as(globexAdmin.key).llm.budgets.setOrg({ orgId: org.id, setBudgetRequest: { period: 'weekly', limit_kind: 'cost', limit: 10, thresholds: [{ pct: 2000000000 }] } }),
    );
    expect(invalid).toMatchObject({ status: 400, error: { error: { code: 'validation_failed', param: 'thresholds[0].pct' } } });
    const forbidden = await failure(
      as(member.key).llm.budgets.setApiKey({ apiKeyId: member.id, setBudgetRequest: { period: 'daily', limit_kind: 'cost', limit: 1, thresholds: [{ pct: 50 }] } }),
    );
    expect(forbidden).toMatchObject({ status: 403, error: { error: { type: 'permission_error', code: 'forbidden' } } });
    const hidden = await failure(as(globexAdmin.key).orgs.get({ orgId: other.id }));
    expect(hidden).toMatchObject({ status: 404, error: { error: { code: 'not_found' } } });
    await ok(as(globexAdmin.key).apiKeys.revoke({ apiKeyId: member.id }));
    expect(await failure(as(member.key).apiKeys.get({ apiKeyId: member.id }))).toMatchObject({
      status: 401,
      error: { error: { code: 'invalid_api_key' } },
    });
  });

  it('refuses a client that sends its key for every security scheme (also as X-On-Behalf-Of) with a clear 400', async () => {
    const naive = new sdk.Tally({ client: client.createClient({ baseUrl: t.baseUrl, auth: t.adminKey }) });
    const result = await failure(naive.orgs.list());
    expect(result).toMatchObject({ status: 400, error: { error: { code: 'invalid_on_behalf_of', param: 'X-On-Behalf-Of' } } });
  });
});
