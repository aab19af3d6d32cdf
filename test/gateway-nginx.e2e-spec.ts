import { ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, IncomingHttpHeaders, Server } from 'node:http';
import { AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { freePort } from './helpers/webhook-receiver';
import { waitFor } from './helpers/wait-for';

/**
 * The forward-auth budget gate behind a real nginx (Debian's package; `.ci/run` installs it):
 * the README's nginx example, used verbatim with only its ports changed, in front of a local
 * upstream that records what reaches it.
 */
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx'].find((path) => existsSync(path));
if (!NGINX) {
  console.warn('Skipping the nginx forward-auth test: no nginx binary found (Debian: apt-get install -y nginx; .ci/run installs it).');
}

/** The README's nginx example: the fenced block between its markers. */
export function readmeNginxExample(): string {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  const section = /<!-- nginx-example:start -->\s*```nginx\n([\s\S]*?)```\s*<!-- nginx-example:end -->/.exec(readme);
  if (!section) throw new Error('README.md has no nginx example between <!-- nginx-example:start --> and <!-- nginx-example:end -->');
  return section[1];
}

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

(NGINX ? describe : describe.skip)('forward-auth budget gate behind a real nginx', () => {
  let t: TestApp;
  let upstream: Server;
  let nginx: ChildProcess;
  let dir: string;
  let proxyUrl: string;
  const seen: Seen[] = [];

  beforeAll(async () => {
    // A low API rate limit (50 at once, then 1/s: enough for this file's set-up calls): the gate's
    // calls must not be counted against it.
    t = await startTestApp({ RATE_LIMIT_PER_SECOND: '1', RATE_LIMIT_BURST: '50' });
    upstream = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ ok: true }));
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const upstreamPort = (upstream.address() as AddressInfo).port;
    const tallyPort = new URL(t.baseUrl).port;
    const port = await freePort();

    const example = readmeNginxExample()
      .replace('server 127.0.0.1:3000;', `server 127.0.0.1:${tallyPort};`)
      .replace('server 127.0.0.1:8000;', `server 127.0.0.1:${upstreamPort};`)
      .replace('listen 8080;', `listen 127.0.0.1:${port};`);
    dir = mkdtempSync(join(tmpdir(), 'tally-nginx-'));
    chmodSync(dir, 0o755); // nginx's workers drop root: they must reach their temp paths in here
    const conf = [
      'daemon off;',
      'worker_processes 1;',
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/error.log warn;`,
      'events { worker_connections 512; }',
      'http {',
      `  access_log ${dir}/access.log;`,
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((name) => `  ${name}_temp_path ${dir}/${name}_temp;`),
      example,
      '}',
    ].join('\n');
    writeFileSync(join(dir, 'nginx.conf'), conf);
    nginx = spawn(NGINX!, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: ['ignore', 'inherit', 'inherit'] });
    proxyUrl = `http://127.0.0.1:${port}`;
    await waitFor(
      () =>
        new Promise<boolean>((resolve) => {
          if (nginx.exitCode !== null) throw new Error(`nginx exited: ${readFileSync(join(dir, 'error.log'), 'utf8')}`);
          const socket = connect(port, '127.0.0.1', () => {
            socket.destroy();
            resolve(true);
          });
          socket.on('error', () => resolve(false));
        }),
      'nginx to listen',
    );
  });

  afterAll(async () => {
    if (nginx && nginx.exitCode === null) {
      const exited = new Promise((resolve) => nginx.once('exit', resolve));
      nginx.kill('SIGQUIT');
      await exited;
    }
    if (upstream) await new Promise<void>((resolve) => upstream.close(() => resolve()));
    if (t) await t.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const viaProxy = (path: string, key: string | null, init: RequestInit = {}) =>
    fetch(proxyUrl + path, {
      ...init,
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...((init.headers as Record<string, string>) ?? {}) },
    });

  it('passes a request with a valid key through to the upstream with X-Tally-Api-Key-Id and X-Tally-Org-Id set', async () => {
    const acme = await seedOrg(t, 'Nginx Acme');
    seen.length = 0;
    const res = await viaProxy('/v1/chat/completions', acme.member.key, {
      method: 'POST',
      // A client cannot name another key: the proxy overwrites these headers.
      headers: { 'content-type': 'application/json', 'x-tally-api-key-id': 'key_spoofed', 'x-tally-org-id': 'org_spoofed' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [] }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: 'POST', url: '/v1/chat/completions', body: JSON.stringify({ model: 'gpt-4o-mini', messages: [] }) });
    expect(seen[0].headers['x-tally-api-key-id']).toBe(acme.member.id);
    expect(seen[0].headers['x-tally-org-id']).toBe(acme.org.id);

    const get = await viaProxy('/v1/models', acme.orgAdmin.key);
    expect(get.status).toBe(200);
    expect(seen[1].headers['x-tally-api-key-id']).toBe(acme.orgAdmin.id);
  });

  it('refuses unknown, missing and revoked keys with 401 before the upstream sees anything', async () => {
    const acme = await seedOrg(t, 'Nginx Revoked');
    seen.length = 0;
    expect((await viaProxy('/v1/chat/completions', `mk-${'x'.repeat(40)}`)).status).toBe(401);
    expect((await viaProxy('/v1/chat/completions', null)).status).toBe(401);
    expect((await viaProxy('/v1/chat/completions', acme.member.key)).status).toBe(200);
    expect((await t.delete(`/api/v1/api-keys/${acme.member.id}`)).status).toBe(200);
    expect((await viaProxy('/v1/chat/completions', acme.member.key)).status).toBe(401);
    expect(seen).toHaveLength(1);
  });

  it("does not count the gate's calls against the key's API rate limit: a burst of 300 all pass", async () => {
    const acme = await seedOrg(t, 'Nginx Burst');
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const batch = await Promise.all(Array.from({ length: 50 }, () => viaProxy('/v1/models', acme.member.key)));
      statuses.push(...batch.map((r) => r.status));
    }
    expect(statuses).toHaveLength(300);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    // The same key on Tally's own API is limited (burst 50): the limit is on, the gate is exempt.
    const reads = await Promise.all(Array.from({ length: 80 }, () => t.get(`/api/v1/api-keys/${acme.member.id}`, { key: acme.member.key })));
    expect(reads.map((r) => r.status)).toContain(429);
  });

  it("answers a 429 with Retry-After once the key's blocking budget is exhausted (deny_status=403 + error_page)", async () => {
    const acme = await seedOrg(t, 'Nginx Budget');
    const ingest = await createSystemKey(t, 'ingest');
    const budget = await t.put(`/api/v1/llm/budgets/apikey/${acme.member.id}`, {
      period: 'daily',
      limit_kind: 'tokens',
      limit: 1000,
      thresholds: [{ pct: 100, action: 'block' }],
      owner: 'cluster',
    });
    expect(budget.status).toBe(200);
    expect((await viaProxy('/v1/chat/completions', acme.member.key)).status).toBe(200);

    const now = Math.floor(Date.now() / 1000);
    const records = [{ id: `nginx-${now}`, api_key_id: acme.member.id, model: 'gpt-4o-mini', input_tokens: 900, output_tokens: 200, created_at: now }];
    expect((await t.post('/api/v1/llm/usage/records', { records }, { key: ingest.key })).status).toBe(200);
    const check = await t.post('/api/v1/llm/budgets/check', { api_key_id: acme.member.id }, { key: ingest.key });
    expect(check.body.allowed).toBe(false);
    const resetsAt: number = check.body.blocked_by[0].resets_at;

    seen.length = 0;
    const before = Math.floor(Date.now() / 1000);
    const denied = await viaProxy('/v1/chat/completions', acme.member.key, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    const after = Math.ceil(Date.now() / 1000);
    expect(denied.status).toBe(429);
    const retryAfter = Number(denied.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(resetsAt - after);
    expect(retryAfter).toBeLessThanOrEqual(resetsAt - before);
    expect(denied.headers.get('content-type')).toBe('application/json');
    expect(await denied.json()).toEqual({
      error: { message: `Budget ${budget.body.id} blocks this API key`, type: 'rate_limit_error', code: 'budget_exceeded', param: null },
    });
    expect(seen).toEqual([]);

    // Other keys of the org are not blocked by a key budget.
    expect((await viaProxy('/v1/chat/completions', acme.orgAdmin.key)).status).toBe(200);
  });
});
