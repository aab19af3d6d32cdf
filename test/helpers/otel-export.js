// Exports GenAI spans to Tally with the real OpenTelemetry JS SDK, in a plain Node process (the
// SDK's exporters load `http` with a dynamic import(), which Jest's module sandbox cannot run).
// Input (argv[2], JSON): {url, authorization, resource, spans: [{name, attributes, end}], exporters: ["proto"|"json"|"proto-gzip", ...]}.
// Output (stdout, JSON): {spans: [{traceId, spanId}], exports: [{exporter, code, error, warnings}]}.
const { diag, DiagLogLevel } = require('@opentelemetry/api');
const { OTLPTraceExporter: ProtoExporter } = require('@opentelemetry/exporter-trace-otlp-proto');
const { OTLPTraceExporter: JsonExporter } = require('@opentelemetry/exporter-trace-otlp-http');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');

async function main() {
  const input = JSON.parse(process.argv[2]);
  const warnings = [];
  const record = (...args) => warnings.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
  diag.setLogger({ error: record, warn: record, info: () => {}, debug: () => {}, verbose: () => {} }, DiagLogLevel.WARN);

  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ resource: resourceFromAttributes(input.resource), spanProcessors: [new SimpleSpanProcessor(memory)] });
  const tracer = provider.getTracer('tally-test', '1.0.0');
  for (const spec of input.spans) {
    const span = tracer.startSpan(spec.name, { attributes: spec.attributes, startTime: new Date((spec.end - 2) * 1000) });
    span.end(new Date(spec.end * 1000));
  }
  const spans = memory.getFinishedSpans();

  // Configured as a user would: the URL and the Authorization header, nothing else (gzip aside).
  const options = { url: input.url, headers: { Authorization: input.authorization } };
  const make = {
    proto: () => new ProtoExporter(options),
    json: () => new JsonExporter(options),
    'proto-gzip': () => new ProtoExporter({ ...options, compression: 'gzip' }),
    // Nothing in code: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and OTEL_EXPORTER_OTLP_TRACES_HEADERS, as the README says.
    'proto-env': () => new ProtoExporter(),
  };
  const exports = [];
  for (const name of input.exporters) {
    warnings.length = 0;
    const exporter = make[name]();
    const result = await new Promise((resolve) => exporter.export(spans, resolve));
    await exporter.shutdown();
    exports.push({ exporter: name, code: result.code, error: result.error ? String(result.error.message) : null, warnings: [...warnings] });
  }
  process.stdout.write(JSON.stringify({ spans: spans.map((s) => s.spanContext()).map(({ traceId, spanId }) => ({ traceId, spanId })), exports }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
