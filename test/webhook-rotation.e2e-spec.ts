import { randomBytes } from 'node:crypto';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { monthlyBudget, spend } from './helpers/alerts';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { startReceiver, WebhookReceiver } from './helpers/webhook-receiver';
import { waitFor } from './helpers/wait-for';

const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;

describe('webhook secret rotation without a gap (SPEC §5)', () => {
  let t: TestApp;
  let ingestKey: string;
  let hook: WebhookReceiver;

  beforeAll(async () => {
    t = await startTestApp({ ALERT_EVALUATION_INTERVAL_MS: '3600000', WEBHOOK_RETRY_BASE_MS: '50' });
    ingestKey = (await createSystemKey(t, 'ingest')).key;
    hook = await startReceiver();
  });
  afterAll(async () => {
    await hook.close();
    await t.close();
  });

  const thresholds = [10, 20, 30].map((pct) => ({ pct, action: 'alert' }));

  it('signs with the new and the old secret for 24 h after a change, then with the new one only', async () => {
    const { member } = await seedOrg(t, `rotation-${Math.random()}`);
    const oldSecret = newSecret();
    const secret = newSecret();
    const put = (webhook_secret?: string) =>
      t.put(`/api/v1/llm/budgets/apikey/${member.id}`, monthlyBudget(1, { webhook_url: hook.url, thresholds, ...(webhook_secret ? { webhook_secret } : {}) }));
    expect((await put(oldSecret)).status).toBe(200);
    const mine = () => hook.requests.filter((r) => JSON.parse(r.body).data.budget.scope_id === member.id);

    // Before any change: one signature.
    await spend(t, ingestKey, member.id, 150_000_000n); // 15 %
    await waitFor(() => mine().length === 1, 'the first webhook');
    expect(mine()[0].headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/=]+$/);
    expect(() => new Webhook(oldSecret).verify(mine()[0].body, mine()[0].headers)).not.toThrow();

    // The secret changes: two signatures, the new first, and the library verifies with either secret.
    const changed = await put(secret);
    expect(changed.status).toBe(200);
    expect(JSON.stringify(changed.body)).not.toContain(oldSecret);
    expect(JSON.stringify(changed.body)).not.toContain(secret);
    const [{ expires }] = await t.dataSource.query(
      `SELECT extract(epoch FROM webhook_previous_secret_expires_at - updated_at)::int AS expires FROM budgets WHERE scope_id = $1`,
      [member.id],
    );
    expect(Math.abs(expires - 86_400)).toBeLessThanOrEqual(2);
    // Setting the same secret again keeps the rotation as it is (it does not start another).
    expect((await put(secret)).status).toBe(200);
    await spend(t, ingestKey, member.id, 100_000_000n); // 25 %
    await waitFor(() => mine().length === 2, 'the webhook during rotation');
    const during = mine()[1];
    const signatures = during.headers['webhook-signature'].split(' ');
    expect(signatures).toHaveLength(2);
    expect(() => new Webhook(secret).verify(during.body, during.headers)).not.toThrow();
    expect(() => new Webhook(oldSecret).verify(during.body, during.headers)).not.toThrow();
    expect(() => new Webhook(newSecret()).verify(during.body, during.headers)).toThrow(WebhookVerificationError);
    // New first: the first signature alone verifies with the new secret, the second alone with the old.
    expect(() => new Webhook(secret).verify(during.body, { ...during.headers, 'webhook-signature': signatures[0] })).not.toThrow();
    expect(() => new Webhook(oldSecret).verify(during.body, { ...during.headers, 'webhook-signature': signatures[1] })).not.toThrow();

    // 24 h later (the stored expiry moved into the past): the new secret only.
    await t.dataSource.query(`UPDATE budgets SET webhook_previous_secret_expires_at = now() - interval '1 second' WHERE scope_id = $1`, [member.id]);
    await spend(t, ingestKey, member.id, 100_000_000n); // 35 %
    await waitFor(() => mine().length === 3, 'the webhook after rotation');
    const after = mine()[2];
    expect(after.headers['webhook-signature'].split(' ')).toHaveLength(1);
    expect(() => new Webhook(secret).verify(after.body, after.headers)).not.toThrow();
    expect(() => new Webhook(oldSecret).verify(after.body, after.headers)).toThrow(WebhookVerificationError);
    expect(t.logs.join('\n')).not.toContain(oldSecret.slice(6));
    expect(t.logs.join('\n')).not.toContain(secret.slice(6));
  });

  it('removing the webhook URL ends any rotation; a first secret starts none', async () => {
    const { member } = await seedOrg(t, `rotation-end-${Math.random()}`);
    const url = `/api/v1/llm/budgets/apikey/${member.id}`;
    expect((await t.put(url, monthlyBudget(1, { webhook_url: hook.url, webhook_secret: newSecret() }))).status).toBe(200);
    const row = async () =>
      (await t.dataSource.query(`SELECT webhook_previous_secret_sealed IS NOT NULL AS previous, webhook_previous_secret_expires_at AS expires FROM budgets WHERE scope_id = $1`, [member.id]))[0];
    expect(await row()).toEqual({ previous: false, expires: null });
    expect((await t.put(url, monthlyBudget(1, { webhook_url: hook.url, webhook_secret: newSecret() }))).status).toBe(200);
    expect((await row()).previous).toBe(true);
    expect((await t.put(url, monthlyBudget(1))).status).toBe(200);
    expect(await row()).toEqual({ previous: false, expires: null });
  });
});
