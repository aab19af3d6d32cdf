import type { Pool, PoolClient } from 'pg';
import { createDataSource } from '../src/database/data-source';
import { createTestDatabase } from './helpers/test-database';
import { withAdminClient } from './setup/services';

/**
 * A connection the server drops while the app holds it outside a query runner (checked out from
 * the pool, between statements) must not end the process with an unheard `error` event: the
 * failure shows on the next query, and the pool goes on with new connections. Without the pool's
 * ListenedClient, pg's `error` event here has no listener and Jest fails the test as an uncaught
 * exception.
 */
describe('PostgreSQL connections dropped by the server', () => {
  it('a checked-out client that loses its connection fails its next query and the pool goes on', async () => {
    const db = await createTestDatabase();
    const dataSource = createDataSource(db.url);
    await dataSource.initialize();
    try {
      const pool = (dataSource.driver as unknown as { master: Pool }).master;
      const client: PoolClient = await pool.connect();
      const [{ pid }] = (await client.query('SELECT pg_backend_pid() AS pid')).rows;
      // Not events.once: it would listen for `error` itself.
      const ended = new Promise((resolve) => (client as unknown as NodeJS.EventEmitter).once('end', resolve));
      await withAdminClient(process.env.TEST_PG_SERVER_URL!, (admin) => admin.query('SELECT pg_terminate_backend($1)', [pid]));
      await ended;
      await expect(client.query('SELECT 1')).rejects.toThrow();
      client.release(new Error('connection lost'));
      expect(await dataSource.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    } finally {
      await dataSource.destroy();
      await db.drop();
    }
  });
});
