/* ww_otlp_json: OTLP/JSON exports as the specification writes them (lowerCamelCase, 64-bit
 * integers as strings) and as a proto3 JSON writer may (snake_case names, integers as
 * numbers, status codes by name) become the protobuf that ww_otlp_trace_decode reads, with
 * every value exact; what is not an export is refused with where. */
#include "ww_otlp_json.h"
#include "ww_otlp_metrics.h"
#include "ww_otlp_trace.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

typedef struct {
    size_t n;
    char model[4][WW_MODEL_NAME_MAX];
    ww_request_t r[4];
} s_got_t;

static void s_take(void *arg, const char *model, const ww_request_t *r)
{
    s_got_t *g = arg;
    assert_true(g->n < 4);
    snprintf(g->model[g->n], sizeof g->model[0], "%s", model);
    g->r[g->n++] = *r;
}

/* json through the converter and the decoder; returns the converter's result. */
static int s_read(const char *json, s_got_t *g, ww_otlp_trace_counts_t *c, char *why, size_t cap)
{
    uint8_t *pb = NULL;
    size_t len = 0;
    memset(g, 0, sizeof *g);
    int rc = ww_otlp_json_to_pb(json, &pb, &len, why, cap);
    if (rc == 0) {
        ww_otlp_trace_conf_t conf = WW_OTLP_TRACE_CONF_VLLM;
        assert_int_equal(ww_otlp_trace_decode(pb, len, &conf, s_take, g, c), 0);
    }
    free(pb);
    return rc;
}

static void test_both_spellings_are_read_exactly(void **state)
{
    (void)state;
    /* The specification's form, then a proto3 writer's: snake_case, numbers, code by name. */
    const char *json =
        "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
        "\"value\":{\"stringValue\":\"vllm\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"x\"},"
        "\"spans\":[{\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"name\":\"llm_request\","
        "\"kind\":2,\"startTimeUnixNano\":\"1764720000000000000\","
        "\"endTimeUnixNano\":\"1764720002123456789\",\"attributes\":["
        "{\"key\":\"gen_ai.latency.e2e\",\"value\":{\"doubleValue\":2.5}},"
        "{\"key\":\"gen_ai.latency.time_to_first_token\",\"value\":{\"doubleValue\":0.25}},"
        "{\"key\":\"gen_ai.latency.time_in_queue\",\"value\":{\"doubleValue\":\"0.125\"}},"
        "{\"key\":\"gen_ai.usage.prompt_tokens\",\"value\":{\"intValue\":\"100\"}},"
        "{\"key\":\"gen_ai.usage.completion_tokens\",\"value\":{\"intValue\":50}},"
        "{\"key\":\"gen_ai.response.model\",\"value\":{\"stringValue\":\"m\\u00e9\"}}],"
        "\"status\":{}}]}]},"
        "{\"scope_spans\":[{\"spans\":[{\"name\":\"llm_request\","
        "\"end_time_unix_nano\":1764720003000000001,\"attributes\":["
        "{\"key\":\"gen_ai.latency.e2e\",\"value\":{\"double_value\":1}},"
        "{\"key\":\"gen_ai.latency.time_to_first_token\",\"value\":{\"double_value\":0.5}},"
        "{\"key\":\"gen_ai.latency.time_in_queue\",\"value\":{\"double_value\":0}},"
        "{\"key\":\"gen_ai.usage.prompt_tokens\",\"value\":{\"int_value\":7}},"
        "{\"key\":\"gen_ai.usage.completion_tokens\",\"value\":{\"int_value\":\"3\"}},"
        "{\"key\":\"gen_ai.request.model\",\"value\":{\"string_value\":\"n\"}},"
        "{\"key\":\"other\",\"value\":{\"arrayValue\":{\"values\":[]}}}],"
        "\"status\":{\"code\":\"STATUS_CODE_ERROR\",\"message\":\"boom\"}}]}]}]}";
    s_got_t g;
    ww_otlp_trace_counts_t c;
    char why[200];
    assert_int_equal(s_read(json, &g, &c, why, sizeof why), 0);
    assert_int_equal(c.spans, 2);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.model[0], "m\xc3\xa9");
    /* The end time to the ns: read as an integer, never through a double. */
    assert_int_equal(g.r[0].done_ns, INT64_C(1764720002123456789));
    assert_int_equal(g.r[0].arrival_ns, INT64_C(1764720002123456789) - 2500000000);
    assert_int_equal(g.r[0].first_token_ns, g.r[0].arrival_ns + 250000000);
    assert_int_equal(g.r[0].start_ns, g.r[0].arrival_ns + 125000000);
    assert_int_equal(g.r[0].prompt_tokens, 100);
    assert_int_equal(g.r[0].output_tokens, 50);
    assert_int_equal(g.r[0].status, WW_REQ_OK);
    assert_string_equal(g.model[1], "n");
    assert_int_equal(g.r[1].done_ns, INT64_C(1764720003000000001));
    assert_int_equal(g.r[1].output_tokens, 3);
    assert_int_equal(g.r[1].status, WW_REQ_ERROR);
}

