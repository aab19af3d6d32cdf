import { Client } from 'pg';
import { maskUrl } from '../src/common/masked-url';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { budgetWindow, formatWindow } from '../src/budgets/budget-window';
import { alertRows, monthlyBudget, settle, spend } from './helpers/alerts';
import { createTestDatabase } from './helpers/test-database';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { freePort, startReceiver, WebhookReceiver } from './helpers/webhook-receiver';
import { waitFor } from './helpers/wait-for';

const FAST_RETRIES = { WEBHOOK_TIMEOUT_MS: '500', WEBHOOK_RETRY_BASE_MS: '50' };

describe('threshold alerts (SPEC §5)', () => {
  let t: TestApp;
  let ingestKey: string;
  const receivers: WebhookReceiver[] = [];
  const receiver = async (replies: Parameters<typeof startReceiver>[0] = {}) => {
    const r = await startReceiver(replies);
    receivers.push(r);
    return r;
  };
  const deliveries = async (budgetId: string, key?: string) => {
    const res = await t.get(`/api/v1/llm/budgets/${budgetId}/deliveries?limit=100`, key ? { key } : {});
    if (res.status !== 200) throw new Error(`deliveries: ${res.status} ${res.text}`);
    return res.body.data as Array<Record<string, any>>;
  };
  /** An org with a key and a budget on that key posting to `url`. */
  const budgetOn = async (url: string, body: Record<string, unknown> = {}) => {
    const org = await seedOrg(t, `Org ${Math.random()}`);
    const key = await org.make('member');
    const res = await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, monthlyBudget(1, { webhook_url: url, ...body }));
    if (res.status !== 200) throw new Error(`budget: ${res.status} ${res.text}`);
    return { org, key, budget: res.body, secret: res.body.webhook_secret as string | undefined };
  };

  beforeAll(async () => {
    // Evaluate-all runs hourly here: what alerts in these tests is the evaluation that ingest or a budget change enqueues.
    t = await startTestApp({ ...FAST_RETRIES, ALERT_EVALUATION_INTERVAL_MS: '3600000' });
    ingestKey = (await createSystemKey(t, 'ingest')).key;
  });
  afterAll(async () => {
    for (const r of receivers) await r.close();
    await t.close();
  });

  it('ingest that crosses a threshold sends one signed webhook that standardwebhooks verifies', async () => {
    const hook = await receiver();
    const { key, budget, secret } = await budgetOn(hook.url, { thresholds: [{ pct: 50, action: 'alert' }] });
    expect(secret).toMatch(/^whsec_/);
    await spend(t, ingestKey, key.id, 400_000_000n); // 40 %: nothing yet
    await spend(t, ingestKey, key.id, 200_000_000n); // 60 %
    await waitFor(() => hook.requests.length === 1, 'the webhook');

    const [req] = hook.requests;
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/hooks/tally');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers['user-agent']).toBe('Tally-Webhooks/1');
    expect(req.headers['webhook-id']).toMatch(/^alrt_[A-Za-z0-9]{24}$/);
    expect(req.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    const payload = new Webhook(secret!).verify(req.body, req.headers) as any;
    const window = formatWindow(budgetWindow('monthly', new Date()));
    expect(payload).toEqual({
      id: req.headers['webhook-id'],
      type: 'budget.threshold.crossed',
      created_at: expect.any(Number),
      data: {
        budget: {
          ...budget,
          webhook_secret: undefined,
          // Cut to scheme://host/… in a webhook body (a retry after a URL change goes to the new receiver).
          alert_webhook_url: maskUrl(budget.alert_webhook_url),
          spend: { ...budget.spend, cost_spent_nano: '600000000', cost_spent: 0.6, tokens_spent: '4', pct: 60, forecast_exhaustion_at: expect.any(Number) },
        },
        threshold: { pct: 50, action: 'alert' },
        window,
      },
    });
    expect(JSON.stringify(payload.data.budget)).not.toContain('webhook_secret');
    expect(Math.abs(payload.created_at - Number(req.headers['webhook-timestamp']))).toBeLessThan(60);

    // A tampered body or timestamp is rejected.
    const tamperedBody = req.body.replace('"pct":60', '"pct":6');
    expect(tamperedBody).not.toBe(req.body);
    expect(() => new Webhook(secret!).verify(tamperedBody, req.headers)).toThrow(WebhookVerificationError);
    const laterTimestamp = { ...req.headers, 'webhook-timestamp': String(Number(req.headers['webhook-timestamp']) + 1) };
    expect(() => new Webhook(secret!).verify(req.body, laterTimestamp)).toThrow(WebhookVerificationError);
    const otherSecret = `whsec_${Buffer.from('another secret of 32 bytes......').toString('base64')}`;
    expect(() => new Webhook(otherSecret).verify(req.body, req.headers)).toThrow(WebhookVerificationError);

    // More spend in the same window and repeated evaluations alert no more.
    await spend(t, ingestKey, key.id, 100_000_000n);
    await settle([t.app]);
    expect(hook.requests).toHaveLength(1);
    expect((await alertRows(t, budget.id)).map((a) => [a.id, a.threshold_pct, a.state])).toEqual([[req.headers['webhook-id'], '50.000000', 'delivered']]);
    expect(await deliveries(budget.id)).toEqual([
      {
        id: expect.stringMatching(/^dlv_/),
        object: 'llm.budget.webhook_delivery',
        budget_id: budget.id,
        alert_id: req.headers['webhook-id'],
        event_type: 'budget.threshold.crossed',
        threshold: { pct: 50, action: 'alert' },
        window,
        trigger: 'alert',
        attempt: 1,
        status: 'succeeded',
        status_code: 200,
        error: null,
        latency_ms: expect.any(Number),
        url: hook.url,
        attempted_at: Number(req.headers['webhook-timestamp']),
        next_retry_at: null,
        created_at: expect.any(Number),
      },
    ]);
  });

  it('retries after a 500 and a timeout, with the same webhook-id and body, and logs every attempt', async () => {
    const hook = await receiver({ replies: [500, 'hang'] });
    const secret = 'a plain secret, used as its UTF-8 bytes: ünïcode';
    const { key, budget } = await budgetOn(hook.url, { webhook_secret: secret });
    await spend(t, ingestKey, key.id, 500_000_000n);
    await waitFor(() => hook.requests.length === 3, 'three attempts');
    const ids = new Set(hook.requests.map((r) => r.headers['webhook-id']));
    expect(ids.size).toBe(1);
    expect(new Set(hook.requests.map((r) => r.body)).size).toBe(1);
    for (const r of hook.requests) expect(new Webhook(Buffer.from(secret, 'utf8'), { format: 'raw' }).verify(r.body, r.headers)).toMatchObject({ id: [...ids][0] });

    const log = await waitFor(async () => {
      const rows = await deliveries(budget.id);
      return rows.length === 3 && rows[0].status === 'succeeded' ? rows : null;
    }, 'the third attempt to be logged');
    expect(log.map((d) => [d.attempt, d.status, d.status_code, d.error])).toEqual([
      [3, 'succeeded', 200, null],
      [2, 'failed', null, 'timed out after 500 ms'],
      [1, 'failed', 500, 'HTTP 500'],
    ]);
    expect(log.every((d) => d.alert_id === [...ids][0] && d.trigger === 'alert')).toBe(true);
    expect(log[1].next_retry_at).toEqual(expect.any(Number));
    expect(log[2].next_retry_at).toEqual(expect.any(Number));
    expect(log[1].latency_ms).toBeGreaterThanOrEqual(500);
    expect((await alertRows(t, budget.id))[0].state).toBe('delivered');
    // The failed attempts were logged, without the secret or the URL.
    const logs = t.logs.join('');
    expect(logs).toContain('Webhook delivery attempt failed');
    expect(logs).not.toContain('a plain secret');
    expect(logs).not.toContain(hook.url);
  });

  it('retries while the connection is refused and delivers once the receiver is up', async () => {
    const port = await freePort();
    const { key, budget } = await budgetOn(`http://127.0.0.1:${port}/hooks/tally`);
    await spend(t, ingestKey, key.id, 700_000_000n);
    const failed = await waitFor(async () => {
      const rows = await deliveries(budget.id);
      return rows.length >= 2 ? rows : null;
    }, 'two refused attempts');
    expect(failed.every((d) => d.status === 'failed' && d.status_code === null && /ECONNREFUSED/.test(d.error))).toBe(true);

    const hook = await receiver({ port });
    await waitFor(() => hook.requests.length === 1, 'the webhook after the receiver came up');
    expect(hook.requests[0].headers['webhook-id']).toBe(failed[0].alert_id);
    const log = await waitFor(async () => {
      const rows = await deliveries(budget.id);
      return rows[0]?.status === 'succeeded' ? rows : null;
    }, 'the successful attempt to be logged');
    expect(new Set(log.map((d) => d.alert_id))).toEqual(new Set([failed[0].alert_id]));
    expect(log.map((d) => d.attempt)).toEqual(Array.from({ length: log.length }, (_, i) => log.length - i));
  });

  it('a 410 disables the webhook: no more attempts, later alerts are recorded but not sent, until the budget is set again', async () => {
    const hook = await receiver({ replies: [410] });
    const { key, budget } = await budgetOn(hook.url);
    await spend(t, ingestKey, key.id, 600_000_000n);
    await waitFor(async () => (await alertRows(t, budget.id))[0]?.state === 'failed', 'the alert to fail');
    const [row] = await t.dataSource.query('SELECT webhook_disabled_at FROM budgets WHERE id = $1', [budget.id]);
    expect(row.webhook_disabled_at).toBeInstanceOf(Date);
    const [gone] = await deliveries(budget.id);
    expect(gone).toMatchObject({ attempt: 1, status: 'failed', status_code: 410, next_retry_at: null });

    await spend(t, ingestKey, key.id, 500_000_000n); // 110 %: the block threshold
    await waitFor(async () => (await alertRows(t, budget.id)).length === 2, 'the second alert');
    await settle([t.app]);
    expect((await alertRows(t, budget.id)).map((a) => [a.threshold_pct, a.state])).toEqual([
      ['50.000000', 'failed'],
      ['100.000000', 'skipped'],
    ]);
    expect(hook.requests).toHaveLength(1);
    expect(await deliveries(budget.id)).toHaveLength(1);

    const refused = await t.post(`/api/v1/llm/budgets/deliveries/${gone.id}/redeliver`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.type).toBe('conflict_error');

    // Setting the budget again re-enables the URL; a redelivery then goes out.
    await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, monthlyBudget(1, { webhook_url: hook.url }));
    const again = await t.post(`/api/v1/llm/budgets/deliveries/${gone.id}/redeliver`);
    expect(again.status).toBe(202);
    await waitFor(() => hook.requests.length === 2, 'the redelivery');
    expect(hook.requests[1].headers['webhook-id']).toBe(gone.alert_id);
    expect(hook.requests[1].body).toBe(hook.requests[0].body);
  });

  it('refuses a redirect (3xx is a failed attempt; the Location is not followed)', async () => {
    const hook = await receiver({ replies: [302] });
    const { key, budget } = await budgetOn(hook.url);
    await spend(t, ingestKey, key.id, 600_000_000n);
    const log = await waitFor(async () => {
      const rows = await deliveries(budget.id);
      return rows[0]?.status === 'succeeded' ? rows : null;
    }, 'the retry after the redirect');
    expect(log.map((d) => [d.status, d.status_code, d.error])).toEqual([
      ['succeeded', 200, null],
      ['failed', 302, 'HTTP 302: redirects are not followed'],
    ]);
    expect(hook.requests).toHaveLength(2);
  });

  it('setting a budget re-evaluates it at once: a limit lowered below the spend alerts', async () => {
    const hook = await receiver();
    const { key, budget } = await budgetOn(hook.url, { thresholds: [{ pct: 50, action: 'alert' }] });
    await spend(t, ingestKey, key.id, 300_000_000n); // 30 %
    await settle([t.app]);
    expect(hook.requests).toEqual([]);
    await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, monthlyBudget(0.5, { webhook_url: hook.url, thresholds: [{ pct: 50, action: 'alert' }] })); // 60 %
    await waitFor(() => hook.requests.length === 1, 'the webhook after the change');
    expect(JSON.parse(hook.requests[0].body).data).toMatchObject({ budget: { id: budget.id, limit: 0.5, spend: { pct: 60 } }, threshold: { pct: 50 } });
  });

  it('records an alert exactly once for a budget without a webhook URL, and sends nothing', async () => {
    const org = await seedOrg(t, 'No Hook');
    const res = await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, monthlyBudget(1));
    await spend(t, ingestKey, org.member.id, 1_200_000_000n);
    await waitFor(async () => (await alertRows(t, res.body.id)).length === 2, 'two alerts');
    await settle([t.app]);
    expect((await alertRows(t, res.body.id)).map((a) => [a.threshold_pct, a.threshold_action, a.state])).toEqual([
      ['50.000000', 'alert', 'skipped'],
      ['100.000000', 'block', 'skipped'],
    ]);
    expect(await deliveries(res.body.id)).toEqual([]);
  });

  it('counts alerts and delivery attempts by outcome in /metrics', async () => {
    const text = (await t.get('/metrics', { key: null })).text;
    expect(text).toMatch(/tally_alerts_created_total\{action="alert"\} [1-9]\d*/);
    expect(text).toMatch(/tally_alerts_created_total\{action="block"\} [1-9]\d*/);
    for (const outcome of ['success', 'http_error', 'timeout', 'network_error', 'gone', 'redirect']) {
      expect(text).toMatch(new RegExp(`tally_webhook_delivery_attempts_total\\{outcome="${outcome}"\\} [1-9]\\d*`));
    }
  });

  describe('the delivery log endpoints', () => {
    let hook: WebhookReceiver;
    let acme: Awaited<ReturnType<typeof seedOrg>>;
    let globex: Awaited<ReturnType<typeof seedOrg>>;
    let clusterBudget: any;
    let first: Record<string, any>;

    beforeAll(async () => {
      hook = await receiver();
      acme = await seedOrg(t, 'Acme Deliveries');
      globex = await seedOrg(t, 'Globex Deliveries');
      clusterBudget = (await t.put(`/api/v1/llm/budgets/org/${acme.org.id}`, monthlyBudget(1, { owner: 'cluster', webhook_url: hook.url }))).body;
      await spend(t, ingestKey, acme.member.id, 1_000_000_000n);
      await waitFor(() => hook.requests.length === 2, 'both alerts');
      const rows = await waitFor(async () => {
        const list = await deliveries(clusterBudget.id);
        return list.length === 2 ? list : null;
      }, 'both attempts logged');
      first = rows.find((d) => d.threshold.pct === 50)!;
    });

    it('lists attempts to cluster admins and the org\'s admins; others get 403 or 404', async () => {
      const path = `/api/v1/llm/budgets/${clusterBudget.id}/deliveries`;
      expect((await t.get(path, { key: acme.orgAdmin.key })).body.data).toHaveLength(2);
      expect((await t.get(path, { key: acme.member.key })).status).toBe(403);
      expect((await t.get(path, { key: ingestKey })).status).toBe(403);
      expect((await t.get(path, { key: globex.orgAdmin.key })).status).toBe(404);
      expect((await t.get('/api/v1/llm/budgets/bud_nope/deliveries')).status).toBe(404);
    });

    it('pages newest first with limit and after; filters by alert', async () => {
      const path = `/api/v1/llm/budgets/${clusterBudget.id}/deliveries`;
      const page1 = (await t.get(`${path}?limit=1`)).body;
      expect(page1).toMatchObject({ object: 'list', has_more: true, last_id: page1.data[0].id });
      const page2 = (await t.get(`${path}?limit=1&after=${page1.last_id}`)).body;
      expect(page2.has_more).toBe(false);
      expect([page1.data[0].threshold.pct, page2.data[0].threshold.pct].sort((a, b) => a - b)).toEqual([50, 100]);
      expect(page1.data[0].created_at).toBeGreaterThanOrEqual(page2.data[0].created_at);
      const byAlert = (await t.get(`${path}?alert_id=${first.alert_id}`)).body;
      expect(byAlert.data.map((d: { id: string }) => d.id)).toEqual([first.id]);
      expect((await t.get(`${path}?limit=0`)).body.error.param).toBe('limit');
      expect((await t.get(`${path}?after=dlv_nope`)).body.error.code).toBe('invalid_cursor');
    });

    it('redelivers the same webhook-id and body bytes, newly signed; org admins may redeliver their org\'s cluster budget alerts', async () => {
      const res = await t.post(`/api/v1/llm/budgets/deliveries/${first.id}/redeliver`, undefined, { key: acme.orgAdmin.key });
      expect(res.status).toBe(202);
      expect(res.body).toMatchObject({ object: 'llm.budget.webhook_delivery', alert_id: first.alert_id, trigger: 'redelivery', attempt: 1, budget_id: clusterBudget.id });
      await waitFor(() => hook.requests.length === 3, 'the redelivery');
      const original = hook.requests.find((r) => r.headers['webhook-id'] === first.alert_id)!;
      const resent = hook.requests[2];
      expect(resent.headers['webhook-id']).toBe(first.alert_id);
      expect(resent.body).toBe(original.body);
      const log = await waitFor(async () => {
        const rows = await deliveries(clusterBudget.id);
        const row = rows.find((d) => d.id === res.body.id);
        return row?.status === 'succeeded' ? rows : null;
      }, 'the redelivery to be logged');
      expect(log).toHaveLength(3);
      expect(log.find((d) => d.id === res.body.id)).toMatchObject({ trigger: 'redelivery', status_code: 200, attempt: 1 });
    });

    it('redeliver: 404 for unknown or other tenants\' deliveries, 403 for members', async () => {
      expect((await t.post('/api/v1/llm/budgets/deliveries/dlv_nope/redeliver')).status).toBe(404);
      expect((await t.post(`/api/v1/llm/budgets/deliveries/${first.id}/redeliver`, undefined, { key: globex.orgAdmin.key })).status).toBe(404);
      expect((await t.post(`/api/v1/llm/budgets/deliveries/${first.id}/redeliver`, undefined, { key: acme.member.key })).status).toBe(403);
    });
  });
});

