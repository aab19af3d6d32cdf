import { resolve } from 'node:path';
import { inFreshProcess } from '../test/helpers/fresh-process';

describe('openapi module loading', () => {
  it('loads the project\'s js-yaml only when YAML is written (the CLI), not with the module an API process imports', () => {
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
    const out = inFreshProcess(script);
    expect(out).toEqual({ atLoad: false, yaml: "info:\n  title: t\n  version: '1'\nopenapi: 3.0.0\npaths: {}\n" });
  });
});
