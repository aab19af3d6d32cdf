import Redis from 'ioredis';
import { DataSource } from 'typeorm';
import { newId } from '../src/common/ids';
import { dataSourceOptions } from '../src/database/data-source';
import { AdmissionBatches } from '../src/reservations/admission-batches';
import { ADMISSION_BUDGETS_SQL, orgLockKey, RESERVATION_LOCK_CLASS } from '../src/reservations/admission-sql';
import { Reservation } from '../src/reservations/reservation.entity';
import { blockingBudget, counters, RESERVATIONS, reservationBody, twoApiProcessesPerSuite } from './helpers/reservations';
import { seedOrg, TestApp } from './helpers/test-app';
import { waitFor } from './helpers/wait-for';

/**
 * Admissions share transactions (group commit, src/reservations/admission-batches.ts), decide
 * with no lock held, and are stored only while the fences they decided from hold: the batches
 * themselves on the real database, and the caps they keep over several orgs, two API processes
 * and a Redis that loses everything.
 */
describe('reservations: admissions batched into shared transactions', () => {
  let a: TestApp, b: TestApp, redisUrl: string, ingestKey: string;
  twoApiProcessesPerSuite((started) => ({ a, b, redisUrl, ingestKey } = started));

  /** A held reservation of the key, as an admission would store it. */
  function row(orgId: string, apiKeyId: string, requestId = `batch-${newId('req')}`): Reservation {
    return Object.assign(new Reservation(), {
      orgId, id: newId('res'), apiKeyId, requestId, userId: null, model: 'gpt-4o-mini',
      inputTokens: '10', maxOutputTokens: '10', minOutputTokens: '1', grantedOutputTokens: '10', status: 'held',
      reservedTokens: '20', reservedCostNano: '0', holds: [], decision: { denied_by: [], budgets: [] },
      expiresAt: new Date(Date.now() + 60_000), createdAt: new Date(), recordId: null, settledAt: null, releasedAt: null,
    } satisfies Partial<Reservation>);
  }

  /** Which connections (by backend pid) hold the reservation lock of each org, shared, right now. */
  async function lockHolders(orgIds: string[]): Promise<Map<string, number[]>> {
    const rows: Array<{ pid: number; objid: string }> = await a.dataSource.query(
      `SELECT pid, objid::text FROM pg_locks
       WHERE locktype = 'advisory' AND classid = $1 AND objsubid = 2 AND mode = 'ShareLock' AND granted
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      [RESERVATION_LOCK_CLASS],
    );
    return new Map(orgIds.map((id) => [id, rows.filter((r) => Number(r.objid) === orgLockKey(id) >>> 0).map((r) => r.pid)]));
  }

  it('admissions of one turn share one transaction, and hold no lock while they decide; a duplicate request id, a failing admission and a row PostgreSQL refuses each fail alone', async () => {
    const org = await seedOrg(a, 'Batched');
    const other = await seedOrg(a, 'Batched-too');
    const batches = new AdmissionBatches(a.dataSource);
    const poisoned = `poison-${newId('req')}`;
    // A real refusal from PostgreSQL for one row, whichever statement inserts it.
    await a.dataSource.query(`CREATE FUNCTION test_refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.request_id = '${poisoned}' THEN RAISE EXCEPTION 'refused for the test'; END IF; RETURN NEW; END $$`);
    await a.dataSource.query('CREATE TRIGGER test_refuse_poison BEFORE INSERT ON reservations FOR EACH ROW EXECUTE FUNCTION test_refuse_poison()');
    try {
      const seen: Array<Map<string, number[]>> = [];
      const admit = (orgId: string, keyId: string, reservation: Reservation | 'throw') =>
        batches.run({ orgId, apiKeyId: keyId, scopes: { teamId: null, userId: null } }, async (_budgets, store) => {
          // While it decides, no connection holds either org's lock (a rebuild never waits on a Redis call).
          seen.push(await lockHolders([org.org.id, other.org.id]));
          if (reservation === 'throw') throw new Error('this admission failed');
          return store(reservation, {});
        });
      const good = [row(org.org.id, org.member.id), row(other.org.id, other.member.id), row(org.org.id, org.orgAdmin.id)];
      const twin = row(org.org.id, org.member.id, good[0].requestId);
      // All in the same turn of the event loop: one batch.
      const results = await Promise.allSettled([
        ...good.map((r) => admit(r.orgId, r.apiKeyId, r)),
        admit(twin.orgId, twin.apiKeyId, twin),
        admit(org.org.id, org.member.id, 'throw'),
        admit(org.org.id, org.member.id, row(org.org.id, org.member.id, poisoned)),
      ]);
      expect(seen).toHaveLength(6);
      for (const holders of seen) expect([...holders.values()].map((pids) => pids.length)).toEqual([0, 0]);
      expect(results.slice(0, 3)).toEqual(good.map(() => ({ status: 'fulfilled', value: { outcome: 'inserted', moved: [] } })));
      // The same request id again: not inserted (its admission answers the stored one).
      expect(results[3]).toEqual({ status: 'fulfilled', value: { outcome: 'duplicate', moved: [] } });
      expect(results[4]).toMatchObject({ status: 'rejected', reason: { message: 'this admission failed' } });
      expect(results[5]).toMatchObject({ status: 'rejected' });
      expect(String((results[5] as PromiseRejectedResult).reason.message)).toContain('refused for the test');
      // The three good rows are stored; the refused and the failed ones are not.
      const stored: Array<{ request_id: string }> = await a.dataSource.query('SELECT request_id FROM reservations WHERE org_id = ANY($1) ORDER BY request_id', [[org.org.id, other.org.id]]);
      expect(stored.map((r) => r.request_id).sort()).toEqual(good.map((r) => r.requestId).sort());
    } finally {
      await a.dataSource.query('DROP TRIGGER IF EXISTS test_refuse_poison ON reservations; DROP FUNCTION IF EXISTS test_refuse_poison()');
    }

    // A batch whose only row is refused fails that admission; the next batch works.
    const alone = await batches
      .run({ orgId: org.org.id, apiKeyId: org.member.id, scopes: { teamId: null, userId: null } }, (_budgets, store) => store(Object.assign(row(org.org.id, org.member.id), { status: 'no-such-status-here' }), {}))
      .then(() => 'stored', (err: Error) => err.message);
    expect(alone).not.toBe('stored');
    const next = row(org.org.id, org.member.id);
    expect(await batches.run({ orgId: org.org.id, apiKeyId: org.member.id, scopes: { teamId: null, userId: null } }, (_budgets, store) => store(next, {}))).toEqual({ outcome: 'inserted', moved: [] });
  });

  it('plans the insert once per connection: a generic plan, not a new plan at every batch', async () => {
    const org = await seedOrg(a, 'Planned');
    // One connection, so the prepared statements seen below are the batches' own.
    const single = new DataSource(dataSourceOptions(a.db.url, {}, 1));
    await single.initialize();
    try {
      const batches = new AdmissionBatches(single);
      for (let i = 0; i < 8; i++) {
        const r = row(org.org.id, org.member.id);
        expect(await batches.run({ orgId: org.org.id, apiKeyId: org.member.id, scopes: { teamId: null, userId: null } }, (_budgets, store) => store(r, {}))).toEqual({ outcome: 'inserted', moved: [] });
      }
      const [plans] = await single.query(`SELECT generic_plans::int AS generic, custom_plans::int AS custom FROM pg_prepared_statements WHERE name = 'tally_reservation_insert'`);
      // PostgreSQL's own choice here is a custom plan at every execution (the arrays' lengths make it look cheaper).
      expect(plans).toEqual({ generic: 8, custom: 0 });
      // The setting is the batch's own: the connection's other statements plan as before.
      expect((await single.query('SHOW plan_cache_mode'))[0].plan_cache_mode).toBe('auto');
    } finally {
      await single.destroy();
    }
  });

  it('a grant is answered only after its transaction commits: the other process finds it at once, even when COMMIT is slow', async () => {
    const org = await seedOrg(a, 'Committed');
    await a.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, blockingBudget('tokens', 10_000));
    // A deferred constraint trigger runs inside COMMIT: it makes every commit of these rows slow.
    await a.dataSource.query(`CREATE FUNCTION test_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.request_id LIKE 'slow-commit-%' THEN PERFORM pg_sleep(0.3); END IF; RETURN NULL; END $$`);
    await a.dataSource.query(`CREATE CONSTRAINT TRIGGER test_slow_commit AFTER INSERT ON reservations
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_slow_commit()`);
    try {
      const granted = await Promise.all(
        [0, 1, 2].map(async (i) => {
          const res = await a.post(RESERVATIONS, reservationBody(org.member.id, { request_id: `slow-commit-${i}-${newId('req')}` }), { key: ingestKey });
          expect(res.body.allowed).toBe(true);
          // Read-your-writes, from the other API process and its own connection.
          return (await b.get(`${RESERVATIONS}/${res.body.id}`, { key: ingestKey })).status;
        }),
      );
      expect(granted).toEqual([200, 200, 200]);
    } finally {
      await a.dataSource.query('DROP TRIGGER IF EXISTS test_slow_commit ON reservations; DROP FUNCTION IF EXISTS test_slow_commit()');
    }
  });

  it('a COMMIT that PostgreSQL refuses fails every admission of the batch with its own error, and stores none', async () => {
    const org = await seedOrg(a, 'Refused-at-commit');
    const batches = new AdmissionBatches(a.dataSource);
    const poisoned = `commit-poison-${newId('req')}`;
    // Deferred: the refusal comes from COMMIT, after the insert succeeded.
    await a.dataSource.query(`CREATE FUNCTION test_refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.request_id = '${poisoned}' THEN RAISE EXCEPTION 'refused at commit for the test'; END IF; RETURN NULL; END $$`);
    await a.dataSource.query(`CREATE CONSTRAINT TRIGGER test_refuse_at_commit AFTER INSERT ON reservations
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_refuse_at_commit()`);
    try {
      const rows = [row(org.org.id, org.member.id), row(org.org.id, org.member.id, poisoned)];
      const results = await Promise.allSettled(
        rows.map((r) => batches.run({ orgId: r.orgId, apiKeyId: r.apiKeyId, scopes: { teamId: null, userId: null } }, (_budgets, store) => store(r, {}))),
      );
      expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
      for (const r of results) expect(String((r as PromiseRejectedResult).reason.message)).toContain('refused at commit for the test');
      const [stored] = await a.dataSource.query('SELECT COUNT(*)::int AS n FROM reservations WHERE org_id = $1', [org.org.id]);
      expect(stored.n).toBe(0);
    } finally {
      await a.dataSource.query('DROP TRIGGER IF EXISTS test_refuse_at_commit ON reservations; DROP FUNCTION IF EXISTS test_refuse_at_commit()');
    }
  });

  it('a batch reads only the budgets of its admissions, an index probe per scope, with many budgets stored and not yet analyzed', async () => {
    const org = await seedOrg(a, 'Probed');
    const orgBudget = (await a.put(`/api/v1/llm/budgets/org/${org.org.id}`, blockingBudget('tokens', 1000))).body;
    const keyBudget = (await a.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, blockingBudget('tokens', 500))).body;
    // 2,000 budgets of other keys, stored at once, as a bulk load or a busy hour does between two ANALYZEs.
    await a.dataSource.query(
      `INSERT INTO budgets (id, scope, scope_id, org_id, owner, period, limit_kind, limit_value, thresholds)
       SELECT 'bud_probe' || lpad(k::text, 19, '0'), 'apikey', 'key_probe' || lpad(k::text, 19, '0'), $1, 'org', 'daily', 'tokens', 100,
              '[{"pct": 1, "action": "block"}]'
       FROM generate_series(1, 2000) k`,
      [org.org.id],
    );
    const params = [[org.org.id, org.org.id], [org.member.id, org.orgAdmin.id], [null, null], [null, null]];
    const rows: Array<{ i: string; id: string }> = await a.dataSource.query(ADMISSION_BUDGETS_SQL, params);
    expect(rows.map((r) => `${r.i}:${r.id}`).sort()).toEqual([`1:${orgBudget.id}`, `1:${keyBudget.id}`, `2:${orgBudget.id}`].sort());

    const [{ 'QUERY PLAN': plan }]: Array<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }> = await a.dataSource.query(
      `EXPLAIN (ANALYZE, FORMAT JSON) ${ADMISSION_BUDGETS_SQL}`,
      params,
    );
    // Every row the plan took from the budgets table, over all its loops: only those that match.
    let read = 0;
    const walk = (node: PlanNode): void => {
      if (node['Relation Name'] === 'budgets') read += node['Actual Rows'] * node['Actual Loops'];
      node.Plans?.forEach(walk);
    };
    walk(plan[0].Plan);
    expect(read).toBeLessThanOrEqual(3);
  });

  it('several orgs on two processes with a FLUSHDB in the middle: every cap holds exactly, nothing deadlocks, the counters equal PostgreSQL', async () => {
    const orgs = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const org = await seedOrg(a, `Many-${i}`);
        const budget = (await a.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, blockingBudget('tokens', 5_000))).body;
        // The org's own budget too: each admission locks and counts two windows.
        await a.put(`/api/v1/llm/budgets/org/${org.org.id}`, blockingBudget('tokens', 1_000_000, { owner: 'cluster' }));
        return { org, budget, grants: 0 };
      }),
    );
    const flusher = new Redis(redisUrl);
    let attempts = 0;
    let grants = 0;
    let flushed = false;
    const problems: string[] = [];
    await Promise.all(
      Array.from({ length: 12 }, async (_v, client) => {
        const app = client % 2 ? b : a;
        while (attempts < 800) {
          const target = orgs[attempts++ % orgs.length];
          const res = await app.post(RESERVATIONS, reservationBody(target.org.member.id, { input_tokens: 50, max_output_tokens: 50, min_output_tokens: 50 }), { key: ingestKey });
          if (res.status !== 200) {
            problems.push(`${res.status} ${res.text}`);
            continue;
          }
          if (!res.body.allowed) continue;
          target.grants++;
          if (++grants === 80 && !flushed) {
            flushed = true;
            await flusher.flushdb();
          }
        }
      }),
    );
    flusher.disconnect();
    expect(problems).toEqual([]);
    expect(flushed).toBe(true);
    expect(orgs.map((o) => o.grants)).toEqual([50, 50, 50, 50]);
    for (const { org, budget } of orgs) {
      const [stored] = await a.dataSource.query(`SELECT COUNT(*)::int AS held, COALESCE(SUM(reserved_tokens), 0)::text AS tokens FROM reservations WHERE org_id = $1 AND status = 'held'`, [org.org.id]);
      expect(stored).toEqual({ held: 50, tokens: '5000' });
      expect(await counters(a, org.org.id, budget.id)).toEqual({ committed: 0n, held: 5_000n });
    }
  });

  it('the same request id 20 times at once on two processes, after Redis forgot it: one reservation, every answer names it', async () => {
    const org = await seedOrg(a, 'Twenty');
    const budget = (await a.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, blockingBudget('tokens', 10_000))).body;
    const body = reservationBody(org.member.id);
    const first = await a.post(RESERVATIONS, body, { key: ingestKey });
    expect(first.body.allowed).toBe(true);
    const flusher = new Redis(redisUrl);
    await flusher.flushdb();
    flusher.disconnect();
    const answers = await Promise.all(Array.from({ length: 20 }, (_v, i) => (i % 2 ? b : a).post(RESERVATIONS, body, { key: ingestKey })));
    expect(answers.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(new Set(answers.map((r) => r.body.id))).toEqual(new Set([first.body.id]));
    const [stored] = await a.dataSource.query('SELECT COUNT(*)::int AS n FROM reservations WHERE org_id = $1', [org.org.id]);
    expect(stored.n).toBe(1);
    await waitFor(async () => {
      const c = await counters(a, org.org.id, budget.id);
      return c !== null && c.held === 100n;
    }, 'the counters to hold the one reservation only');
  });
});

interface PlanNode {
  'Relation Name'?: string;
  'Actual Rows': number;
  'Actual Loops': number;
  Plans?: PlanNode[];
}
