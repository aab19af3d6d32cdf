#!/usr/bin/env node
/**
 * `npm run sdk:generate`: generates a TypeScript client from the checked-in openapi.yaml with
 * @hey-api/openapi-ts into test/.generated/sdk (git-ignored), the way an integrator would. The SDK
 * round-trip test (test/sdk.e2e-spec.ts) runs this first, so the client always matches the document.
 *
 * Operations are nested by their dotted operationIds under one `Tally` class, so calls read like
 * MKA1's SDK: `new Tally({ client }).llm.budgets.setApiKey({ apiKeyId, setBudgetRequest })`.
 */
import { createClient } from '@hey-api/openapi-ts';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const SDK_DIR = resolve(root, 'test', '.generated', 'sdk');

await createClient({
  input: resolve(root, 'openapi.yaml'),
  output: { path: process.argv[2] ? resolve(process.argv[2]) : SDK_DIR, clean: true },
  logs: { level: 'warn', file: false },
  plugins: [
    '@hey-api/client-fetch',
    '@hey-api/typescript',
    {
      name: '@hey-api/sdk',
      operations: { strategy: 'single', containerName: 'Tally', nesting: 'operationId' },
      paramsStructure: 'flat',
    },
  ],
});
