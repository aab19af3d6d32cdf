import { Client } from 'pg';

/** Where the suite finds PostgreSQL and Redis (real servers; see README "Tests"). */
export const PG_SERVER_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export function databaseUrl(server: string, name: string): string {
  const url = new URL(server);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function withAdminClient<T>(server: string, work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: server });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export async function pgAnswers(server: string): Promise<boolean> {
  try {
    await withAdminClient(server, (c) => c.query('SELECT 1'));
    return true;
  } catch {
    return false;
  }
}