describe('alerts: delivery-time SSRF check', () => {
  it('a URL that resolves to a private address at delivery time is refused, logged, and never reached', async () => {
    const t = await startTestApp({ ...FAST_RETRIES, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'false', WEBHOOK_MAX_ATTEMPTS: '2' });
    const hook = await startReceiver();
    try {
      const ingestKey = (await createSystemKey(t, 'ingest')).key;
      const org = await seedOrg(t, 'Rebinding');
      const res = await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, monthlyBudget(1, { webhook_url: 'http://8.8.8.8/hooks/tally' }));
      expect(res.status).toBe(200);
      // The name now resolves to loopback (as after a DNS change).
      await t.dataSource.query('UPDATE budgets SET webhook_url = $1 WHERE id = $2', [`http://localhost:${hook.port}/hooks/tally`, res.body.id]);
      await spend(t, ingestKey, org.member.id, 600_000_000n);
      await waitFor(async () => (await alertRows(t, res.body.id))[0]?.state === 'failed', 'the alert to give up');
      const log = (await t.get(`/api/v1/llm/budgets/${res.body.id}/deliveries`)).body.data;
      expect(log.map((d: any) => [d.attempt, d.status, d.status_code])).toEqual([
        [2, 'failed', null],
        [1, 'failed', null],
      ]);
      for (const d of log) expect(d.error).toMatch(/^refused target: resolves to a loopback, private, link-local or metadata address/);
      expect(hook.requests).toEqual([]);
    } finally {
      await hook.close();
      await t.close();
    }
  });
});

describe('alerts: graceful shutdown', () => {
  it('app.close() lets an in-flight delivery finish and log its attempt', async () => {
    const db = await createTestDatabase();
    const t = await startTestApp(FAST_RETRIES, { database: db });
    const hook = await startReceiver({ replies: [{ status: 200, afterMs: 300 }] });
    try {
      const ingestKey = (await createSystemKey(t, 'ingest')).key;
      const org = await seedOrg(t, 'Closing');
      const res = await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, monthlyBudget(1, { webhook_url: hook.url }));
      await spend(t, ingestKey, org.member.id, 600_000_000n);
      await waitFor(() => hook.requests.length === 1, 'the request to arrive');
      await t.close(); // the receiver answers only after a pause: the job is still running here
      const client = new Client({ connectionString: db.url });
      await client.connect();
      try {
        const { rows } = await client.query('SELECT status, status_code FROM webhook_deliveries WHERE budget_id = $1', [res.body.id]);
        expect(rows).toEqual([{ status: 'succeeded', status_code: 200 }]);
      } finally {
        await client.end();
      }
    } finally {
      await hook.close();
      await db.drop();
    }
  });
});
