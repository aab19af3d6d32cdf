import { RawConnection } from './helpers/raw-connection';
import { waitFor } from './helpers/wait-for';
import { gzipSync } from 'node:zlib';
import { request } from 'node:http';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';

describe('auth (SPEC §2)', () => {
  let t: TestApp;
  let acme: Awaited<ReturnType<typeof seedOrg>>;
  let globex: Awaited<ReturnType<typeof seedOrg>>;

  beforeAll(async () => {
    t = await startTestApp();
    acme = await seedOrg(t, 'Acme', 'team-a');
    globex = await seedOrg(t, 'Globex');
  });
  afterAll(() => t.close());

  it('never writes a secret or an Authorization header to the log', async () => {
    const created = await acme.make('member');
    await t.get('/api/v1/api-keys', { key: created.key });
    await t.get('/api/v1/api-keys', { key: 'mk-' + 'Z'.repeat(40) }); // a failed attempt is logged too
    const log = t.logs.join('');
    expect(log).toContain('"route":"/api/v1/api-keys"'); // the requests were logged
    for (const secret of [t.adminKey, created.key, acme.orgAdmin.key, 'mk-' + 'Z'.repeat(40)]) {
      expect(log).not.toContain(secret);
    }
    expect(log.toLowerCase()).not.toContain('bearer ');
  });

  describe('401: missing, unknown, malformed, revoked', () => {
    it('rejects a request with no key', async () => {
      const res = await t.get('/api/v1/api-keys', { key: null });
      expect(res.status).toBe(401);
      expect(res.body).toEqual({
        error: {
          message: 'Missing API key: send "Authorization: Bearer <api-key>"',
          type: 'authentication_error',
          code: 'missing_api_key',
          param: null,
        },
      });
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
    });

    it('rejects an unknown key and a malformed header alike', async () => {
      const unknown = await t.get('/api/v1/api-keys', { key: 'mk-' + 'x'.repeat(40) });
      expect(unknown.status).toBe(401);
      expect(unknown.body.error.code).toBe('invalid_api_key');
      const notMk = await t.get('/api/v1/api-keys', { key: 'sk-abc' });
      expect(notMk.status).toBe(401);
      const basic = await t.get('/api/v1/api-keys', { key: null, headers: { authorization: 'Basic Zm9vOmJhcg==' } });
      expect(basic.status).toBe(401);
      expect(basic.body.error.code).toBe('invalid_api_key');
    });

    it('fails a revoked key at once, and never echoes the secret', async () => {
      const key = await acme.make('member');
      expect((await t.get('/api/v1/api-keys', { key: key.key })).status).toBe(200); // now cached
      const revoked = await t.delete(`/api/v1/api-keys/${key.id}`);
      expect(revoked.status).toBe(200);
      expect(revoked.body.revoked_at).toEqual(expect.any(Number));
      expect(revoked.text).not.toContain(key.key);
      expect((await t.get('/api/v1/api-keys', { key: key.key })).status).toBe(401);
      // Revoking again is idempotent: same object, same time.
      const again = await t.delete(`/api/v1/api-keys/${key.id}`);
      expect(again.status).toBe(200);
      expect(again.body.revoked_at).toBe(revoked.body.revoked_at);
    });

    it('fails a revoked key at once on another instance sharing the database and Redis', async () => {
      const other = await startTestApp({ REDIS_PREFIX: t.config.redisPrefix }, { database: t.db });
      try {
        const key = await acme.make('member');
        expect((await other.get('/api/v1/api-keys', { key: key.key })).status).toBe(200); // cached there
        expect((await t.delete(`/api/v1/api-keys/${key.id}`)).status).toBe(200);
        expect((await other.get('/api/v1/api-keys', { key: key.key })).status).toBe(401);
      } finally {
        await other.close();
      }
    });
  });

  describe('403: known key, role not allowed', () => {
    it.each([
      ['member', 'POST', '/api/v1/orgs'],
      ['member', 'POST', '/api/v1/api-keys'],
      ['org_admin', 'POST', '/api/v1/orgs'],
      ['org_admin', 'GET', '/api/v1/orgs'],
    ])('%s cannot %s %s', async (role, method, path) => {
      const key = role === 'member' ? acme.member.key : acme.orgAdmin.key;
      const res = await t.request(method, path, method === 'POST' ? { name: 'x', role: 'member' } : undefined, { key });
      expect(res.status).toBe(403);
      expect(res.body.error).toMatchObject({ type: 'permission_error', code: 'forbidden' });
    });

    it('an ingest key reaches nothing of the management API', async () => {
      const ingest = await createSystemKey(t, 'ingest');
      for (const [method, path] of [
        ['GET', '/api/v1/api-keys'],
        ['GET', `/api/v1/orgs/${acme.org.id}`],
        ['POST', '/api/v1/orgs'],
      ]) {
        expect((await t.request(method, path, method === 'POST' ? { name: 'x' } : undefined, { key: ingest.key })).status).toBe(403);
      }
    });

    it('an org admin cannot create cluster_admin or ingest keys', async () => {
      for (const role of ['cluster_admin', 'ingest']) {
        const res = await t.post('/api/v1/api-keys', { name: 'x', role }, { key: acme.orgAdmin.key });
        expect(res.status).toBe(403);
      }
    });

    it('only cluster admins filter keys by org_id', async () => {
      const res = await t.get(`/api/v1/api-keys?org_id=${acme.org.id}`, { key: acme.orgAdmin.key });
      expect(res.status).toBe(403);
    });
  });

  describe('404: another tenant\'s objects do not exist', () => {
    it('an org admin cannot see another org or its keys', async () => {
      expect((await t.get(`/api/v1/orgs/${globex.org.id}`, { key: acme.orgAdmin.key })).status).toBe(404);
      const key = await t.get(`/api/v1/api-keys/${globex.member.id}`, { key: acme.orgAdmin.key });
      expect(key.status).toBe(404);
      expect(key.body.error).toEqual({
        message: `API key '${globex.member.id}' not found`,
        type: 'not_found_error',
        code: 'not_found',
        param: null,
      });
      expect((await t.delete(`/api/v1/api-keys/${globex.member.id}`, { key: acme.orgAdmin.key })).status).toBe(404);
      // Unknown and foreign look the same.
      const unknown = await t.get('/api/v1/api-keys/key_doesnotexist', { key: acme.orgAdmin.key });
      expect(unknown.status).toBe(404);
    });

    it('an org admin cannot create keys in another org', async () => {
      const res = await t.post('/api/v1/api-keys', { name: 'x', role: 'member', org_id: globex.org.id }, { key: acme.orgAdmin.key });
      expect(res.status).toBe(404);
    });

    it('a member sees only its own key', async () => {
      const list = await t.get('/api/v1/api-keys', { key: acme.member.key });
      expect(list.status).toBe(200);
      expect(list.body.data.map((k: { id: string }) => k.id)).toEqual([acme.member.id]);
      expect((await t.get(`/api/v1/api-keys/${acme.orgAdmin.id}`, { key: acme.member.key })).status).toBe(404);
      expect((await t.get(`/api/v1/api-keys/${acme.member.id}`, { key: acme.member.key })).status).toBe(200);
      expect((await t.get(`/api/v1/orgs/${acme.org.id}`, { key: acme.member.key })).status).toBe(200);
    });
  });

  describe('X-On-Behalf-Of', () => {
    it.each([
      ['empty', ''],
      ['a lone *', '*'],
      ['too long', 'u'.repeat(151)],
      ['non-ASCII', 'usér'],
      ['a control character', 'a\tb'],
    ])('rejects %s with 400', async (_name, value) => {
      const res = await t.get('/api/v1/api-keys', { headers: { 'x-on-behalf-of': value } });
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'invalid_on_behalf_of', param: 'X-On-Behalf-Of' });
    });

    it('accepts 150 printable characters and carries the user into the audit fields of writes', async () => {
      const user = 'u'.repeat(149) + '!';
      const res = await t.post(
        '/api/v1/api-keys',
        { name: 'audited', role: 'member' },
        { key: acme.orgAdmin.key, headers: { 'x-on-behalf-of': user } },
      );
      expect(res.status).toBe(201);
      const [row] = await t.dataSource.query('SELECT created_by, created_on_behalf_of FROM api_keys WHERE id = $1', [res.body.id]);
      expect(row).toEqual({ created_by: acme.orgAdmin.id, created_on_behalf_of: user });
    });

    it('refuses the caller\'s own API key as the user (what an SDK given one token for every scheme sends), storing nothing', async () => {
      const before = await t.dataSource.query('SELECT count(*)::int AS n FROM api_keys');
      const res = await t.post(
        '/api/v1/api-keys',
        { name: 'leaky', role: 'member' },
        { key: acme.orgAdmin.key, headers: { 'x-on-behalf-of': acme.orgAdmin.key } },
      );
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'invalid_on_behalf_of', param: 'X-On-Behalf-Of' });
      expect(res.body.error.message).toContain('must not repeat the API key');
      expect(res.text).not.toContain(acme.orgAdmin.key);
      expect(await t.dataSource.query('SELECT count(*)::int AS n FROM api_keys')).toEqual(before);
    });

    /** A request with X-On-Behalf-Of sent as separate header lines (fetch would join them itself). */
    const withRepeatedHeader = (method: string, path: string, key: string, values: string[], body?: unknown) =>
      new Promise<{ status: number; body: { error: Record<string, unknown> } }>((resolve, reject) => {
        const req = request(t.baseUrl + path, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' } }, (res) => {
          let text = '';
          res.on('data', (chunk) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
        });
        req.setHeader('x-on-behalf-of', values);
        req.on('error', reject);
        req.end(body === undefined ? undefined : JSON.stringify(body));
      });

    it('refuses X-On-Behalf-Of sent twice (Node would join the values into one user "a, b"), and a value holding the API key, storing nothing', async () => {
      const before = await t.dataSource.query('SELECT count(*)::int AS n FROM api_keys');
      for (const values of [['alice', 'bob'], ['alice', acme.orgAdmin.key]]) {
        const res = await withRepeatedHeader('POST', '/api/v1/api-keys', acme.orgAdmin.key, values, { name: 'twice', role: 'member' });
        expect(res.status).toBe(400);
        expect(res.body.error).toMatchObject({ code: 'invalid_on_behalf_of', param: 'X-On-Behalf-Of' });
      }
      const joined = await t.post('/api/v1/api-keys', { name: 'joined', role: 'member' }, { key: acme.orgAdmin.key, headers: { 'x-on-behalf-of': `alice, ${acme.orgAdmin.key}` } });
      expect(joined.status).toBe(400);
      expect(joined.text).not.toContain(acme.orgAdmin.key);
      expect(await t.dataSource.query('SELECT count(*)::int AS n FROM api_keys')).toEqual(before);
      // One value with a comma is one user.
      expect((await t.get('/api/v1/api-keys', { key: acme.orgAdmin.key, headers: { 'x-on-behalf-of': 'smith, john' } })).status).toBe(200);
    });
  });

  describe('request bodies: read only for a valid key', () => {
    it.each([
      ['no key (401)', '/api/v1/orgs', {}],
      ['no route (404)', '/api/v1/nowhere', {}],
      ['a small route over 256 KiB (413)', '/api/v1/orgs', { auth: true }],
    ])('refused unread with %s, the connection is closed: the rest of a huge declared body is never read', async (_name, path, opts) => {
      const conn = new RawConnection(t.baseUrl);
      const auth = (opts as { auth?: boolean }).auth ? `Authorization: Bearer ${t.adminKey}\r\n` : '';
      await conn.send(`POST ${path} HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 100000000000\r\n\r\n`);
      await conn.send(Buffer.alloc(64 * 1024, 0x30));
      await waitFor(() => conn.closed, 'the server to close the connection', 5000);
      expect(conn.text).toMatch(/^HTTP\/1\.1 (401|404|413) /);
      expect(conn.text.toLowerCase()).toContain('connection: close');
    });

    it.each([
      ['no key (401)', '/api/v1/orgs', {}, 401],
      ['a small route over 256 KiB (413)', '/api/v1/orgs', { auth: true }, 413],
      ['a batch over BODY_LIMIT_BYTES (413)', '/api/v1/llm/usage/records', { auth: true }, 413],
    ])('refused unread with %s, a declared body up to 16 MiB is read and dropped: a client that sends it all gets the answer, on a connection that stays usable', async (_name, path, opts, status) => {
      const conn = new RawConnection(t.baseUrl);
      const auth = (opts as { auth?: boolean }).auth ? `Authorization: Bearer ${t.adminKey}\r\n` : '';
      const size = t.config.bodyLimitBytes + 1024 * 1024;
      await conn.send(`POST ${path} HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`);
      // The whole body, as a client that does not wait for 100 Continue sends it.
      const chunk = Buffer.alloc(64 * 1024, 0x30);
      for (let sent = 0; sent < size && !conn.error && !conn.closed; sent += chunk.length) await conn.send(chunk.subarray(0, Math.min(chunk.length, size - sent)));
      expect(conn.error).toBeUndefined();
      await waitFor(() => conn.answered(), 'the answer', 10_000);
      expect(conn.text).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      expect(conn.text.toLowerCase()).not.toContain('connection: close');
      // The same connection serves the next request.
      conn.text = '';
      await conn.send('GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor(() => conn.text.startsWith('HTTP/1.1 200 '), 'the next answer on the same connection', 10_000);
      conn.socket.destroy();
    });

    it('what a connection drains of refused bodies adds up: repeating them on one kept-alive connection ends with a close, not gigabytes read', async () => {
      const conn = new RawConnection(t.baseUrl);
      const size = 6 * 1024 * 1024;
      const body = Buffer.alloc(size, 0x30);
      const answers: string[] = [];
      for (let i = 0; i < 5 && !conn.closed; i++) {
        conn.text = '';
        await conn.send(`POST /api/v1/orgs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer mk-${'n'.repeat(40)}\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`);
        await conn.send(body);
        await waitFor(() => conn.answered() || conn.closed || null, 'an answer or a close', 10_000);
        answers.push(conn.text.toLowerCase().includes('connection: close') ? 'close' : conn.text.slice(9, 12));
      }
      await waitFor(() => conn.closed, 'the server to close the connection', 10_000);
      // 6 MiB twice (12 MiB) are drained; the third would pass 16 MiB: answered with a close.
      expect(answers).toEqual(['401', '401', 'close']);
    });

    it('a refused body that stops arriving is not waited for past a few seconds: the connection is closed', async () => {
      const conn = new RawConnection(t.baseUrl);
      await conn.send(`POST /api/v1/orgs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n`);
      await conn.send(Buffer.alloc(64 * 1024, 0x30));
      await waitFor(() => conn.closed, 'the server to close the connection', 15_000);
      expect(conn.text).toMatch(/^HTTP\/1\.1 401 /);
    });

    it.each([
      ['GET /health/live', 'GET /health/live'],
      ['HEAD /health/live', 'HEAD /health/live'],
      ['GET of no route', 'GET /nowhere'],
    ])('a %s with a body nobody reads is bounded like a refused one: a huge one closes the connection, a dripping one is closed', async (_name, line) => {
      const huge = new RawConnection(t.baseUrl);
      await huge.send(`${line} HTTP/1.1\r\nHost: x\r\nContent-Length: 8589934592\r\n\r\n`);
      for (let i = 0; i < 64 && !huge.closed; i++) await huge.send(Buffer.alloc(64 * 1024, 0x30));
      await waitFor(() => huge.closed, 'the server to close the connection', 10_000);
      expect(huge.text.toLowerCase()).toContain('connection: close');
      const dripping = new RawConnection(t.baseUrl);
      await dripping.send(`${line} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx`);
      await waitFor(() => dripping.closed, 'the server to close the connection', 15_000);
      expect(dripping.text).toMatch(/^HTTP\/1\.1 (200|404) /);
    });

    it('a slow GET that carries a small body gets its answer: the drain starts once it is sent', async () => {
      // A report waiting for its statement: held here by a lock on budgets for 6 s.
      const locker = await t.dataSource.createQueryRunner();
      await locker.connect();
      await locker.startTransaction();
      await locker.query('LOCK TABLE budgets IN ACCESS EXCLUSIVE MODE');
      const conn = new RawConnection(t.baseUrl);
      try {
        await conn.send(`GET /api/v1/llm/budgets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.adminKey}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`);
        await new Promise((resolve) => setTimeout(resolve, 6_000));
      } finally {
        await locker.commitTransaction();
        await locker.release();
      }
      await waitFor(() => conn.answered() || conn.closed || null, 'the answer', 10_000);
      expect(conn.text).toMatch(/^HTTP\/1\.1 200 /);
      conn.socket.destroy();
    });

    it('reads no request body for a caller without a valid key: 401 before any decompression or parsing', async () => {
      const acme = await seedOrg(t, 'Bodyless');
      const post = (headers: Record<string, string>, body: Buffer | string) =>
        fetch(`${t.baseUrl}/api/v1/llm/budgets/check`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
      // Bodies that parsing or decompression would refuse with a 400: without a valid key they are never read.
      const badJson = '{"api_key_id": ';
      const notGzip = Buffer.from('not gzip at all');
      const numbers = gzipSync(`{"a":[${Array(200_000).fill('1234567890123456').join(',')}]}`);
      for (const [headers, body] of [
        [{}, badJson],
        [{ authorization: 'Bearer mk-nope' }, badJson],
        [{ authorization: 'Basic abc' }, badJson],
        [{ 'content-encoding': 'gzip' }, notGzip],
        [{ 'content-encoding': 'gzip' }, numbers],
      ] as Array<[Record<string, string>, Buffer | string]>) {
        const res = await post(headers, body);
        expect(res.status).toBe(401);
        expect(((await res.json()) as { error: { type: string } }).error.type).toBe('authentication_error');
      }
      // With a valid key the same bodies are read (and refused as what they are).
      const ingest = await createSystemKey(t, 'ingest');
      const auth = { authorization: `Bearer ${ingest.key}` };
      expect((await post(auth, badJson)).status).toBe(400);
      expect((await post({ ...auth, 'content-encoding': 'gzip' }, notGzip)).status).toBe(400);
      expect((await post(auth, JSON.stringify({ api_key_id: acme.member.id }))).status).toBe(200);
      // A route that does not exist is still a 404, and a public one still answers without a key, body or not.
      expect((await fetch(`${t.baseUrl}/api/v1/nowhere`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: badJson })).status).toBe(404);
      expect((await t.get('/health/live', { key: null })).status).toBe(200);
      const probe = await new Promise<number>((resolve, reject) => {
        const req = request(`${t.baseUrl}/health/live`, { method: 'GET', headers: { 'content-type': 'application/json', 'content-length': '2' } }, (res) => (res.resume(), resolve(res.statusCode!)));
        req.on('error', reject);
        req.end('{}');
      });
      expect(probe).toBe(200);
      // Any valid key, even one the route refuses: a route that is not bulk ingest reads at most 256 KiB (once decompressed).
      const member = acme.member.key;
      const bomb = gzipSync(`{"x":[${Array(1_000_000).fill('0').join(',')}]}`);
      expect(bomb.length).toBeLessThan(10_000);
      const refused = await post({ authorization: `Bearer ${member}`, 'content-encoding': 'gzip' }, bomb);
      expect(refused.status).toBe(413);
      // Bulk ingest still takes BODY_LIMIT_BYTES.
      const batch = JSON.stringify({ records: Array.from({ length: 1000 }, (_v, i) => ({ id: `big-${Date.now()}-${i}`, api_key_id: acme.member.id, model: 'm'.repeat(200), input_tokens: 1, output_tokens: 1, created_at: Math.floor(Date.now() / 1000) })) });
      expect(batch.length).toBeGreaterThan(256 * 1024);
      const ingested = await fetch(`${t.baseUrl}/api/v1/llm/usage/records`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ingest.key}` }, body: batch });
      expect(ingested.status).toBe(200);
    });

    it('a key revoked while its request body was still arriving is refused once the body is in', async () => {
      const acme = await seedOrg(t, 'SlowBody');
      const doomed = await acme.make('org_admin');
      const body = JSON.stringify({ name: 'backdoor', role: 'org_admin' });
      const answer = new Promise<number>((resolve, reject) => {
        const req = request(`${t.baseUrl}/api/v1/api-keys`, { method: 'POST', headers: { authorization: `Bearer ${doomed.key}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } }, (res) => (res.resume(), resolve(res.statusCode!)));
        req.on('error', reject);
        req.write(body.slice(0, 1));
        setTimeout(async () => {
          expect((await t.delete(`/api/v1/api-keys/${doomed.id}`)).status).toBe(200);
          req.end(body.slice(1));
        }, 300);
      });
      expect(await answer).toBe(401);
    });
  });

  describe('management endpoints', () => {
    it('creates an org (cluster admin) and lists and reads it', async () => {
      const created = await t.post('/api/v1/orgs', { name: 'Initech' });
      expect(created.status).toBe(201);
      expect(created.body).toEqual({ id: expect.stringMatching(/^org_[A-Za-z0-9]{24}$/), name: 'Initech', created_at: expect.any(Number) });
      const list = await t.get('/api/v1/orgs');
      expect(list.body.object).toBe('list');
      expect(list.body.data).toContainEqual(created.body);
      expect((await t.get(`/api/v1/orgs/${created.body.id}`)).body).toEqual(created.body);
    });

    it('shows a new key\'s secret once, with the documented fields', async () => {
      const res = await t.post('/api/v1/api-keys', { name: 'k', role: 'member', team_id: 'team-x' }, { key: acme.orgAdmin.key });
      expect(res.status).toBe(201);
      expect(res.body).toEqual({
        id: expect.stringMatching(/^key_[A-Za-z0-9]{24}$/),
        org_id: acme.org.id,
        name: 'k',
        role: 'member',
        team_id: 'team-x',
        key_prefix: res.body.key.slice(0, 7),
        created_at: expect.any(Number),
        revoked_at: null,
        key: expect.stringMatching(/^mk-[A-Za-z0-9]{32,}$/),
      });
      const read = await t.get(`/api/v1/api-keys/${res.body.id}`);
      expect(read.body).not.toHaveProperty('key');
      expect(read.text).not.toContain(res.body.key);
      // The new key works at once.
      expect((await t.get(`/api/v1/api-keys/${res.body.id}`, { key: res.body.key })).status).toBe(200);
      const [row] = await t.dataSource.query('SELECT secret_hash FROM api_keys WHERE id = $1', [res.body.id]);
      expect(Buffer.isBuffer(row.secret_hash) && row.secret_hash.length).toBe(32);
    });

    it('puts cluster_admin and ingest keys in the system org', async () => {
      const ingest = await createSystemKey(t, 'ingest');
      expect((await t.get(`/api/v1/api-keys/${ingest.id}`)).body.org_id).toBe('org_system');
      const res = await t.post('/api/v1/api-keys', { name: 'x', role: 'ingest', org_id: acme.org.id });
      expect(res.status).toBe(400);
      expect(res.body.error.param).toBe('org_id');
    });

    it('requires org_id from cluster admins for tenant keys, and a real org', async () => {
      expect((await t.post('/api/v1/api-keys', { name: 'x', role: 'member' })).body.error.param).toBe('org_id');
      expect((await t.post('/api/v1/api-keys', { name: 'x', role: 'member', org_id: 'org_nope' })).status).toBe(404);
    });

    it('names every bad and unknown field in one 400', async () => {
      const res = await t.post('/api/v1/api-keys', { name: '', role: 'root', extra: 1 });
      expect(res.status).toBe(400);
      expect(res.body.error.type).toBe('invalid_request_error');
      expect(res.body.error.details.map((d: { param: string }) => d.param).sort()).toEqual(['extra', 'name', 'role']);
    });

    it('lists an org admin\'s own org only, and a cluster admin filters by org', async () => {
      const mine = await t.get('/api/v1/api-keys', { key: acme.orgAdmin.key });
      expect(new Set(mine.body.data.map((k: { org_id: string }) => k.org_id))).toEqual(new Set([acme.org.id]));
      const filtered = await t.get(`/api/v1/api-keys?org_id=${globex.org.id}`);
      expect(filtered.body.data.map((k: { id: string }) => k.id).sort()).toEqual([globex.member.id, globex.orgAdmin.id].sort());
    });
  });
});
