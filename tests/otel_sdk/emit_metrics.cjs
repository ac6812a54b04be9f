// Emits the OpenTelemetry GenAI semantic conventions' histograms through the OpenTelemetry
// JavaScript SDK and its OTLP/HTTP metrics exporter (a client nobody here wrote), for
// test_otlp.c.
//   node emit_metrics.cjs URL N delta|cumulative [proto|json]
// proto (the default): @opentelemetry/exporter-metrics-otlp-proto; json:
// exporter-metrics-otlp-http (the JSON encoding).
// URL: the whole endpoint (http://127.0.0.1:4318/v1/metrics); the last argument is the
// exporter's temporalityPreference. Every histogram is an exponential one (max size 160,
// max scale 20: the SDK's defaults), in seconds, and gen_ai.client.token.usage in tokens.
// Request k (0-based), model k % 3 of the agent's defaults, attributes gen_ai.operation.name
// chat, gen_ai.request.model and gen_ai.response.model: an ok one (k % 10 != 9) records
// TTFT 0.05 + 0.001 k s, time per output token 0.002 + 0.00001 k s, duration TTFT + 0.5 +
// 0.002 k s, and token usage 100 (gen_ai.token.type input) and 50 (output); an error one
// (k % 10 == 9) only duration 0.3 s, with error.type 500 too.
// The requests go in three parts of about N/3, each followed by an export (the reader's
// interval is 60 s, so that no other export happens): three exports in all when N >= 3, the
// last one the provider's shutdown (a delta export without a point is not sent). Exits 0
// once the exporter reported every export a success (and, N > 0, made one), 1 otherwise.
'use strict';
const {
  MeterProvider, PeriodicExportingMetricReader, AggregationType, AggregationTemporality,
} = require('@opentelemetry/sdk-metrics');
const { OTLPMetricExporter } = require(process.argv[5] === 'json'
  ? '@opentelemetry/exporter-metrics-otlp-http'
  : '@opentelemetry/exporter-metrics-otlp-proto');

const url = process.argv[2];
const n = parseInt(process.argv[3], 10);
const mode = process.argv[4];
if (!url || !(n >= 0) || (mode !== 'delta' && mode !== 'cumulative')) {
  console.error('usage: node emit_metrics.cjs URL N delta|cumulative');
  process.exit(2);
}
const models = ['llama3.1-8b', 'llama3.1-70b', 'llama3.1-405b'];
// temporalityPreference takes an AggregationTemporality too (the proto package does not
// export AggregationTemporalityPreference); DELTA makes histograms delta.
const inner = new OTLPMetricExporter({
  url,
  temporalityPreference: mode === 'delta'
    ? AggregationTemporality.DELTA
    : AggregationTemporality.CUMULATIVE,
});
let sent = 0;
let failed = 0;
// Every export's result, so that a refusal fails the run instead of being logged only. The
// reader takes its temporality and aggregation from its exporter's selectors: passed on.
const exporter = {
  export(metrics, done) {
    sent++;
    inner.export(metrics, (r) => {
      if (r.code !== 0) {
        failed++;
        console.error('export failed:', r.error ? r.error.message : r.code);
      }
      done(r);
    });
  },
  selectAggregationTemporality(type) { return inner.selectAggregationTemporality(type); },
  selectAggregation(type) { return inner.selectAggregation(type); },
  shutdown() { return inner.shutdown(); },
  forceFlush() { return inner.forceFlush(); },
};
const histograms = [
  'gen_ai.server.time_to_first_token',
  'gen_ai.server.time_per_output_token',
  'gen_ai.server.request.duration',
  'gen_ai.client.token.usage',
];
const provider = new MeterProvider({
  views: histograms.map((instrumentName) => ({
    instrumentName,
    aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { maxSize: 160 } },
  })),
  readers: [new PeriodicExportingMetricReader({
    exporter,
    exportIntervalMillis: 60000,
    exportTimeoutMillis: 10000,
  })],
});
const meter = provider.getMeter('waferwatch-test');
const ttftH = meter.createHistogram('gen_ai.server.time_to_first_token', {
  unit: 's', description: 'Time to generate first token for successful responses',
});
const tpotH = meter.createHistogram('gen_ai.server.time_per_output_token', {
  unit: 's', description: 'Time per output token generated after the first token for successful responses',
});
const durationH = meter.createHistogram('gen_ai.server.request.duration', {
  unit: 's', description: 'Generative AI server request duration such as time-to-last byte or last output token',
});
const tokensH = meter.createHistogram('gen_ai.client.token.usage', {
  unit: '{token}', description: 'Measures number of input and output tokens used',
});

function record(k) {
  const model = models[k % 3];
  const attrs = {
    'gen_ai.operation.name': 'chat',
    'gen_ai.request.model': model,
    'gen_ai.response.model': model,
  };
  if (k % 10 === 9) {
    durationH.record(0.3, { ...attrs, 'error.type': '500' });
    return;
  }
  const ttft = 0.05 + 0.001 * k;
  ttftH.record(ttft, attrs);
  tpotH.record(0.002 + 0.00001 * k, attrs);
  durationH.record(ttft + 0.5 + 0.002 * k, attrs);
  tokensH.record(100, { ...attrs, 'gen_ai.token.type': 'input' });
  tokensH.record(50, { ...attrs, 'gen_ai.token.type': 'output' });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  for (let part = 0; part < 3; part++) {
    for (let k = Math.round((n * part) / 3); k < Math.round((n * (part + 1)) / 3); k++) {
      record(k);
    }
    if (part < 2) {
      await provider.forceFlush();
      await sleep(200);
    }
  }
  // The shutdown collects and exports once more: the third part's export (a forceFlush
  // before it would make a fourth, a repeat of the third in cumulative).
  await provider.shutdown();
  console.log(`sent ${n} requests in ${sent} ${mode} exports, ${failed} exports failed`);
  process.exit(failed || (n > 0 && !sent) ? 1 : 0);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
