import { resolve } from 'node:path';
import { inFreshProcess } from '../../../test/helpers/fresh-process';

describe('OTLP codec loading', () => {
  it('loads the protobuf definitions on the first protobuf use, not with the module (nor for OTLP/JSON)', () => {
    const script = `
      const codec = require(${JSON.stringify(resolve(__dirname, 'otlp-codec.ts'))});
      const loaded = () => Object.keys(require.cache).some((k) => k.includes('otlp-transformer/build/src/generated/root'));
      const atLoad = loaded();
      codec.decodeTraceRequest({ resourceSpans: [] }, 'json');
      const afterJson = loaded();
      const response = codec.encodeTraceResponse({ rejectedSpans: 1, errorMessage: 'x' }, 'protobuf');
      process.stdout.write(JSON.stringify({ atLoad, afterJson, afterProtobuf: loaded(), bytes: response.length }));
    `;
    const out = inFreshProcess(script) as { bytes: number };
    expect(out).toEqual({ atLoad: false, afterJson: false, afterProtobuf: true, bytes: expect.any(Number) });
    expect(out.bytes).toBeGreaterThan(0);
  });
});
