/* otlp_spans: see otlp_spans.h. */
#include "otlp_spans.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* For tests and benchmarks alike (no cmocka): a broken invariant aborts with where. */
#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: %s failed\n", __FILE__, __LINE__, #cond);                      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static ProtobufCBinaryData s_bin(const char *s, size_t len)
{
    ProtobufCBinaryData b = {len, (uint8_t *)s};
    return b;
}

void h_otlp_span_init(h_otlp_span_t *s, const char *name, uint64_t end_ns)
{
    Ww__Otlp__V1__Span sp = WW__OTLP__V1__SPAN__INIT;
    Ww__Otlp__V1__Status st = WW__OTLP__V1__STATUS__INIT;
    s->span = sp;
    s->status = st;
    s->span.name = s_bin(name, strlen(name));
    s->span.start_time_unix_nano = end_ns - 3000000000u;
    s->span.end_time_unix_nano = end_ns;
    s->span.attributes = s->kvp;
    s->span.status = &s->status;
}

static Ww__Otlp__V1__AnyValue *s_add(h_otlp_span_t *s, const char *key)
{
    size_t i = s->span.n_attributes++;
    S_CHECK(i < H_OTLP_MAX_ATTRS);
    Ww__Otlp__V1__KeyValue kv = WW__OTLP__V1__KEY_VALUE__INIT;
    Ww__Otlp__V1__AnyValue v = WW__OTLP__V1__ANY_VALUE__INIT;
    s->kv[i] = kv;
    s->v[i] = v;
    s->kv[i].key = s_bin(key, strlen(key));
    s->kv[i].value = &s->v[i];
    s->kvp[i] = &s->kv[i];
    return &s->v[i];
}

void h_otlp_double(h_otlp_span_t *s, const char *key, double x)
{
    Ww__Otlp__V1__AnyValue *v = s_add(s, key);
    v->value_case = WW__OTLP__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    v->double_value = x;
}

void h_otlp_int(h_otlp_span_t *s, const char *key, int64_t x)
{
    Ww__Otlp__V1__AnyValue *v = s_add(s, key);
    v->value_case = WW__OTLP__V1__ANY_VALUE__VALUE_INT_VALUE;
    v->int_value = x;
}

void h_otlp_str(h_otlp_span_t *s, const char *key, const char *x, size_t len)
{
    Ww__Otlp__V1__AnyValue *v = s_add(s, key);
    v->value_case = WW__OTLP__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = s_bin(x, len);
}

void h_otlp_vllm(h_otlp_span_t *s, uint64_t end_ns, const char *model, double e2e, double ttft,
                 double queue, int64_t prompt, int64_t output)
{
    h_otlp_span_init(s, "llm_request", end_ns);
    h_otlp_double(s, "gen_ai.latency.e2e", e2e);
    h_otlp_double(s, "gen_ai.latency.time_to_first_token", ttft);
    h_otlp_double(s, "gen_ai.latency.time_in_queue", queue);
    h_otlp_int(s, "gen_ai.usage.prompt_tokens", prompt);
    h_otlp_int(s, "gen_ai.usage.completion_tokens", output);
    h_otlp_str(s, "gen_ai.response.model", model, strlen(model));
}

uint8_t *h_otlp_pack(h_otlp_span_t *spans, size_t n, size_t *len)
{
    Ww__Otlp__V1__Span **sp = calloc(n ? n : 1, sizeof *sp);
    S_CHECK(sp != NULL);
    for (size_t i = 0; i < n; i++) {
        sp[i] = &spans[i].span;
    }
    Ww__Otlp__V1__ScopeSpans ss = WW__OTLP__V1__SCOPE_SPANS__INIT;
    ss.spans = sp;
    ss.n_spans = n;
    Ww__Otlp__V1__ScopeSpans *ssp = &ss;
    Ww__Otlp__V1__ResourceSpans rs = WW__OTLP__V1__RESOURCE_SPANS__INIT;
    rs.scope_spans = &ssp;
    rs.n_scope_spans = 1;
    Ww__Otlp__V1__ResourceSpans *rsp = &rs;
    Ww__Otlp__V1__ExportTraceServiceRequest req = WW__OTLP__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    req.resource_spans = &rsp;
    req.n_resource_spans = 1;
    *len = ww__otlp__v1__export_trace_service_request__get_packed_size(&req);
    uint8_t *buf = malloc(*len ? *len : 1);
    S_CHECK(buf != NULL);
    S_CHECK(ww__otlp__v1__export_trace_service_request__pack(&req, buf) == *len);
    free(sp);
    return buf;
}