static void test_what_is_not_an_export_is_refused_with_where(void **state)
{
    (void)state;
    static const struct {
        const char *json, *why;
    } bad[] = {
        {"{\"resourceSpans\":[", "not JSON: line 1"},
        {"[]", "not an ExportTraceServiceRequest"},
        {"{\"resourceSpans\":{}}", "resourceSpans: not an array"},
        {"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"endTimeUnixNano\":\"1.5\"}]}]}]}",
         "resourceSpans[0].scopeSpans[0].spans[0].endTimeUnixNano: not a time"},
        {"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"endTimeUnixNano\":\"-1\"}]}]}]}",
         "endTimeUnixNano: not a time"},
        {"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"attributes\":[{\"key\":1}]}]}]}]}",
         "spans[0].attributes[0].key: not a string"},
        {"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"attributes\":[{\"key\":\"a\","
         "\"value\":{\"intValue\":\"9223372036854775808\"}}]}]}]}]}",
         "intValue: past int64"},
        {"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"status\":{\"code\":7}}]}]}]}",
         "status.code: not a status code"},
        {"{\"a\":1,\"a\":2}", "duplicate key"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_got_t g;
        ww_otlp_trace_counts_t c;
        char why[200] = "";
        if (s_read(bad[i].json, &g, &c, why, sizeof why) != -EBADMSG) {
            fail_msg("accepted %s", bad[i].json);
        }
        if (!strstr(why, bad[i].why)) {
            fail_msg("%s: \"%s\", expected \"%s\"", bad[i].json, why, bad[i].why);
        }
    }
    /* A body of more values than WW_OTLP_JSON_MAX_VALUES is refused before it costs more. */
    size_t n = WW_OTLP_JSON_MAX_VALUES + 1;
    char *big = malloc(2 * n + 64);
    assert_non_null(big);
    size_t len = (size_t)sprintf(big, "{\"x\":[");
    for (size_t i = 0; i < n; i++) {
        big[len++] = '0';
        big[len++] = ',';
    }
    strcpy(big + len, "0]}");
    s_got_t g;
    ww_otlp_trace_counts_t c;
    char why[200];
    assert_int_equal(s_read(big, &g, &c, why, sizeof why), -EBADMSG);
    assert_non_null(strstr(why, "more than"));
    free(big);
}

typedef struct {
    size_t n;
    char model[4][WW_MODEL_NAME_MAX];
    ww_otlp_m_point_t p[4];
    ww_hist_t h[4];
} s_mgot_t;

static void s_mtake(void *arg, const char *model, const ww_otlp_m_point_t *p)
{
    s_mgot_t *g = arg;
    assert_true(g->n < 4);
    snprintf(g->model[g->n], sizeof g->model[0], "%s", model);
    g->p[g->n] = *p;
    ww_hist_init(&g->h[g->n], p->hist ? p->hist->scale : 0);
    if (p->hist) {
        assert_int_equal(ww_hist_merge(&g->h[g->n], p->hist), 0);
    }
    g->n++;
}

/* A metrics export in JSON (both spellings, counts as strings or numbers, the temporality
 * by name or number) reads as its protobuf would: an exponential TTFT point at scale 7 taken
 * at 6, bucket by bucket; a token-usage point's sum; a gauge counted as another kind. */
static void test_metrics_are_read_exactly(void **state)
{
    (void)state;
    static const char json[] =
        "{\"resourceMetrics\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
        "\"value\":{\"stringValue\":\"vllm\"}}]},\"scopeMetrics\":[{\"metrics\":["
        "{\"name\":\"gen_ai.server.time_to_first_token\",\"unit\":\"s\","
        "\"exponentialHistogram\":{\"aggregationTemporality\":"
        "\"AGGREGATION_TEMPORALITY_DELTA\",\"dataPoints\":[{\"attributes\":[{\"key\":"
        "\"gen_ai.response.model\",\"value\":{\"stringValue\":\"m\"}}],"
        "\"startTimeUnixNano\":\"1795000000000000000\",\"timeUnixNano\":\"1795000001000000007\","
        "\"count\":\"5\",\"sum\":0.4022,\"scale\":7,\"zeroCount\":\"1\",\"positive\":"
        "{\"offset\":-426,\"bucketCounts\":[\"2\",0,\"2\"]},\"min\":0,\"max\":0.1011}]}},"
        "{\"name\":\"gen_ai.client.token.usage\",\"histogram\":{"
        "\"aggregation_temporality\":1,\"data_points\":[{\"attributes\":[{\"key\":"
        "\"gen_ai.request.model\",\"value\":{\"stringValue\":\"m\"}},{\"key\":"
        "\"gen_ai.token.type\",\"value\":{\"stringValue\":\"output\"}}],"
        "\"start_time_unix_nano\":1795000000000000000,\"time_unix_nano\":1795000001000000007,"
        "\"count\":3,\"sum\":1234}]}},"
        "{\"name\":\"vllm:num_requests_running\",\"gauge\":{\"dataPoints\":[]}}]}]}]}";
    uint8_t *pb = NULL;
    size_t len = 0;
    char why[200] = "";
    assert_int_equal(ww_otlp_json_metrics_to_pb(json, &pb, &len, why, sizeof why), 0);
    static const ww_otlp_metrics_conf_t conf = WW_OTLP_METRICS_CONF_GENAI;
    ww_otlp_metrics_t *d = ww_otlp_metrics_new(&conf, 0);
    assert_non_null(d);
    s_mgot_t g = {0};
    ww_otlp_metrics_counts_t c;
    assert_int_equal(ww_otlp_metrics_decode(d, pb, len, 100, s_mtake, &g, &c), 0);
    free(pb);
    if (c.refused) {
        fail_msg("refused: %s", c.why);
    }
    assert_int_equal(c.points, 3);
    assert_int_equal(c.other, 1);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.model[0], "m");
    assert_int_equal(g.p[0].kind, WW_OTLP_M_TTFT);
    assert_int_equal(g.p[0].time_ns, INT64_C(1795000001000000007));
    assert_int_equal(g.p[0].count, 5);
    /* Scale 7 buckets -426 and -424 are scale 6 buckets -213 and -212. */
    ww_hist_t *h = &g.h[0];
    assert_int_equal(h->scale, 6);
    assert_int_equal(h->zero_count, 1);
    assert_int_equal(h->counts[-213 - h->offset], 2);
    assert_int_equal(h->counts[-212 - h->offset], 2);
    assert_true(h->sum == 0.4022 && h->min == 0 && h->max == 0.1011);
    assert_int_equal(g.p[1].kind, WW_OTLP_M_TOKENS);
    assert_int_equal(g.p[1].output_tokens, 1234);
    assert_int_equal(g.p[1].prompt_tokens, 0);
    for (size_t i = 0; i < g.n; i++) {
        ww_hist_fini(&g.h[i]);
    }
    ww_otlp_metrics_destroy(&d);

    /* Wrong types are refused with where. */
    static const struct {
        const char *json, *where;
    } bad[] = {
        {"{\"resourceMetrics\":{}}", ".resourceMetrics: not an array"},
        {"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":1}]}]}]}",
         "resourceMetrics[0].scopeMetrics[0].metrics[0].name: not a string"},
        {"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":\"x\","
         "\"exponentialHistogram\":{\"aggregationTemporality\":7}}]}]}]}",
         "exponentialHistogram.aggregationTemporality: not a temporality"},
        {"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":\"x\","
         "\"exponentialHistogram\":{\"dataPoints\":[{\"positive\":{\"bucketCounts\":"
         "[\"-1\"]}}]}}]}]}]}",
         "dataPoints[0].positive.bucketCounts[0]: not a count"},
        {"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":\"x\","
         "\"exponentialHistogram\":{\"dataPoints\":[{\"scale\":4294967296}]}}]}]}]}",
         "dataPoints[0].scale: not a 32-bit integer"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        pb = NULL;
        assert_int_equal(ww_otlp_json_metrics_to_pb(bad[i].json, &pb, &len, why, sizeof why),
                         -EBADMSG);
        if (!strstr(why, bad[i].where)) {
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, why, bad[i].where);
        }
        free(pb);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_spellings_are_read_exactly),
        cmocka_unit_test(test_what_is_not_an_export_is_refused_with_where),
        cmocka_unit_test(test_metrics_are_read_exactly),
    };
    (void)argc;
    (void)argv;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
