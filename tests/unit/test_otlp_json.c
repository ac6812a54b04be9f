/* ww_otlp_json: OTLP/JSON exports as the specification writes them (lowerCamelCase, 64-bit
 * integers as strings) and as a proto3 JSON writer may (snake_case names, integers as
 * numbers, status codes by name) become the protobuf that ww_otlp_trace_decode reads, with
 * every value exact; what is not an export is refused with where. */
#include "ww_otlp_json.h"
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

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_spellings_are_read_exactly),
        cmocka_unit_test(test_what_is_not_an_export_is_refused_with_where),
    };
    (void)argc;
    (void)argv;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
