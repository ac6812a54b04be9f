/* otlp_spans: OTLP trace exports built for tests and benchmarks (the unit test of
 * ww_otlp_trace, the agent's receiver end to end, bench_otlp): spans with attributes as
 * vLLM writes them, packed into an ExportTraceServiceRequest with the protoc-c code of
 * proto/otlp/otlp_trace.proto. Out of memory or a span of too many attributes aborts. */
#ifndef WW_OTLP_SPANS_H
#define WW_OTLP_SPANS_H

#include "otlp/otlp_trace.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define H_OTLP_MAX_ATTRS 8

/* One span and its storage; strings are borrowed (they must outlive the packing). */
typedef struct {
    Ww__Otlp__V1__Span span;
    Ww__Otlp__V1__Status status;
    Ww__Otlp__V1__KeyValue kv[H_OTLP_MAX_ATTRS];
    Ww__Otlp__V1__AnyValue v[H_OTLP_MAX_ATTRS];
    Ww__Otlp__V1__KeyValue *kvp[H_OTLP_MAX_ATTRS];
} h_otlp_span_t;

/* A span named name, ending at end_ns, started 3 s before, status unset, no attribute. */
void h_otlp_span_init(h_otlp_span_t *s, const char *name, uint64_t end_ns);

/* Adds an attribute of each type (the span may hold H_OTLP_MAX_ATTRS). */
void h_otlp_double(h_otlp_span_t *s, const char *key, double x);
void h_otlp_int(h_otlp_span_t *s, const char *key, int64_t x);
void h_otlp_str(h_otlp_span_t *s, const char *key, const char *x, size_t len);

/* A vLLM request span (llm_request) with these values, in seconds and tokens. */
void h_otlp_vllm(h_otlp_span_t *s, uint64_t end_ns, const char *model, double e2e, double ttft,
                 double queue, int64_t prompt, int64_t output);

/* Packs spans into one export (one resource, one scope); returns malloc'd bytes. */
uint8_t *h_otlp_pack(h_otlp_span_t *spans, size_t n, size_t *len);

#endif
