/* fuzz_otlp_trace: libFuzzer target of the OTLP trace export decoder (proto/ww_otlp_trace.h):
 * the body of any POST to the agent's OTLP/HTTP intake.
 *
 * Each input is also read as the JSON encoding of an export (proto/ww_otlp_json.h), and
 * what that makes is decoded under the same checks; and as a metrics export (the body of
 * POST /v1/metrics, proto/ww_otlp_metrics.h), protobuf and JSON, each twice into one decoder
 * so that the second read meets the cumulative streams of the first.
 *
 * Invariants checked (a violation traps):
 *  - ww_otlp_trace_decode() returns 0 or -EBADMSG (never crashes, never reads out of
 *    bounds: ASan; -ENOMEM only when an allocation fails);
 *  - the counts add up: every span is a request, another name, incomplete or invalid, and
 *    the callback ran once per request;
 *  - every request handed over is one: a clean model name shorter than WW_MODEL_NAME_MAX,
 *    arrival <= start <= first token <= done;
 *  - ww_otlp_metrics_decode() returns 0, -EBADMSG or -ENOSPC (or -ENOMEM); every point it
 *    hands over is one: a clean model, a histogram that passes ww_hist_check at a scale no
 *    finer than the agent's, a count that is the histogram's, no empty point; the counts
 *    add up (taken = callbacks, refused + taken + other + baseline + repeated <= points).
 *
 * Built with -DFUZZ_OTLP_SEEDS it is instead the seed writer: `fuzz_otlp_trace_seeds DIR`
 * writes valid exports (vLLM request spans, another span, an incomplete one) as DIR/NAME.bin,
 * one in JSON as DIR/one.json, and metrics exports as DIR/metrics.bin and metrics.json.
 */
#include "otlp/otlp_trace.pb-c.h"
#include "ww_otlp_json.h"
#include "ww_otlp_metrics.h"
#include "ww_otlp_trace.h"
#include "ww_wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_otlp_trace: %s failed (line %d)\n", #cond, __LINE__);            \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

#ifndef FUZZ_OTLP_SEEDS
static const ww_otlp_trace_conf_t s_conf = WW_OTLP_TRACE_CONF_VLLM;

