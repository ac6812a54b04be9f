/* ww_otlp_trace: the completion records in an OTLP trace export (issue 19: the requests of
 * an OpenTelemetry-instrumented inference server, without the simulator).
 *
 * The input is the body of an OTLP/HTTP POST /v1/traces in its protobuf encoding
 * (ExportTraceServiceRequest, proto/otlp/otlp_trace.proto: the specification's field
 * numbers). Each span named conf->span_name (vLLM: "llm_request") is one finished request,
 * read from its attributes as vLLM and the OpenTelemetry GenAI conventions write them:
 *
 *   e2e      (s, double or int) gen_ai.latency.e2e                 request arrived -> done
 *   ttft     (s)                gen_ai.latency.time_to_first_token arrived -> first token
 *   queue    (s)                gen_ai.latency.time_in_queue       arrived -> admitted
 *   output   (tokens, int)      gen_ai.usage.completion_tokens
 *   prompt   (tokens, int)      gen_ai.usage.prompt_tokens
 *   model    (string)           gen_ai.response.model, else gen_ai.request.model
 *
 * and becomes a ww_request_t: done = the span's end time, arrival = done - e2e, start =
 * arrival + queue, first token = arrival + ttft; status error when the span's status code is
 * ERROR (2), else ok. Times are rounded to the nearest ns. The agent's latency windows then
 * take TPOT as (done - first token) / (output - 1), as for every source.
 *
 * Nothing is made up: a span of that name without one of these attributes (or with one of
 * another type) is counted `incomplete` and left out; one whose values cannot be a request
 * (a latency negative, NaN or over WW_OTLP_MAX_LATENCY_S, queue > ttft > e2e out of order,
 * tokens negative or past uint32, no end time, a model name that is empty, longer than
 * WW_MODEL_NAME_MAX - 1 bytes or not clean UTF-8) is counted `invalid` and left out, with the
 * first reason kept for the reply's partial_success message. Spans of other names are
 * counted `other`.
 */
#ifndef WW_OTLP_TRACE_H
#define WW_OTLP_TRACE_H

#include "ww_reading.h"

#include <stddef.h>
#include <stdint.h>

/* A latency longer than a day is not a request's. */
#define WW_OTLP_MAX_LATENCY_S 86400.0

/* The span name and attribute keys read (the defaults: WW_OTLP_TRACE_CONF_VLLM). */
typedef struct {
    const char *span_name;
    const char *e2e, *ttft, *queue, *output_tokens, *prompt_tokens;
    const char *response_model, *request_model;
} ww_otlp_trace_conf_t;

#define WW_OTLP_TRACE_CONF_VLLM                                                                    \
    {                                                                                              \
        "llm_request", "gen_ai.latency.e2e", "gen_ai.latency.time_to_first_token",                 \
            "gen_ai.latency.time_in_queue", "gen_ai.usage.completion_tokens",                      \
            "gen_ai.usage.prompt_tokens", "gen_ai.response.model", "gen_ai.request.model"          \
    }

/* What one export held. */
typedef struct {
    uint64_t spans;      /* every span */
    uint64_t requests;   /* handed to the callback */
    uint64_t other;      /* another span name */
    uint64_t incomplete; /* the name, without an attribute a request needs */
    uint64_t invalid;    /* values that cannot be a request */
    char why[160];       /* the first incomplete or invalid span's reason; "" when none */
} ww_otlp_trace_counts_t;

/* Receives one request: its model name (NUL-terminated, checked clean; valid for the call)
 * and the record (r->model is 0: the caller maps the name to its model slot). */
typedef void (*ww_otlp_request_fn)(void *arg, const char *model, const ww_request_t *r);

/* Decodes body[0..len) and calls fn for every request span, in the order of the export.
 * Fills *counts. Returns 0; -EBADMSG when the body is not an ExportTraceServiceRequest
 * (OTLP/HTTP answers 400: nothing was taken); -ENOMEM. */
int ww_otlp_trace_decode(const uint8_t *body, size_t len, const ww_otlp_trace_conf_t *conf,
                         ww_otlp_request_fn fn, void *arg, ww_otlp_trace_counts_t *counts);

#endif
