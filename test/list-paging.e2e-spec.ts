import { costBudget } from './helpers/budgets';
import { seedOrg, startTestApp, TestApp } from './helpers/test-app';

/**
 * Bounded work (issue 11, point 7): the management lists answer a page at a time, oldest first,
 * `{object: "list", data, has_more, last_id}`; `after` = the previous `last_id`.
 */
describe('management lists are paged', () => {
  let t: TestApp;
  let orgs: Array<Awaited<ReturnType<typeof seedOrg>>>;

  beforeAll(async () => {
    t = await startTestApp();
    orgs = [];
    for (let i = 0; i < 5; i++) orgs.push(await seedOrg(t, `Org ${i}`));
    for (const o of orgs) {
      await o.make('member');
      for (const scope of [`org/${o.org.id}`, `apikey/${o.member.id}`]) {
        const res = await t.put(`/api/v1/llm/budgets/${scope}`, costBudget(10));
        if (res.status !== 200) throw new Error(res.text);
      }
    }
  });
  afterAll(() => t.close());

  /** Follows `after` from the first page to the last; returns every id and the pages' sizes. */
  async function pageThrough(path: string, limit: number, key = t.adminKey): Promise<{ ids: string[]; sizes: number[] }> {
    const ids: string[] = [];
    const sizes: number[] = [];
    let after: string | null = null;
    for (;;) {
      const sep = path.includes('?') ? '&' : '?';
      const res: { status: number; body: any } = await t.get(`${path}${sep}limit=${limit}${after ? `&after=${after}` : ''}`, { key });
      expect(res.status).toBe(200);
      expect(res.body.object).toBe('list');
      expect(res.body.data.length).toBeLessThanOrEqual(limit);
      expect(res.body.last_id).toBe(res.body.data.length ? res.body.data[res.body.data.length - 1].id : null);
      ids.push(...res.body.data.map((x: { id: string }) => x.id));
      sizes.push(res.body.data.length);
      if (!res.body.has_more) return { ids, sizes };
      after = res.body.last_id;
    }
  }

  it.each([
    ['/api/v1/orgs', 6], // the system org and five
    ['/api/v1/api-keys', 16], // the admin key and three per org
    ['/api/v1/llm/budgets', 10],
  ])('%s: every page in order, has_more until the last', async (path, total) => {
    const all = await t.get(`${path}?limit=1000`);
    expect(all.body).toMatchObject({ object: 'list', has_more: false });
    expect(all.body.data).toHaveLength(total);
    const allIds = all.body.data.map((x: { id: string }) => x.id);
    const byDefault = await t.get(path);
    expect(byDefault.body.data.map((x: { id: string }) => x.id)).toEqual(allIds); // default 100
    for (const limit of [1, 3, total]) {
      const { ids, sizes } = await pageThrough(path, limit);
      expect(ids).toEqual(allIds);
      expect(sizes.slice(0, -1).every((n) => n === limit)).toBe(true);
    }
    const first = await t.get(`${path}?limit=2`);
    expect(first.body).toMatchObject({ has_more: true, last_id: allIds[1] });
  });

  it('pages within what the caller may see, and a cursor outside it is a 400', async () => {
    const acme = orgs[0];
    const { ids } = await pageThrough('/api/v1/api-keys', 2, acme.orgAdmin.key);
    expect(ids).toHaveLength(3);
    const budgets = await pageThrough('/api/v1/llm/budgets', 1, acme.orgAdmin.key);
    expect(budgets.ids).toHaveLength(2);
    const foreign = orgs[1].member.id;
    for (const path of [`/api/v1/api-keys?after=${foreign}`, '/api/v1/api-keys?after=key_doesnotexist']) {
      const res = await t.get(path, { key: acme.orgAdmin.key });
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'invalid_cursor', param: 'after' });
    }
    const filtered = await pageThrough(`/api/v1/llm/budgets?scope=apikey&org_id=${orgs[2].org.id}`, 1);
    expect(filtered.ids).toHaveLength(1);
  });

  it('refuses a limit outside 1-1000', async () => {
    for (const path of ['/api/v1/orgs', '/api/v1/api-keys', '/api/v1/llm/budgets']) {
      for (const limit of ['0', '1001', 'x']) {
        const res = await t.get(`${path}?limit=${limit}`);
        expect(res.status).toBe(400);
        expect(res.body.error.param).toBe('limit');
      }
    }
  });
});
