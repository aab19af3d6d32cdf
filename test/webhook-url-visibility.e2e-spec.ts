import { monthlyBudget, settle, spend } from './helpers/alerts';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { startReceiver, WebhookReceiver } from './helpers/webhook-receiver';
import { waitFor } from './helpers/wait-for';

/**
 * SPEC §4 "Who sees webhook URLs": `alert_webhook_url` and the `url` of delivery-log entries are
 * in full only for callers who may change the budget (cluster admins always, org admins for the
 * `owner: org` budgets of their org, members never); everyone else gets `scheme://host/…`.
 */
describe('webhook URLs are shown in full only to callers who may change the budget', () => {
  let t: TestApp;
  let receiver: WebhookReceiver;
  let acme: Awaited<ReturnType<typeof seedOrg>>;
  let ingestKey: string;
  let masked: string;
  const clusterUrl = () => `${receiver.url}/services/T0001/B0002/operator-secret-token?token=op-123`;
  const orgUrl = () => `${receiver.url}/org-hook/acme-secret-token`;
  const budgets: Record<'clusterOrg' | 'ownOrg' | 'clusterKey' | 'ownKey', { id: string; url: string }> = {} as never;

  beforeAll(async () => {
    t = await startTestApp({ WEBHOOK_RETRY_BASE_MS: '50' });
    receiver = await startReceiver();
    masked = `${new URL(receiver.url).protocol}//${new URL(receiver.url).host}/…`;
    acme = await seedOrg(t, 'Acme');
    ingestKey = (await createSystemKey(t, 'ingest')).key;
    const set = async (path: string, url: string, key: string, owner: 'cluster' | 'org') => {
      const res = await t.put(path, monthlyBudget(1, { webhook_url: url, owner }), { key });
      if (res.status !== 200) throw new Error(`${path}: ${res.status} ${res.text}`);
      // Its author may change it: the PUT answers with the URL in full.
      expect(res.body.alert_webhook_url).toBe(url);
      return { id: res.body.id as string, url };
    };
    budgets.clusterOrg = await set(`/api/v1/llm/budgets/org/${acme.org.id}`, clusterUrl(), t.adminKey, 'cluster');
    budgets.ownOrg = await set(`/api/v1/llm/budgets/org/${acme.org.id}`, orgUrl(), acme.orgAdmin.key, 'org');
    budgets.clusterKey = await set(`/api/v1/llm/budgets/apikey/${acme.member.id}`, clusterUrl(), t.adminKey, 'cluster');
    budgets.ownKey = await set(`/api/v1/llm/budgets/apikey/${acme.member.id}`, `${orgUrl()}/key`, acme.orgAdmin.key, 'org');
  });
  afterAll(async () => {
    await t.close();
    await receiver.close();
  });

  /** Every budget read the caller may make, as id → alert_webhook_url, with the raw texts. */
  async function urlsSeenBy(key: string, reads: string[]): Promise<{ urls: Record<string, string | null>; texts: string[] }> {
    const urls: Record<string, string | null> = {};
    const texts: string[] = [];
    for (const path of reads) {
      const res = await t.get(path, { key });
      expect(res.status).toBe(200);
      texts.push(res.text);
      for (const b of res.body.object === 'list' ? res.body.data : [res.body]) {
        if (b.id in urls) expect(b.alert_webhook_url).toBe(urls[b.id]); // every read agrees
        urls[b.id] = b.alert_webhook_url;
      }
    }
    return { urls, texts };
  }

  const everyRead = (ids: string[], scopes: string[]) => ['/api/v1/llm/budgets', ...scopes, ...ids.map((id) => `/api/v1/llm/budgets/${id}`)];

  it('cluster admins see every URL in full', async () => {
    const ids = Object.values(budgets).map((b) => b.id);
    const { urls } = await urlsSeenBy(t.adminKey, everyRead(ids, [`/api/v1/llm/budgets/org/${acme.org.id}`, `/api/v1/llm/budgets/apikey/${acme.member.id}`]));
    expect(urls).toEqual(Object.fromEntries(Object.values(budgets).map((b) => [b.id, b.url])));
  });

  it("org admins see their org's own budgets in full and the operator's owner: cluster budgets cut to scheme://host/…", async () => {
    const ids = Object.values(budgets).map((b) => b.id);
    const { urls, texts } = await urlsSeenBy(acme.orgAdmin.key, everyRead(ids, [`/api/v1/llm/budgets/org/${acme.org.id}`, `/api/v1/llm/budgets/apikey/${acme.member.id}`]));
    expect(urls).toEqual({
      [budgets.clusterOrg.id]: masked,
      [budgets.clusterKey.id]: masked,
      [budgets.ownOrg.id]: budgets.ownOrg.url,
      [budgets.ownKey.id]: budgets.ownKey.url,
    });
    for (const text of texts) {
      expect(text).not.toContain('operator-secret-token');
      expect(text).not.toContain('op-123');
    }
  });

  it('members see every URL of their key cut, the owner: org ones too (they change nothing)', async () => {
    const ids = [budgets.clusterKey.id, budgets.ownKey.id];
    const { urls, texts } = await urlsSeenBy(acme.member.key, everyRead(ids, [`/api/v1/llm/budgets/apikey/${acme.member.id}`]));
    expect(urls).toEqual({ [budgets.clusterKey.id]: masked, [budgets.ownKey.id]: masked });
    for (const text of texts) expect(text).not.toMatch(/secret-token|op-123/);
  });

  it("the delivery log cuts the url the same way: an org admin reads the operator's deliveries without the token", async () => {
    await spend(t, ingestKey, acme.member.id, 2_000_000_000n); // 200 % of every 1-unit budget
    await settle([t.app]);
    await waitFor(() => receiver.requests.length >= 4, 'four alert deliveries (one per budget)');
    const log = async (budgetId: string, key: string) => {
      const res = await t.get(`/api/v1/llm/budgets/${budgetId}/deliveries`, { key });
      expect(res.status).toBe(200);
      expect(res.body.data.length).toBeGreaterThan(0);
      return res;
    };
    for (const b of [budgets.clusterOrg, budgets.clusterKey]) {
      const asOrgAdmin = await log(b.id, acme.orgAdmin.key);
      expect(asOrgAdmin.body.data.map((d: { url: string }) => d.url)).toEqual(asOrgAdmin.body.data.map(() => masked));
      expect(asOrgAdmin.text).not.toMatch(/operator-secret-token|op-123/);
      const asAdmin = await log(b.id, t.adminKey);
      expect(asAdmin.body.data.map((d: { url: string }) => d.url)).toEqual(asAdmin.body.data.map(() => b.url));
    }
    for (const b of [budgets.ownOrg, budgets.ownKey]) {
      const asOrgAdmin = await log(b.id, acme.orgAdmin.key);
      expect(asOrgAdmin.body.data.map((d: { url: string }) => d.url)).toEqual(asOrgAdmin.body.data.map(() => b.url));
    }
    // A redelivery an org admin asks for on the operator's budget answers with the cut URL too.
    const [first] = (await log(budgets.clusterOrg.id, t.adminKey)).body.data;
    const again = await t.post(`/api/v1/llm/budgets/deliveries/${first.id}/redeliver`, undefined, { key: acme.orgAdmin.key });
    expect(again.status).toBe(202);
    expect(again.body.url).toBe(masked);
    expect(again.text).not.toMatch(/operator-secret-token|op-123/);
  });
});
