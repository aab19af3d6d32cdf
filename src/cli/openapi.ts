import 'reflect-metadata';
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import pino from 'pino';
import { loadConfig } from '../config/app-config';
import { createHttpApp } from '../http-app';
import { buildOpenApiDocument, toStableYaml } from '../openapi';

/** Where the checked-in document lives: the repository root. */
export const OPENAPI_FILE = resolve(__dirname, '..', '..', '..', 'openapi.yaml');

/**
 * Generates the OpenAPI document from the decorators without connecting to anything
 * (Nest's preview mode builds the module graph but no providers).
 */
export async function generateOpenApiYaml(): Promise<string> {
  const config = loadConfig({ DATABASE_URL: 'postgres://unused@127.0.0.1:1/unused', SECRETS_KEY: '00'.repeat(32), PROCESS_ROLE: 'api' });
  const app = await createHttpApp(config, pino({ level: 'silent' }), { preview: true });
  try {
    return toStableYaml(buildOpenApiDocument(app));
  } finally {
    await app.close();
  }
}

async function main(): Promise<void> {
  const command = process.argv[2];
  const yaml = await generateOpenApiYaml();
  if (command === 'write') {
    writeFileSync(OPENAPI_FILE, yaml);
    console.log(`Wrote ${OPENAPI_FILE}`);
  } else if (command === 'check') {
    let current = '';
    try {
      current = readFileSync(OPENAPI_FILE, 'utf8');
    } catch {
      // missing counts as stale
    }
    if (current !== yaml) {
      console.error('openapi.yaml is stale: run `npm run openapi` and commit the result');
      process.exit(1);
    }
    console.log('openapi.yaml matches the code');
  } else {
    console.error('Usage: openapi write | check');
    process.exit(2);
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
