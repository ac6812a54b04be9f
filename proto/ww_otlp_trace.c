/* ww_otlp_trace: see ww_otlp_trace.h. */
#include "ww_otlp_trace.h"

#include "otlp/otlp_trace.pb-c.h"
#include "ww_otlp_pb.h"
#include "ww_wire.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Ww__Otlp__V1__KeyValue s_kv_t;
typedef Ww__Otlp__V1__AnyValue s_any_t;

/* The first reason of an export's refusals, kept in c->why. */
#define s_why(c, ...) ww_otlp_pb_why((c)->why, sizeof(c)->why, __VA_ARGS__)

/* A latency attribute in seconds (double, or int): 1 ok, 0 absent or of another type, -1 a
 * value that cannot be a latency. */
static int s_seconds(const s_any_t *v, double *s)
{
    if (!v) {
        return 0;
    }
    if (v->value_case == WW__OTLP__V1__ANY_VALUE__VALUE_DOUBLE_VALUE) {
        *s = v->double_value;
    } else if (v->value_case == WW__OTLP__V1__ANY_VALUE__VALUE_INT_VALUE) {
        *s = (double)v->int_value;
    } else {
        return 0;
    }
    return isfinite(*s) && *s >= 0 && *s <= WW_OTLP_MAX_LATENCY_S ? 1 : -1;
}

/* A token count attribute (int): 1 ok, 0 absent or of another type, -1 out of uint32. */
static int s_tokens(const s_any_t *v, uint32_t *t)
{
    if (!v || v->value_case != WW__OTLP__V1__ANY_VALUE__VALUE_INT_VALUE) {
        return 0;
    }
    if (v->int_value < 0 || v->int_value > (int64_t)UINT32_MAX) {
        return -1;
    }
    *t = (uint32_t)v->int_value;
    return 1;
}

/* Seconds to whole ns, rounded (s is checked: at most a day). */
static int64_t s_ns(double s)
{
    return (int64_t)llround(s * 1e9);
}

/* One span of the request name: the request, or why not. */
static void s_span(const Ww__Otlp__V1__Span *sp, const ww_otlp_trace_conf_t *conf,
                   ww_otlp_request_fn fn, void *arg, ww_otlp_trace_counts_t *c)
{
    s_kv_t *const *a = sp->attributes;
    size_t n = sp->n_attributes;
    double e2e = 0, ttft = 0, queue = 0;
    uint32_t out = 0, prompt = 0;
    const s_any_t *model = ww_otlp_pb_attr(a, n, conf->response_model);
    if (!model || model->value_case != WW__OTLP__V1__ANY_VALUE__VALUE_STRING_VALUE) {
        model = ww_otlp_pb_attr(a, n, conf->request_model);
    }
    const struct {
        const char *key;
        int got;
    } need[] = {
        {conf->e2e, s_seconds(ww_otlp_pb_attr(a, n, conf->e2e), &e2e)},
        {conf->ttft, s_seconds(ww_otlp_pb_attr(a, n, conf->ttft), &ttft)},
        {conf->queue, s_seconds(ww_otlp_pb_attr(a, n, conf->queue), &queue)},
        {conf->output_tokens, s_tokens(ww_otlp_pb_attr(a, n, conf->output_tokens), &out)},
        {conf->prompt_tokens, s_tokens(ww_otlp_pb_attr(a, n, conf->prompt_tokens), &prompt)},
        {conf->response_model,
         model && model->value_case == WW__OTLP__V1__ANY_VALUE__VALUE_STRING_VALUE ? 1 : 0},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        if (need[i].got == 0) {
            c->incomplete++;
            s_why(c, "span %s without attribute %s (or not of its type)", conf->span_name,
                  need[i].key);
            return;
        }
        if (need[i].got < 0) {
            c->invalid++;
            s_why(c, "span %s: attribute %s out of range", conf->span_name, need[i].key);
            return;
        }
    }
    const ProtobufCBinaryData *m = &model->string_value;
    if (m->len == 0 || m->len >= WW_MODEL_NAME_MAX ||
        !ww_wire_text_ok((const char *)m->data, m->len)) {
        c->invalid++;
        s_why(c, "span %s: model name empty, over %d bytes or not clean UTF-8", conf->span_name,
              WW_MODEL_NAME_MAX - 1);
        return;
    }
    if (!(queue <= ttft && ttft <= e2e)) {
        c->invalid++;
        s_why(c, "span %s: not queue <= ttft <= e2e (%g, %g, %g s)", conf->span_name, queue, ttft,
              e2e);
        return;
    }
    if (sp->end_time_unix_nano == 0 || sp->end_time_unix_nano > (uint64_t)INT64_MAX ||
        (int64_t)sp->end_time_unix_nano < s_ns(e2e)) {
        c->invalid++;
        s_why(c, "span %s: no end time, or one before its e2e", conf->span_name);
        return;
    }
    char name[WW_MODEL_NAME_MAX];
    memcpy(name, m->data, m->len);
    name[m->len] = '\0';
    ww_request_t r = {0};
    r.done_ns = (int64_t)sp->end_time_unix_nano;
    r.arrival_ns = r.done_ns - s_ns(e2e);
    r.start_ns = r.arrival_ns + s_ns(queue);
    r.first_token_ns = r.arrival_ns + s_ns(ttft);
    r.prompt_tokens = prompt;
    r.output_tokens = out;
    r.status = sp->status && sp->status->code == 2 ? WW_REQ_ERROR : WW_REQ_OK;
    c->requests++;
    fn(arg, name, &r);
}

int ww_otlp_trace_decode(const uint8_t *body, size_t len, const ww_otlp_trace_conf_t *conf,
                         ww_otlp_request_fn fn, void *arg, ww_otlp_trace_counts_t *counts)
{
    memset(counts, 0, sizeof *counts);
    bool oom = false;
    ProtobufCAllocator alloc = WW_OTLP_PB_ALLOCATOR(&oom);
    Ww__Otlp__V1__ExportTraceServiceRequest *req =
        ww__otlp__v1__export_trace_service_request__unpack(&alloc, len, body);
    if (!req) {
        return oom ? -ENOMEM : -EBADMSG;
    }
    size_t nlen = strlen(conf->span_name);
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        const Ww__Otlp__V1__ResourceSpans *rs = req->resource_spans[i];
        for (size_t k = 0; k < rs->n_scope_spans; k++) {
            const Ww__Otlp__V1__ScopeSpans *ss = rs->scope_spans[k];
            for (size_t s = 0; s < ss->n_spans; s++) {
                const Ww__Otlp__V1__Span *sp = ss->spans[s];
                counts->spans++;
                if (nlen == 0 || sp->name.len != nlen ||
                    memcmp(sp->name.data, conf->span_name, nlen) != 0) {
                    counts->other++;
                    continue;
                }
                s_span(sp, conf, fn, arg, counts);
            }
        }
    }
    ww__otlp__v1__export_trace_service_request__free_unpacked(req, &alloc);
    return 0;
}
