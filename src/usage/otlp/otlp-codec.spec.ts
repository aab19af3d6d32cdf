import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..', '..');

describe('OTLP codec loading', () => {
  it('loads the protobuf definitions on the first protobuf use, not with the module (nor for OTLP/JSON)', () => {
    // A fresh process: what a module loads shows in its own require.cache.
    const script = `
      const codec = require(${JSON.stringify(resolve(__dirname, 'otlp-codec.ts'))});
      const loaded = () => Object.keys(require.cache).some((k) => k.includes('otlp-transformer/build/src/generated/root'));
      const atLoad = loaded();
      codec.decodeTraceRequest({ resourceSpans: [] }, 'json');
      const afterJson = loaded();
      const response = codec.encodeTraceResponse({ rejectedSpans: 1, errorMessage: 'x' }, 'protobuf');
      process.stdout.write(JSON.stringify({ atLoad, afterJson, afterProtobuf: loaded(), bytes: response.length }));
    `;
    const out = execFileSync(process.execPath, ['-r', resolve(ROOT, 'test/helpers/swc-register.js'), '-e', script], { cwd: ROOT, encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual({ atLoad: false, afterJson: false, afterProtobuf: true, bytes: expect.any(Number) });
    expect(JSON.parse(out).bytes).toBeGreaterThan(0);
  });
});
