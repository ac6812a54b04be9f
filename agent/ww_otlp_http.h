/* ww_otlp_http: the agent's OTLP/HTTP receiver (issue 19). An OpenTelemetry-instrumented
 * inference server (vLLM: --otlp-traces-endpoint http://127.0.0.1:4318/v1/traces) POSTs its
 * spans here, and its GenAI metrics to /v1/metrics: every request span becomes a completion
 * record for the agent's latency windows (proto/ww_otlp_trace.h says which spans, which
 * attributes and how), every data point of the GenAI latency and token metrics an aggregate
 * merged into them (proto/ww_otlp_metrics.h).
 *
 * What the OTLP/HTTP specification asks of a server, for POST /v1/traces and /v1/metrics:
 *   - protobuf bodies (Content-Type application/x-protobuf) and JSON ones
 *     (application/json, proto/ww_otlp_json.h), plain or gzip (Content-Encoding gzip);
 *     every reply in the request's encoding;
 *   - 200 with an Export{Trace,Metrics}ServiceResponse; when spans or points were
 *     refused, its partial_success holds how many and the first reason (a request span
 *     without an attribute it needs, values that cannot be a request, a point without a
 *     model, an explicit-bucket latency histogram, a model that is not one of the agent's,
 *     an end time over 60 s ahead of the agent's clock or over a day behind it);
 *   - 400 with a Status (google.rpc.Status's code and message) for a body that is not an
 *     export (not JSON, a field of the wrong type: the message says where) or not gzip; 413
 *     for a body (or its decompression) over max_body; 415 for another content type or
 *     encoding; 404 for another path, 405 for another method; the exporter does not retry
 *     these;
 *   - 503 with Retry-After when the records (or points) waiting for the agent would pass
 *     max_queue: the exporter retries the whole export later, so nothing it was told was
 *     taken is dropped, and memory stays bounded however fast spans come. (A cumulative
 *     metric point refused so is taken when retried: the queue's room is checked before
 *     the export is decoded, so its streams' baselines move only with an export that is
 *     queued; out of memory, a 503 too, is the exception: the retry of an export half
 *     decoded then adds only what came after it.)
 *
 * Threads: libmicrohttpd's thread reads, decompresses, decodes and queues; the agent's
 * thread takes the records (ww_otlp_http_take) when ww_otlp_http_fd is readable. The
 * records of one export are queued in completion order (done_ns), and the model name of
 * each span is already its slot among conf->models.
 */
#ifndef WW_OTLP_HTTP_H
#define WW_OTLP_HTTP_H

#include "ww_otlp_metrics.h"
#include "ww_otlp_trace.h"
#include "ww_reading.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ww_otlp_http ww_otlp_http_t;

/* A span or point that ends more than this after the agent's clock, or more than
 * WW_OTLP_MAX_BEHIND_NS before it, is refused (partial_success): its window would be one the
 * collector refuses (ingest.max_future, ingest.max_past), costing the batch's samples. */
#define WW_OTLP_MAX_AHEAD_NS (INT64_C(60) * 1000000000)
#define WW_OTLP_MAX_BEHIND_NS (INT64_C(24) * 3600 * 1000000000)

typedef struct {
    const char *listen; /* HOST:PORT (port 0: any free one, ww_otlp_http_port tells) */
    size_t max_body;    /* bytes of a body, and of it decompressed */
    size_t max_queue;   /* records waiting for the agent before 503 */
    /* The agent's model slots by name: a request's model must be one of them. */
    const char *const *models;
    size_t n_models;
    ww_otlp_trace_conf_t trace;
    ww_otlp_metrics_conf_t metrics;
    int64_t since_ns; /* the agent's start: older cumulative streams are only a baseline */
} ww_otlp_http_conf_t;

/* One metric data point taken for the latency windows (POST /v1/metrics). */
typedef struct {
    unsigned model; /* its slot among conf->models */
    ww_otlp_m_kind_t kind;
    int64_t time_ns;
    uint64_t count, prompt_tokens, output_tokens;
    ww_hist_t hist; /* TTFT, TPOT, E2E; owned: the taker frees it (ww_hist_fini) */
} ww_otlp_agg_t;

/* Counters since the start (any thread). */
typedef struct {
    uint64_t exports;        /* POSTs to /v1/traces answered 200 */
    uint64_t spans;          /* spans in them */
    uint64_t requests;       /* request spans queued for the latency windows */
    uint64_t refused;        /* request spans refused: incomplete, invalid or unknown model */
    uint64_t bad_request;    /* 400 */
    uint64_t too_large;      /* 413 */
    uint64_t unsupported;    /* 404, 405, 415 */
    uint64_t overloaded;     /* 503: the queue was full */
    uint64_t metric_exports; /* POSTs to /v1/metrics answered 200 */
    uint64_t points;         /* data points in them */
    uint64_t points_taken;   /* queued for the latency windows */
    uint64_t points_refused; /* of the GenAI metrics, refused (partial_success) */
} ww_otlp_http_stats_t;

/* Loads libmicrohttpd (ww_mhd_get), binds conf->listen and serves it on its own thread.
 * conf's strings must outlive the receiver. Returns it, or NULL with the reason in why (a
 * bad address, a port in use, no libmicrohttpd, out of memory). Logs "otlp: listening
 * addr=A port=P". */
ww_otlp_http_t *ww_otlp_http_new(const ww_otlp_http_conf_t *conf, char *why, size_t why_cap);

/* A descriptor readable while records wait (an eventfd). */
int ww_otlp_http_fd(const ww_otlp_http_t *self);

/* The bound port. */
unsigned ww_otlp_http_port(const ww_otlp_http_t *self);

/* Moves up to cap waiting records into out[] in the order they were queued; returns how
 * many. Clears the descriptor's readiness once none is left. */
size_t ww_otlp_http_take(ww_otlp_http_t *self, ww_request_t *out, size_t cap);

/* Moves up to cap waiting data points into out[] in the order they were queued; returns how
 * many (the caller owns their histograms). Clears the descriptor's readiness once neither
 * records nor points are left. */
size_t ww_otlp_http_take_points(ww_otlp_http_t *self, ww_otlp_agg_t *out, size_t cap);

void ww_otlp_http_stats(const ww_otlp_http_t *self, ww_otlp_http_stats_t *out);

/* Stops the server: no export is accepted from now on (the agent stopping); what was
 * queued stays to be taken. Safe twice. */
void ww_otlp_http_stop(ww_otlp_http_t *self);

/* Stops the server (waits for its thread) and frees everything; records still queued are
 * dropped (the caller stops and takes them first). Safe on NULL and twice. */
void ww_otlp_http_destroy(ww_otlp_http_t **self_p);

#endif
