// Emits vLLM-shaped llm_request spans through the OpenTelemetry JavaScript SDK and its
// OTLP/HTTP exporter (a client nobody here wrote), for test_otlp.c.
//   node emit_spans.cjs URL N proto|json
// proto: @opentelemetry/exporter-trace-otlp-proto; json: exporter-trace-otlp-http (JSON).
// Span k (0-based): TTFT 0.05 + 0.001 k s, e2e TTFT + 0.5 + 0.002 k s, queue 0.01 s,
// 100 prompt and 50 output tokens, model k % 3 of the agent's defaults, status ERROR for
// every tenth (k % 10 == 9); ending 100 ms before now, 1 us apart. Exits 0 once the
// exporter reported every export a success, 1 otherwise.
'use strict';
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { OTLPTraceExporter } = require(process.argv[4] === 'json'
  ? '@opentelemetry/exporter-trace-otlp-http'
  : '@opentelemetry/exporter-trace-otlp-proto');
const { SpanStatusCode } = require('@opentelemetry/api');

const url = process.argv[2];
const n = parseInt(process.argv[3], 10);
const models = ['llama3.1-8b', 'llama3.1-70b', 'llama3.1-405b'];
const inner = new OTLPTraceExporter({ url });
let failed = 0;
// Every export's result, so that a refusal fails the run instead of being logged only.
const exporter = {
  export(spans, done) {
    inner.export(spans, (r) => {
      if (r.code !== 0) {
        failed++;
        console.error('export failed:', r.error ? r.error.message : r.code);
      }
      done(r);
    });
  },
  shutdown() { return inner.shutdown(); },
  forceFlush() { return inner.forceFlush ? inner.forceFlush() : Promise.resolve(); },
};
const provider = new BasicTracerProvider({
  spanProcessors: [new BatchSpanProcessor(exporter, { maxExportBatchSize: 128, scheduledDelayMillis: 100 })],
});
const tracer = provider.getTracer('waferwatch-test');
const now = Date.now();
for (let k = 0; k < n; k++) {
  const ttft = 0.05 + 0.001 * k;
  const e2e = ttft + 0.5 + 0.002 * k;
  const end = now - 100 + k * 0.001; // ms since 1970
  const span = tracer.startSpan('llm_request', {
    startTime: end - e2e * 1000,
    attributes: {
      'gen_ai.latency.e2e': e2e,
      'gen_ai.latency.time_to_first_token': ttft,
      'gen_ai.latency.time_in_queue': 0.01,
      'gen_ai.usage.prompt_tokens': 100,
      'gen_ai.usage.completion_tokens': 50,
      'gen_ai.response.model': models[k % 3],
    },
  });
  if (k % 10 === 9) {
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end(end);
}
provider.forceFlush()
  .then(() => provider.shutdown())
  .then(() => {
    console.log(`sent ${n} spans, ${failed} exports failed`);
    process.exit(failed ? 1 : 0);
  })
  .catch((e) => {
    console.error(e);
    process.exit(1);
  });
