import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MIGRATIONS } from '../migrations';
import { UsageRollupsByKey1795298831442 } from '../migrations/1795298831442-UsageRollupsByKey';
import { OrgInTrafficKeys1796102676237 } from '../migrations/1796102676237-OrgInTrafficKeys';
import { PartitionRecordsByMonth1795300100000 } from '../migrations/1795300100000-PartitionRecordsByMonth';
import { createDataSource, pendingSchemaChanges, runMigrations } from '../src/database/data-source';
import { listPartitions } from '../src/usage/partitions';
import { databaseUrl, withAdminClient } from './setup/services';

describe('migrations that move data', () => {
  it('UsageRollupsByKey fills the per-key rollups from the per-user rows already stored', async () => {
    const server = process.env.TEST_PG_SERVER_URL!;
    const name = `tally_migration_${randomBytes(4).toString('hex')}`;
    await withAdminClient(server, (c) => c.query(`CREATE DATABASE ${name}`));
    try {
      const before = createDataSource(databaseUrl(server, name), { migrations: MIGRATIONS.slice(0, MIGRATIONS.indexOf(UsageRollupsByKey1795298831442)) });
      await before.initialize();
      await runMigrations(before);
      const row = (user: string, model: string, tokens: number) =>
        `('org_a', '2024-01-01T05:00:00Z', 'key_a', 'team', '${user}', '${model}', '', false, 'default', ${tokens}, 1, 7, 2)`;
      for (const table of ['usage_rollups_hour', 'usage_rollups_day']) {
        await before.query(
          `INSERT INTO ${table} (org_id, bucket_start, api_key_id, team_id, user_id, model, project_id, batch, service_tier,
             input_tokens, num_model_requests, cost_nano, unpriced_requests)
           VALUES ${[row('u1', 'm1', 10), row('u2', 'm1', 20), row('', 'm2', 5)].join(', ')}`,
        );
      }
      await before.destroy();

      const after = createDataSource(databaseUrl(server, name));
      await after.initialize();
      try {
        expect(await runMigrations(after)).toContain('UsageRollupsByKey1795298831442');
        for (const table of ['usage_rollups_hour_by_key', 'usage_rollups_day_by_key']) {
          const rows = await after.query(
            `SELECT model, input_tokens, output_tokens, num_model_requests, cost_nano, unpriced_requests, team_id, service_tier FROM ${table} ORDER BY model`,
          );
          expect(rows).toEqual([
            { model: 'm1', input_tokens: '30', output_tokens: '0', num_model_requests: '2', cost_nano: '14', unpriced_requests: '4', team_id: 'team', service_tier: 'default' },
            { model: 'm2', input_tokens: '5', output_tokens: '0', num_model_requests: '1', cost_nano: '7', unpriced_requests: '2', team_id: 'team', service_tier: 'default' },
          ]);
        }
      } finally {
        await after.destroy();
      }
    } finally {
      await withAdminClient(server, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    }
  });

  it('PartitionRecordsByMonth converts stored records and per-minute rows into monthly partitions, keeping every row', async () => {
    const server = process.env.TEST_PG_SERVER_URL!;
    const name = `tally_migration_${randomBytes(4).toString('hex')}`;
    await withAdminClient(server, (c) => c.query(`CREATE DATABASE ${name}`));
    try {
      const before = createDataSource(databaseUrl(server, name), { migrations: MIGRATIONS.slice(0, MIGRATIONS.indexOf(PartitionRecordsByMonth1795300100000)) });
      await before.initialize();
      await runMigrations(before);
      const times = ['2019-03-31T23:59:59Z', '2024-01-01T00:00:00Z', '2024-01-31T12:00:00Z', new Date().toISOString()];
      for (const [i, at] of times.entries()) {
        await before.query(
          `INSERT INTO completion_records (org_id, id, api_key_id, model, input_tokens, output_tokens, input_cached_tokens, input_audio_tokens,
             output_audio_tokens, batch, cost_nano, unpriced, created_at) VALUES ('org_a', $1, 'key_a', 'm', $2, 1, 0, 0, 0, false, 7, false, $3)`,
          [`r${i}`, 10 + i, at],
        );
        await before.query(
          `INSERT INTO usage_rollups_minute (org_id, bucket_start, api_key_id, team_id, user_id, model, project_id, batch, service_tier, num_model_requests)
           VALUES ('org_a', date_trunc('minute', $1::timestamptz), 'key_a', '', '', 'm', '', false, '', $2)`,
          [at, i + 1],
        );
      }
      const dump = async (ds: typeof before) => ({
        records: await ds.query(`SELECT id, input_tokens, cost_nano, created_at FROM completion_records ORDER BY id`),
        minutes: await ds.query(`SELECT bucket_start, num_model_requests FROM usage_rollups_minute ORDER BY bucket_start`),
      });
      const rows = await dump(before);
      await before.destroy();

      const after = createDataSource(databaseUrl(server, name));
      await after.initialize();
      try {
        expect(await runMigrations(after)).toContain('PartitionRecordsByMonth1795300100000');
        expect(await dump(after)).toEqual(rows);
        const partitioned = await after.query(`SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid ORDER BY 1`);
        expect(partitioned.map((r: { relname: string }) => r.relname)).toEqual(['completion_records', 'usage_rollups_minute']);
        const partitions = (await listPartitions(after, 'completion_records')).map((p) => p.name);
        expect(partitions).toEqual(expect.arrayContaining(['completion_records_p201903', 'completion_records_p202401']));
        expect(partitions).not.toContain('completion_records_p202402');
        // Rows sit in the partition of their month; the primary key now carries the partition key.
        expect(await after.query(`SELECT id FROM completion_records_p202401 ORDER BY id`)).toEqual([{ id: 'r1' }, { id: 'r2' }]);
        const [pk] = await after.query(
          `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'completion_records'::regclass AND contype = 'p'`,
        );
        expect(pk.def).toBe('PRIMARY KEY (org_id, id, created_at)');
        expect((await pendingSchemaChanges(after)).up).toEqual([]);
      } finally {
        await after.destroy();
      }
    } finally {
      await withAdminClient(server, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    }
  });

  it('OrgInTrafficKeys gives stored alerts and deliveries the org of their budget', async () => {
    const server = process.env.TEST_PG_SERVER_URL!;
    const name = `tally_migration_${randomBytes(4).toString('hex')}`;
    await withAdminClient(server, (c) => c.query(`CREATE DATABASE ${name}`));
    try {
      const before = createDataSource(databaseUrl(server, name), { migrations: MIGRATIONS.slice(0, MIGRATIONS.indexOf(OrgInTrafficKeys1796102676237)) });
      await before.initialize();
      await runMigrations(before);
      await before.query(
        `INSERT INTO budgets (id, scope, scope_id, org_id, owner, period, limit_kind, limit_value, thresholds)
         VALUES ('bdg_a', 'org', 'org_a', 'org_a', 'org', 'monthly', 'cost', 10, '[]'), ('bdg_b', 'org', 'org_b', 'org_b', 'org', 'monthly', 'cost', 10, '[]')`,
      );
      await before.query(
        `INSERT INTO alerts (id, budget_id, window_start, window_end, threshold_pct, threshold_action, body, state, created_at)
         VALUES ('alrt_a', 'bdg_a', now(), now(), 50, 'alert', '{}', 'pending', now()), ('alrt_b', 'bdg_b', now(), now(), 50, 'alert', '{}', 'pending', now())`,
      );
      await before.query(
        `INSERT INTO webhook_deliveries (id, alert_id, budget_id, trigger, attempt, status) VALUES ('dlv_a', 'alrt_a', 'bdg_a', 'alert', 1, 'failed'), ('dlv_b', 'alrt_b', 'bdg_b', 'alert', 1, 'pending')`,
      );
      await before.destroy();
      const after = createDataSource(databaseUrl(server, name));
      await after.initialize();
      try {
        const ran = await runMigrations(after);
        expect(ran[0]).toBe('OrgInTrafficKeys1796102676237');
        expect(ran).toEqual(MIGRATIONS.slice(MIGRATIONS.indexOf(OrgInTrafficKeys1796102676237)).map((m) => m.name));
        // Later migrations keep the budgets: TeamAndUserBudgets widens scope_id in place, timezones default to UTC.
        expect(await after.query(`SELECT id, scope_id, timezone FROM budgets ORDER BY id`)).toEqual([
          { id: 'bdg_a', scope_id: 'org_a', timezone: 'UTC' },
          { id: 'bdg_b', scope_id: 'org_b', timezone: 'UTC' },
        ]);
        expect(await after.query(`SELECT id, org_id FROM alerts ORDER BY id`)).toEqual([{ id: 'alrt_a', org_id: 'org_a' }, { id: 'alrt_b', org_id: 'org_b' }]);
        expect(await after.query(`SELECT id, org_id FROM webhook_deliveries ORDER BY id`)).toEqual([{ id: 'dlv_a', org_id: 'org_a' }, { id: 'dlv_b', org_id: 'org_b' }]);
        // DeletedBudgetResolutions: deleting a budget keeps its alerts and their deliveries (a deletion resolves its blocks, SPEC §5) ...
        await after.query(`DELETE FROM budgets WHERE id = 'bdg_a'`);
        expect(await after.query(`SELECT id FROM webhook_deliveries ORDER BY id`)).toEqual([{ id: 'dlv_a' }, { id: 'dlv_b' }]);
        // ... and the composite foreign key from deliveries to alerts holds: deleting an alert removes its deliveries.
        await after.query(`DELETE FROM alerts WHERE id = 'alrt_a'`);
        expect(await after.query(`SELECT id FROM webhook_deliveries`)).toEqual([{ id: 'dlv_b' }]);
      } finally {
        await after.destroy();
      }
    } finally {
      await withAdminClient(server, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    }
  });

  it('every migration reverts (down) on a fresh database, and all apply again', async () => {
    const server = process.env.TEST_PG_SERVER_URL!;
    const name = `tally_migration_${randomBytes(4).toString('hex')}`;
    await withAdminClient(server, (c) => c.query(`CREATE DATABASE ${name}`));
    try {
      const data = createDataSource(databaseUrl(server, name));
      await data.initialize();
      try {
        expect(await runMigrations(data)).toHaveLength(MIGRATIONS.length);
        for (let i = 0; i < MIGRATIONS.length; i++) await data.undoLastMigration({ transaction: 'each' });
        expect(await data.query(`SELECT count(*)::int AS n FROM migrations`)).toEqual([{ n: 0 }]);
        expect(await runMigrations(data)).toHaveLength(MIGRATIONS.length);
        expect((await pendingSchemaChanges(data)).up).toEqual([]);
      } finally {
        await data.destroy();
      }
    } finally {
      await withAdminClient(server, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    }
  });

  it('npm run migration:run without DATABASE_URL applies the migrations to the embedded database under DATA_DIR (SPEC §1), then finds none pending', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tally-migrate-'));
    const root = resolve(__dirname, '..');
    const run = () => {
      const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir };
      delete env.DATABASE_URL;
      return execFileSync(process.execPath, ['-r', join(root, 'test/helpers/swc-register.js'), join(root, 'src/cli/migrate.ts'), 'run'], { cwd: root, env, encoding: 'utf8' });
    };
    try {
      expect(run()).toMatch(new RegExp(`^Applied: .*${MIGRATIONS.map((m) => m.name).pop()}`, 'm'));
      expect(run()).toContain('No pending migrations');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
