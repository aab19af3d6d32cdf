import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

const ROOT = resolve(__dirname, '..');

describe('openapi module loading', () => {
  it('loads the project\'s js-yaml only when YAML is written (the CLI), not with the module an API process imports', () => {
    // A fresh process: what a module loads shows in its own require.cache.
    const script = `
      const openapi = require(${JSON.stringify(resolve(__dirname, 'openapi.ts'))});
      // The project's own js-yaml (@nestjs/swagger loads its nested copy at import, whatever we do).
      const loaded = () => Object.keys(require.cache).some((k) => k.startsWith(${JSON.stringify(resolve(ROOT, 'node_modules', 'js-yaml') + '/')}));
      const atLoad = loaded();
      const yaml = openapi.toStableYaml({ openapi: '3.0.0', paths: {}, info: { title: 't', version: '1' } });
      process.stdout.write(JSON.stringify({ atLoad, afterYaml: loaded(), yaml }));
    `;
    const out = JSON.parse(execFileSync(process.execPath, ['-r', resolve(ROOT, 'test/helpers/swc-register.js'), '-e', script], { cwd: ROOT, encoding: 'utf8' }));
    expect(out).toEqual({ atLoad: false, afterYaml: true, yaml: "info:\n  title: t\n  version: '1'\nopenapi: 3.0.0\npaths: {}\n" });
  });
});