static void s_take(void *arg, const char *model, const ww_request_t *r)
{
    size_t len = strlen(model);
    CHECK(len > 0 && len < WW_MODEL_NAME_MAX && ww_wire_text_ok(model, len));
    CHECK(r->arrival_ns <= r->start_ns && r->start_ns <= r->first_token_ns &&
          r->first_token_ns <= r->done_ns);
    CHECK(r->status == WW_REQ_OK || r->status == WW_REQ_ERROR);
    (*(uint64_t *)arg)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Decodes one protobuf export and checks the counts. */
static void s_decode(const uint8_t *data, size_t size)
{
    uint64_t calls = 0;
    ww_otlp_trace_counts_t c;
    int rc = ww_otlp_trace_decode(data, size, &s_conf, s_take, &calls, &c);
    CHECK(rc == 0 || rc == -EBADMSG || rc == -ENOMEM);
    if (rc == 0) {
        CHECK(c.requests == calls);
        CHECK(c.spans == c.requests + c.other + c.incomplete + c.invalid);
    }
}

static void s_point(void *arg, const char *model, const ww_otlp_m_point_t *p)
{
    size_t len = strlen(model);
    CHECK(len > 0 && len < WW_MODEL_NAME_MAX && ww_wire_text_ok(model, len));
    if (p->kind == WW_OTLP_M_TOKENS) {
        CHECK(!p->hist && (p->prompt_tokens > 0 || p->output_tokens > 0));
    } else if (p->kind == WW_OTLP_M_ERRORS) {
        CHECK(!p->hist && p->count > 0);
    } else {
        CHECK(p->hist && ww_hist_check(p->hist) == 0 && p->hist->count == p->count &&
              p->count > 0 && p->hist->scale <= WW_HIST_DEFAULT_SCALE);
    }
    (*(uint64_t *)arg)++;
}

/* Reads the bytes as a metrics export, twice into one decoder. */
static void s_metrics(const uint8_t *data, size_t size)
{
    static const ww_otlp_metrics_conf_t conf = WW_OTLP_METRICS_CONF_GENAI;
    ww_otlp_metrics_t *m = ww_otlp_metrics_new(&conf, 0);
    if (!m) {
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        uint64_t calls = 0;
        ww_otlp_metrics_counts_t c;
        int rc = ww_otlp_metrics_decode(m, data, size, 100000, s_point, &calls, &c);
        CHECK(rc == 0 || rc == -EBADMSG || rc == -ENOSPC || rc == -ENOMEM);
        if (rc == 0) {
            CHECK(c.taken == calls);
            CHECK(c.taken + c.refused + c.other + c.baseline + c.repeated <= c.points);
            CHECK(c.refused == 0 || c.why[0] != '\0');
        }
    }
    ww_otlp_metrics_destroy(&m);
    ww_otlp_metrics_destroy(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_decode(data, size);
    s_metrics(data, size);
    /* The same bytes as a JSON body (ww_otlp_json.h): refused with a reason, or turned into
     * a protobuf export that the decoder reads under the same checks. */
    char *text = malloc(size + 1);
    if (!text) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    uint8_t *pb = NULL;
    size_t len = 0;
    char why[200] = "";
    int rc = ww_otlp_json_to_pb(text, &pb, &len, why, sizeof why);
    CHECK(rc == 0 || rc == -EBADMSG || rc == -ENOMEM);
    CHECK(rc == 0 || why[0] != '\0');
    if (rc == 0) {
        s_decode(pb, len);
    }
    free(pb);
    /* And as a metrics export in JSON. */
    pb = NULL;
    why[0] = '\0';
    rc = ww_otlp_json_metrics_to_pb(text, &pb, &len, why, sizeof why);
    CHECK(rc == 0 || rc == -EBADMSG || rc == -ENOMEM);
    CHECK(rc == 0 || why[0] != '\0');
    if (rc == 0) {
        s_metrics(pb, len);
    }
    free(pb);
    free(text);
    return 0;
}
#else
#include "otlp_spans.h"

/* Writes one export of n spans (tests/otlp_spans.h): vLLM requests with models m0.. and
 * status codes 0, 1, 2 in turn; with `other` the last is another span, with `incomplete` the
 * first lacks its model. */
static int s_write(const char *dir, const char *name, size_t n, int other, int incomplete)
{
    h_otlp_span_t sp[8];
    static char models[8][8];
    for (size_t i = 0; i < n; i++) {
        uint64_t end = UINT64_C(1795000000000000000) + i * 1000000;
        snprintf(models[i], sizeof models[i], "m%zu", i);
        if (other && i == n - 1) {
            h_otlp_span_init(&sp[i], "GET /health", end);
        } else {
            h_otlp_vllm(&sp[i], end, models[i], 1.5 + (double)i, 0.25, 0.125, (int64_t)(30 + i),
                        (int64_t)(40 + i));
        }
        if (incomplete && i == 0) {
            sp[i].span.n_attributes--; /* the model, added last */
        }
        sp[i].status.code = (int32_t)(i % 3);
    }
    size_t len;
    uint8_t *buf = h_otlp_pack(sp, n, &len);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    FILE *f = fopen(path, "wb");
    size_t w = f ? fwrite(buf, 1, len, f) : 0;
    int rc = f && fclose(f) == 0 && w == len ? 0 : -1;
    free(buf);
    return rc;
}

/* Writes a JSON export of one request span, as the OTLP/JSON encoding spells it. */
static int s_write_json(const char *dir)
{
    static const char json[] =
        "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
        "\"value\":{\"stringValue\":\"vllm\"}}]},\"scopeSpans\":[{\"spans\":[{\"name\":"
        "\"llm_request\",\"startTimeUnixNano\":\"1764720000000000000\",\"endTimeUnixNano\":"
        "\"1764720002500000000\",\"attributes\":[{\"key\":\"gen_ai.latency.e2e\",\"value\":"
        "{\"doubleValue\":2.5}},{\"key\":\"gen_ai.latency.time_to_first_token\",\"value\":"
        "{\"doubleValue\":0.3}},{\"key\":\"gen_ai.latency.time_in_queue\",\"value\":"
        "{\"doubleValue\":0.1}},{\"key\":\"gen_ai.usage.prompt_tokens\",\"value\":"
        "{\"intValue\":\"100\"}},{\"key\":\"gen_ai.usage.completion_tokens\",\"value\":"
        "{\"intValue\":50}},{\"key\":\"gen_ai.response.model\",\"value\":{\"stringValue\":"
        "\"m0\"}}],\"status\":{\"code\":\"STATUS_CODE_ERROR\"}}]}]}]}";
    char path[4096];
    snprintf(path, sizeof path, "%s/one.json", dir);
    FILE *f = fopen(path, "wb");
    if (!f) {
        return -1;
    }
    size_t w = fwrite(json, 1, sizeof json - 1, f);
    return fclose(f) == 0 && w == sizeof json - 1 ? 0 : -1;
}

#include "otlp/otlp_metrics.pb-c.h"

static int s_put(const char *dir, const char *name, const void *buf, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        return -1;
    }
    size_t w = fwrite(buf, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

/* Writes a metrics export (POST /v1/metrics): a delta TTFT point at scale 8, a cumulative
 * request duration with error.type, a token-usage histogram; and the same kinds in JSON. */
static int s_write_metrics(const char *dir)
{
    static uint64_t counts[] = {3, 0, 1, 4};
    Ww__Otlp__V1__AnyValue model = WW__OTLP__V1__ANY_VALUE__INIT,
                           err = WW__OTLP__V1__ANY_VALUE__INIT, out = WW__OTLP__V1__ANY_VALUE__INIT;
    model.value_case = err.value_case = out.value_case =
        WW__OTLP__V1__ANY_VALUE__VALUE_STRING_VALUE;
    model.string_value = (ProtobufCBinaryData){2, (uint8_t *)"m0"};
    err.string_value = (ProtobufCBinaryData){3, (uint8_t *)"500"};
    out.string_value = (ProtobufCBinaryData){6, (uint8_t *)"output"};
    Ww__Otlp__V1__KeyValue kv[3] = {WW__OTLP__V1__KEY_VALUE__INIT, WW__OTLP__V1__KEY_VALUE__INIT,
                                    WW__OTLP__V1__KEY_VALUE__INIT};
    kv[0].key = (ProtobufCBinaryData){21, (uint8_t *)"gen_ai.response.model"};
    kv[0].value = &model;
    kv[1].key = (ProtobufCBinaryData){10, (uint8_t *)"error.type"};
    kv[1].value = &err;
    kv[2].key = (ProtobufCBinaryData){17, (uint8_t *)"gen_ai.token.type"};
    kv[2].value = &out;
    Ww__Otlp__V1__KeyValue *a_model[] = {&kv[0]}, *a_err[] = {&kv[0], &kv[1]},
                           *a_tok[] = {&kv[0], &kv[2]};
    Ww__Otlp__V1__ExponentialHistogramDataPoint__Buckets b =
        WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__BUCKETS__INIT;
    b.offset = -600;
    b.n_bucket_counts = 4;
    b.bucket_counts = counts;
    Ww__Otlp__V1__ExponentialHistogramDataPoint p[2] = {
        WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__INIT,
        WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__INIT};
    for (int i = 0; i < 2; i++) {
        p[i].start_time_unix_nano = UINT64_C(1795000000000000000);
        p[i].time_unix_nano = UINT64_C(1795000060000000000);
        p[i].count = 9;
        p[i].sum_present_case = WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__SUM_PRESENT_SUM;
        p[i].sum = 1.5;
        p[i].scale = 8;
        p[i].zero_count = 1;
        p[i].positive = &b;
        p[i].min_present_case = WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__MIN_PRESENT_MIN;
        p[i].max_present_case = WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__MAX_PRESENT_MAX;
        p[i].min = 0;
        p[i].max = 0.2;
    }
    p[0].attributes = a_model;
    p[0].n_attributes = 1;
    p[1].attributes = a_err;
    p[1].n_attributes = 2;
    Ww__Otlp__V1__ExponentialHistogramDataPoint *pp0[] = {&p[0]}, *pp1[] = {&p[1]};
    Ww__Otlp__V1__ExponentialHistogram e[2] = {WW__OTLP__V1__EXPONENTIAL_HISTOGRAM__INIT,
                                               WW__OTLP__V1__EXPONENTIAL_HISTOGRAM__INIT};
    e[0].aggregation_temporality = 1;
    e[0].n_data_points = 1;
    e[0].data_points = pp0;
    e[1].aggregation_temporality = 2;
    e[1].n_data_points = 1;
    e[1].data_points = pp1;
    Ww__Otlp__V1__HistogramDataPoint hp = WW__OTLP__V1__HISTOGRAM_DATA_POINT__INIT;
    hp.attributes = a_tok;
    hp.n_attributes = 2;
    hp.start_time_unix_nano = UINT64_C(1795000000000000000);
    hp.time_unix_nano = UINT64_C(1795000060000000000);
    hp.count = 9;
    hp.sum_present_case = WW__OTLP__V1__HISTOGRAM_DATA_POINT__SUM_PRESENT_SUM;
    hp.sum = 450;
    Ww__Otlp__V1__HistogramDataPoint *hpp[] = {&hp};
    Ww__Otlp__V1__Histogram h = WW__OTLP__V1__HISTOGRAM__INIT;
    h.aggregation_temporality = 1;
    h.n_data_points = 1;
    h.data_points = hpp;
    Ww__Otlp__V1__Metric m[3] = {WW__OTLP__V1__METRIC__INIT, WW__OTLP__V1__METRIC__INIT,
                                 WW__OTLP__V1__METRIC__INIT};
    m[0].name = (ProtobufCBinaryData){33, (uint8_t *)"gen_ai.server.time_to_first_token"};
    m[0].data_case = WW__OTLP__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM;
    m[0].exponential_histogram = &e[0];
    m[1].name = (ProtobufCBinaryData){30, (uint8_t *)"gen_ai.server.request.duration"};
    m[1].data_case = WW__OTLP__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM;
    m[1].exponential_histogram = &e[1];
    m[2].name = (ProtobufCBinaryData){25, (uint8_t *)"gen_ai.client.token.usage"};
    m[2].data_case = WW__OTLP__V1__METRIC__DATA_HISTOGRAM;
    m[2].histogram = &h;
    Ww__Otlp__V1__Metric *mp[] = {&m[0], &m[1], &m[2]};
    Ww__Otlp__V1__ScopeMetrics sm = WW__OTLP__V1__SCOPE_METRICS__INIT;
    sm.n_metrics = 3;
    sm.metrics = mp;
    Ww__Otlp__V1__ScopeMetrics *smp[] = {&sm};
    Ww__Otlp__V1__ResourceMetrics rm = WW__OTLP__V1__RESOURCE_METRICS__INIT;
    rm.n_scope_metrics = 1;
    rm.scope_metrics = smp;
    Ww__Otlp__V1__ResourceMetrics *rmp[] = {&rm};
    Ww__Otlp__V1__ExportMetricsServiceRequest req =
        WW__OTLP__V1__EXPORT_METRICS_SERVICE_REQUEST__INIT;
    req.n_resource_metrics = 1;
    req.resource_metrics = rmp;
    uint8_t buf[2048];
    size_t len = ww__otlp__v1__export_metrics_service_request__get_packed_size(&req);
    if (len > sizeof buf) {
        return -1;
    }
    ww__otlp__v1__export_metrics_service_request__pack(&req, buf);
    static const char json[] =
        "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":"
        "\"gen_ai.server.time_per_output_token\",\"exponentialHistogram\":{"
        "\"aggregationTemporality\":\"AGGREGATION_TEMPORALITY_CUMULATIVE\",\"dataPoints\":[{"
        "\"attributes\":[{\"key\":\"gen_ai.request.model\",\"value\":{\"stringValue\":"
        "\"m1\"}}],\"startTimeUnixNano\":\"1795000000000000000\",\"timeUnixNano\":"
        "\"1795000060000000000\",\"count\":\"4\",\"sum\":0.01,\"scale\":6,\"positive\":"
        "{\"offset\":-560,\"bucketCounts\":[\"1\",\"0\",\"3\"]},\"min\":0.0023,"
        "\"max\":0.0025}]}}]}]}]}";
    return s_put(dir, "metrics.bin", buf, len) | s_put(dir, "metrics.json", json, sizeof json - 1);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_otlp_trace_seeds DIR\n");
        return 2;
    }
    int rc = s_write(argv[1], "one", 1, 0, 0) | s_write(argv[1], "three_other", 3, 1, 0) |
             s_write(argv[1], "incomplete", 4, 0, 1) | s_write(argv[1], "eight", 8, 1, 1) |
             s_write_json(argv[1]) | s_write_metrics(argv[1]);
    return rc ? 1 : 0;
}
#endif
