import { monthlyBudget, spend } from './helpers/alerts';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { waitFor } from './helpers/wait-for';
import { startReceiver, WebhookReceiver } from './helpers/webhook-receiver';

/** A full flow at the most verbose log level, then the whole log output is searched for every secret it used. */
describe('secrets never reach the logs', () => {
  let t: TestApp;
  let hook: WebhookReceiver;
  beforeAll(async () => {
    t = await startTestApp({ LOG_LEVEL: 'trace', ALERT_EVALUATION_INTERVAL_MS: '200', WEBHOOK_RETRY_BASE_MS: '50' });
    hook = await startReceiver({ replies: [500] }); // one failed attempt, logged, then success
  });
  afterAll(async () => {
    await hook.close();
    await t.close();
  });

  it('logs the requests, alerts and deliveries, and none of the keys or webhook secrets', async () => {
    const org = await seedOrg(t, 'Secretive');
    const ingestKey = await createSystemKey(t, 'ingest');
    const chosen = 'my-very-own-webhook-secret-value';
    const generated = await t.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, monthlyBudget(1, { webhook_url: hook.url }), { key: org.orgAdmin.key });
    const own = await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, monthlyBudget(1, { webhook_url: hook.url, webhook_secret: chosen }));
    expect([generated.status, own.status]).toEqual([200, 200]);
    await spend(t, ingestKey.key, org.member.id, 2_000_000_000n);
    await t.get('/api/v1/llm/usage/completions?start_time=1704067200', { key: org.member.key, headers: { 'x-on-behalf-of': 'user_123' } });
    await t.get('/api/v1/api-keys', { key: 'mk-' + 'W'.repeat(40) }); // a failed authentication
    await t.delete(`/api/v1/api-keys/${org.member.id}`, { key: org.orgAdmin.key });
    await t.get('/api/v1/api-keys', { key: org.member.key }); // a revoked key
    await waitFor(() => new Set(hook.requests.map((r) => r.headers['webhook-id'])).size >= 2 && hook.requests.length >= 3, 'both alerts delivered after a retry');

    const log = t.logs.join('');
    expect(log).toContain('"route":"/api/v1/llm/usage/records"');
    expect(log.length).toBeGreaterThan(10_000);
    const secrets = [
      t.adminKey,
      org.orgAdmin.key,
      org.member.key,
      ingestKey.key,
      'mk-' + 'W'.repeat(40),
      chosen,
      generated.body.webhook_secret,
      generated.body.webhook_secret.slice('whsec_'.length),
      t.config.secretsKey!.toString('hex'),
      t.config.secretsKey!.toString('base64'),
    ];
    for (const secret of secrets) expect({ secret, logged: log.includes(secret) }).toEqual({ secret, logged: false });
    expect(log).not.toMatch(/bearer mk-/i);
    expect(log).not.toMatch(/webhook-signature/i);
  });
});
