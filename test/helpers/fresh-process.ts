import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..');

/**
 * Runs `script` in a fresh Node process that loads TypeScript sources (no build needed) and
 * returns the JSON it writes to stdout: what a module loads shows in that process's own
 * require.cache, untouched by Jest's module registry.
 */
export function inFreshProcess(script: string): unknown {
  const out = execFileSync(process.execPath, ['-r', resolve(ROOT, 'test/helpers/swc-register.js'), '-e', script], { cwd: ROOT, encoding: 'utf8' });
  return JSON.parse(out);
}
