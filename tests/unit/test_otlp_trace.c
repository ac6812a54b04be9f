/* ww_otlp_trace: vLLM-shaped spans, as an OpenTelemetry SDK encodes them (built here with
 * the generated code of the subset, which has the specification's field numbers), into
 * completion records; what is not a request is counted, never made up. */
#include "ww_otlp_trace.h"

#include "otlp/otlp_trace.pb-c.h"
#include "otlp_spans.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define S_MAX_SPANS 16

static ProtobufCBinaryData s_bin(const char *s, size_t len)
{
    ProtobufCBinaryData b = {len, (uint8_t *)s};
    return b;
}

/* A vLLM request span: e2e 2.5 s, ttft 0.3 s, queue 0.1 s, 100 prompt and 50 output tokens. */
static void s_vllm(h_otlp_span_t *s, uint64_t end_ns, const char *model)
{
    h_otlp_vllm(s, end_ns, model, 2.5, 0.3, 0.1, 100, 50);
}

typedef struct {
    size_t n;
    char model[S_MAX_SPANS][WW_MODEL_NAME_MAX];
    ww_request_t r[S_MAX_SPANS];
} s_got_t;

static void s_take(void *arg, const char *model, const ww_request_t *r)
{
    s_got_t *g = arg;
    assert_true(g->n < S_MAX_SPANS);
    snprintf(g->model[g->n], sizeof g->model[0], "%s", model);
    g->r[g->n++] = *r;
}

static const ww_otlp_trace_conf_t s_conf = WW_OTLP_TRACE_CONF_VLLM;

static void test_vllm_spans_become_requests(void **state)
{
    (void)state;
    const uint64_t end = UINT64_C(1764720000123456789);
    h_otlp_span_t s[4];
    s_vllm(&s[0], end, "llama-3-70b");
    s_vllm(&s[1], end + 1000, "llama-3-8b");
    s[1].status.code = 2; /* ERROR */
    h_otlp_span_init(&s[2], "HTTP POST /v1/completions", end);
    /* Request model only, latencies as int seconds. */
    h_otlp_span_init(&s[3], "llm_request", end);
    h_otlp_int(&s[3], "gen_ai.latency.e2e", 4);
    h_otlp_int(&s[3], "gen_ai.latency.time_to_first_token", 1);
    h_otlp_int(&s[3], "gen_ai.latency.time_in_queue", 0);
    h_otlp_int(&s[3], "gen_ai.usage.prompt_tokens", 7);
    h_otlp_int(&s[3], "gen_ai.usage.completion_tokens", 1);
    h_otlp_str(&s[3], "gen_ai.request.model", "mixtral", 7);
    size_t len;
    uint8_t *buf = h_otlp_pack(s, 4, &len);
    s_got_t g = {0};
    ww_otlp_trace_counts_t c;
    assert_int_equal(ww_otlp_trace_decode(buf, len, &s_conf, s_take, &g, &c), 0);
    assert_int_equal(c.spans, 4);
    assert_int_equal(c.requests, 3);
    assert_int_equal(c.other, 1);
    assert_int_equal(c.incomplete + c.invalid, 0);
    assert_string_equal(c.why, "");
    assert_int_equal(g.n, 3);
    assert_string_equal(g.model[0], "llama-3-70b");
    const ww_request_t *r = &g.r[0];
    assert_true(r->done_ns == (int64_t)end);
    assert_true(r->arrival_ns == (int64_t)end - 2500000000);
    assert_true(r->start_ns == r->arrival_ns + 100000000);
    assert_true(r->first_token_ns == r->arrival_ns + 300000000);
    assert_int_equal(r->prompt_tokens, 100);
    assert_int_equal(r->output_tokens, 50);
    assert_int_equal(r->status, WW_REQ_OK);
    assert_int_equal(r->model, 0);
    assert_string_equal(g.model[1], "llama-3-8b");
    assert_int_equal(g.r[1].status, WW_REQ_ERROR);
    assert_string_equal(g.model[2], "mixtral");
    assert_true(g.r[2].arrival_ns == (int64_t)end - 4000000000);
    assert_true(g.r[2].first_token_ns == g.r[2].arrival_ns + 1000000000);
    assert_true(g.r[2].start_ns == g.r[2].arrival_ns);
    free(buf);
}

/* Each kind of span that is not a request, alone: counted, the first reason kept, nothing
 * handed over. */
