import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BrowserContext, chromium, Locator, Page } from 'playwright-core';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { DAY, ingestOk, record, T0 } from './helpers/usage';

/**
 * Swagger UI tried for real: headless Chromium (Debian's `chromium`; `.ci/run` installs it) opens
 * /docs, authorizes with a bearer key, runs "Try it out" on PUT /api/v1/llm/budgets/apikey/{apiKeyId}
 * with the pre-filled example body, and sees a 200 with the budget (the screenshot lands in the
 * git-ignored test/.artifacts/); and "Try it out" on the usage report works with what is pre-filled.
 */
const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = resolve(__dirname, '.artifacts');
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  console.warn(`Skipping the Swagger UI browser test: ${CHROMIUM} is missing (Debian: apt-get install -y chromium; .ci/run installs it).`);
}

/** Swagger UI's block of an operation: its element id is `operations-<tag>-<operationId>`, dots escaped. */
function swaggerOperation(page: Page, tag: string, operationId: string) {
  return page.locator(`[id=${JSON.stringify(`operations-${tag}-${operationId.replaceAll('.', '\\.')}`)}]`);
}

(haveChromium ? describe : describe.skip)('Swagger UI in headless Chromium', () => {
  let t: TestApp;
  let profile: string;
  let browser: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    t = await startTestApp();
    profile = mkdtempSync(join(tmpdir(), 'tally-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 1600 },
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    browser.setDefaultTimeout(30_000);
    page = browser.pages()[0] ?? (await browser.newPage());
  });

  afterAll(async () => {
    await browser?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    await t?.close();
  });

  /**
   * Authorize: paste the key into the bearer scheme, leave X-On-Behalf-Of empty, close the dialog.
   * A key remembered from an earlier test (persistAuthorization) is logged out first.
   */
  async function authorize(key: string): Promise<void> {
    await page.locator('.scheme-container .authorize').click();
    const bearer = page.locator('.auth-container').filter({ has: page.locator('h4', { hasText: 'bearer' }) });
    const input = bearer.locator('input');
    const logout = bearer.locator('button', { hasText: 'Logout' });
    await input.or(logout).waitFor();
    if (await logout.isVisible()) await logout.click();
    await input.fill(key);
    await bearer.locator('button.authorize').click();
    await bearer.getByText('Authorized').first().waitFor();
    await bearer.locator('button.btn-done').click();
    await page.locator('.modal-ux').waitFor({ state: 'detached' });
  }

  /** Clicks Execute and waits for the live response: its status and JSON body. */
  async function execute(operation: Locator): Promise<{ status: string; body: any; curl: string }> {
    await operation.locator('.execute').click();
    const live = operation.locator('.responses-wrapper .live-responses-table .response');
    const status = live.locator('.response-col_status');
    await status.waitFor();
    return {
      status: (await status.innerText()).trim(),
      body: JSON.parse(await live.locator('.response-col_description pre').first().innerText()),
      curl: await operation.locator('.curl-command').innerText(),
    };
  }

  it('authorizes with a bearer key and sets an API key budget with "Try it out"', async () => {
    const acme = await seedOrg(t, 'Acme');
    await page.goto(`${t.baseUrl}/docs`);
    await authorize(acme.orgAdmin.key);

    // Open the operation and try it out with the example body (the MKA1 seed's) on the member's key.
    const operation = swaggerOperation(page, 'budgets', 'llm.budgets.setApiKey');
    await operation.locator('.opblock-summary').click();
    await operation.locator('.try-out__btn').click();
    await operation.locator('tr[data-param-name="apiKeyId"] input').fill(acme.member.id);
    const body = operation.locator('.body-param textarea');
    expect(JSON.parse(await body.inputValue())).toEqual({ period: 'weekly', limit_kind: 'tokens', limit: 3281.35, thresholds: [{ pct: 793338, action: 'alert' }] });

    const response = await execute(operation);
    expect(response.status).toBe('200');
    expect(response.body).toMatchObject({
      object: 'llm.budget',
      scope: 'apikey',
      scope_id: acme.member.id,
      org_id: acme.org.id,
      owner: 'org',
      period: 'weekly',
      limit_kind: 'tokens',
      limit: 3281.35,
      thresholds: [{ pct: 793338, action: 'alert' }],
      spend: { tokens_spent: '0', pct: 0 },
    });
    mkdirSync(ARTIFACTS, { recursive: true });
    await operation.screenshot({ path: join(ARTIFACTS, 'swagger-ui-set-api-key-budget.png') });

    // The budget really exists, as the API itself reports it.
    const stored = await t.get(`/api/v1/llm/budgets/apikey/${acme.member.id}`, { key: acme.orgAdmin.key });
    expect(stored.body.data).toEqual([expect.objectContaining({ id: response.body.id, limit: 3281.35 })]);
  });

  it('answers "Try it out" on the usage report with the pre-filled values: no optional filter is sent', async () => {
    const globex = await seedOrg(t, 'Globex');
    const gateway = await createSystemKey(t, 'ingest');
    await ingestOk(t, gateway.key, [record(globex.member.id, { created_at: T0 + 60 }), record(globex.member.id, { created_at: T0 + DAY + 60 })]);
    await page.goto(`${t.baseUrl}/docs`);
    await authorize(globex.orgAdmin.key);

    const operation = swaggerOperation(page, 'usage', 'llm.usage.completions');
    await operation.locator('.opblock-summary').click();
    await operation.locator('.try-out__btn').click();
    const response = await execute(operation);
    expect(response.status).toBe('200');
    // start_time is the seed's 2024-01-01; end_time (default now), limit and the filters are left out.
    expect(response.curl).toContain(`start_time=${T0}&bucket_width=1d`);
    expect(response.curl).not.toMatch(/end_time|user_ids|page=|org_id|X-On-Behalf-Of/);
    expect(response.body.data.slice(0, 2).map((b: any) => [b.start_time, b.results[0]?.num_model_requests])).toEqual([
      [T0, 1],
      [T0 + DAY, 1],
    ]);
    expect(response.body.has_more).toBe(true);
  });
});
