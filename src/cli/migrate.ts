import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { createRootLogger } from '../common/logger';
import { loadConfig } from '../config/app-config';
import { createDataSource, pendingSchemaChanges, runMigrations } from '../database/data-source';
import { startEmbeddedPostgres } from '../database/embedded-postgres';

/**
 * `migrate run`: applies migrations to DATABASE_URL (unset: to the embedded database under DATA_DIR).
 * `migrate check`: fails when the entities need SQL the migrations do not have (CI's drift check).
 * `migrate generate Name`: writes migrations/<epoch>-<Name>.ts with that SQL.
 * check and generate work in a scratch database on the server of DATABASE_URL (default: local).
 */
const DEFAULT_SERVER = 'postgres://postgres@127.0.0.1:5432/postgres';
const MIGRATIONS_DIR = resolve(__dirname, '..', '..', '..', 'migrations');

async function withScratchDatabase<T>(work: (url: string) => Promise<T>): Promise<T> {
  const server = process.env.DATABASE_URL ?? DEFAULT_SERVER;
  const name = `tally_scratch_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: server });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  try {
    const url = new URL(server);
    url.pathname = `/${name}`;
    return await work(url.toString());
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

async function pending(url: string) {
  const dataSource = createDataSource(url);
  await dataSource.initialize();
  try {
    await runMigrations(dataSource);
    return await pendingSchemaChanges(dataSource);
  } finally {
    await dataSource.destroy();
  }
}

function pascal(name: string): string {
  return name.replace(/(^|[^A-Za-z0-9])([A-Za-z0-9])/g, (_m, _s, c: string) => c.toUpperCase());
}

function writeIndex(): void {
  const files = readdirSync(MIGRATIONS_DIR)
    .filter((f) => /^\d+-[A-Za-z0-9]+\.ts$/.test(f))
    .sort();
  const lines = files.map((f) => {
    const [stamp, name] = f.replace(/\.ts$/, '').split('-');
    return { file: f.replace(/\.ts$/, ''), cls: `${name}${stamp}` };
  });
  writeFileSync(
    join(MIGRATIONS_DIR, 'index.ts'),
    [
      '// Every migration, in order. `npm run migration:generate -- Name` adds new ones here.',
      ...lines.map((l) => `import { ${l.cls} } from './${l.file}';`),
      '',
      `export const MIGRATIONS: Function[] = [${lines.map((l) => l.cls).join(', ')}];`,
      '',
    ].join('\n'),
  );
}

async function main(): Promise<void> {
  const [command, name] = process.argv.slice(2);
  if (command === 'run') {
    // DATABASE_URL unset: the embedded database of `npm start` (SPEC §1), started for the run.
    const config = loadConfig(process.env);
    const embedded = config.databaseUrl ? undefined : await startEmbeddedPostgres(config.dataDir, createRootLogger('warn'));
    try {
      const dataSource = createDataSource(config.databaseUrl ?? embedded!.url);
      await dataSource.initialize();
      const applied = await runMigrations(dataSource).finally(() => dataSource.destroy());
      console.log(applied.length ? `Applied: ${applied.join(', ')}` : 'No pending migrations');
    } finally {
      await embedded?.stop();
    }
  } else if (command === 'check') {
    const { up } = await withScratchDatabase(pending);
    if (up.length > 0) {
      console.error(`Migrations do not match the entities; missing SQL:\n${up.join(';\n')};\nRun: npm run migration:generate -- Name`);
      process.exit(1);
    }
    console.log('Migrations match the entities');
  } else if (command === 'generate') {
    if (!name || !/^[A-Za-z][A-Za-z0-9]*$/.test(name)) throw new Error('Usage: migrate generate PascalName');
    const { up, down } = await withScratchDatabase(pending);
    if (up.length === 0) {
      console.log('Nothing to generate: migrations match the entities');
      return;
    }
    const stamp = Date.now();
    const cls = `${pascal(name)}${stamp}`;
    const q = (sql: string) => `    await queryRunner.query(\`${sql.replace(/[`\\]|\$\{/g, (m) => '\\' + m)}\`);`;
    writeFileSync(
      join(MIGRATIONS_DIR, `${stamp}-${pascal(name)}.ts`),
      [
        "import { MigrationInterface, QueryRunner } from 'typeorm';",
        '',
        `export class ${cls} implements MigrationInterface {`,
        `  name = '${cls}';`,
        '',
        '  async up(queryRunner: QueryRunner): Promise<void> {',
        ...up.map(q),
        '  }',
        '',
        '  async down(queryRunner: QueryRunner): Promise<void> {',
        ...down.reverse().map(q),
        '  }',
        '}',
        '',
      ].join('\n'),
    );
    writeIndex();
    console.log(`Wrote migrations/${stamp}-${pascal(name)}.ts`);
  } else {
    console.error('Usage: migrate run | check | generate Name');
    process.exit(2);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
