import { randomBytes } from 'node:crypto';
import { MIGRATIONS } from '../migrations';
import { UsageRollupsByKey1795298831442 } from '../migrations/1795298831442-UsageRollupsByKey';
import { createDataSource, runMigrations } from '../src/database/data-source';
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
});
