import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

const ROOT = resolve(__dirname, '..');

describe('openapi module loading', () => {
  it('loads the project\'s js-yaml only when YAML is written (the CLI), not with the module an API process imports', () => {
    // A fresh process: what a module loads shows in its own require.cache.
    const script = `
      const openapi = require(${JSON.stringify(resolve(__dirname, 'openapi.ts'))});
      // Whether this module itself required js-yaml (the first module to require one is its parent;
      // @nestjs/swagger loads a js-yaml of its own at import, deduplicated with ours or not).
      const openapiPath = ${JSON.stringify(resolve(__dirname, 'openapi.ts'))};
      const loaded = () => Object.values(require.cache).some((m) => m && /node_modules\\/js-yaml\\//.test(m.id) && m.parent && m.parent.id === openapiPath);
      const atLoad = loaded();
      const yaml = openapi.toStableYaml({ openapi: '3.0.0', paths: {}, info: { title: 't', version: '1' } });
      process.stdout.write(JSON.stringify({ atLoad, yaml }));
    `;
    const out = JSON.parse(execFileSync(process.execPath, ['-r', resolve(ROOT, 'test/helpers/swc-register.js'), '-e', script], { cwd: ROOT, encoding: 'utf8' }));
    expect(out).toEqual({ atLoad: false, yaml: "info:\n  title: t\n  version: '1'\nopenapi: 3.0.0\npaths: {}\n" });
  });
});