static void test_what_is_not_a_request_is_counted(void **state)
{
    (void)state;
    const uint64_t end = UINT64_C(1764720000000000000);
    static const struct {
        const char *key; /* the attribute replaced (NULL: dropped, see below) */
        int how;         /* 0 drop, 1 negative, 2 NaN, 3 string, 4 too big */
        int invalid;     /* 1 invalid, 0 incomplete */
        const char *why;
    } cases[] = {
        {"gen_ai.latency.time_to_first_token", 0, 0, "without attribute gen_ai.latency.time_to"},
        {"gen_ai.latency.e2e", 1, 1, "gen_ai.latency.e2e out of range"},
        {"gen_ai.latency.time_in_queue", 2, 1, "gen_ai.latency.time_in_queue out of range"},
        {"gen_ai.usage.completion_tokens", 3, 0, "without attribute gen_ai.usage.completion"},
        {"gen_ai.usage.prompt_tokens", 4, 1, "gen_ai.usage.prompt_tokens out of range"},
        {"gen_ai.latency.e2e", 5, 1, "not queue <= ttft <= e2e"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        h_otlp_span_t s;
        s_vllm(&s, end, "m");
        for (size_t i = 0; i < s.span.n_attributes; i++) {
            if (s.kv[i].key.len != strlen(cases[k].key) ||
                memcmp(s.kv[i].key.data, cases[k].key, s.kv[i].key.len) != 0) {
                continue;
            }
            Ww__Otlp__V1__AnyValue *v = &s.v[i];
            switch (cases[k].how) {
            case 0:
                s.kv[i].key = s_bin("something.else", 14);
                break;
            case 1:
                v->double_value = -0.001;
                break;
            case 2:
                v->double_value = NAN;
                break;
            case 3:
                v->value_case = WW__OTLP__V1__ANY_VALUE__VALUE_STRING_VALUE;
                v->string_value = s_bin("50", 2);
                break;
            case 4:
                v->int_value = (int64_t)UINT32_MAX + 1;
                break;
            case 5:
                v->double_value = 0.2; /* e2e below ttft */
                break;
            }
        }
        size_t len;
        uint8_t *buf = h_otlp_pack(&s, 1, &len);
        s_got_t g = {0};
        ww_otlp_trace_counts_t c;
        assert_int_equal(ww_otlp_trace_decode(buf, len, &s_conf, s_take, &g, &c), 0);
        assert_int_equal(g.n, 0);
        assert_int_equal(c.requests, 0);
        assert_int_equal(c.invalid, cases[k].invalid);
        assert_int_equal(c.incomplete, !cases[k].invalid);
        if (!strstr(c.why, cases[k].why)) {
            fail_msg("case %zu: reason \"%s\" lacks \"%s\"", k, c.why, cases[k].why);
        }
        free(buf);
    }
    /* A model name with a NUL inside would be cut by a C string: refused whole. */
    h_otlp_span_t s;
    s_vllm(&s, end, "m");
    s.v[5].string_value = s_bin("llama\0evil", 10);
    size_t len;
    uint8_t *buf = h_otlp_pack(&s, 1, &len);
    s_got_t g = {0};
    ww_otlp_trace_counts_t c;
    assert_int_equal(ww_otlp_trace_decode(buf, len, &s_conf, s_take, &g, &c), 0);
    assert_int_equal(c.invalid, 1);
    assert_int_equal(g.n, 0);
    assert_non_null(strstr(c.why, "model name"));
    free(buf);
}

/* Bytes that are not an export are refused whole (400); every cut of a valid export either
 * decodes or is refused, never read past. */
static void test_bad_bytes_are_refused(void **state)
{
    (void)state;
    s_got_t g = {0};
    ww_otlp_trace_counts_t c;
    static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
    assert_int_equal(ww_otlp_trace_decode(junk, sizeof junk, &s_conf, s_take, &g, &c), -EBADMSG);
    assert_int_equal(ww_otlp_trace_decode(junk, 0, &s_conf, s_take, &g, &c), 0);
    assert_int_equal(c.spans, 0);
    h_otlp_span_t s[2];
    s_vllm(&s[0], UINT64_C(1764720000000000000), "a");
    s_vllm(&s[1], UINT64_C(1764720001000000000), "b");
    size_t len;
    uint8_t *buf = h_otlp_pack(s, 2, &len);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *part = malloc(cut ? cut : 1);
        assert_non_null(part);
        memcpy(part, buf, cut);
        g.n = 0;
        int rc = ww_otlp_trace_decode(part, cut, &s_conf, s_take, &g, &c);
        assert_true(rc == 0 || rc == -EBADMSG);
        assert_true(g.n <= 2);
        free(part);
    }
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vllm_spans_become_requests),
        cmocka_unit_test(test_what_is_not_a_request_is_counted),
        cmocka_unit_test(test_bad_bytes_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
