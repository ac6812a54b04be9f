/* ww_otlp_metrics: the latency aggregates in an OTLP metrics export (issue 19: an inference
 * server instrumented with the OpenTelemetry GenAI metrics rather than spans).
 *
 * The input is the body of an OTLP/HTTP POST /v1/metrics in its protobuf encoding
 * (ExportMetricsServiceRequest, proto/otlp/otlp_metrics.proto: the specification's field
 * numbers). Read, by name (the defaults, WW_OTLP_METRICS_CONF_GENAI, are the GenAI semantic
 * conventions'):
 *
 *   gen_ai.server.time_to_first_token   exponential histogram, s  -> the window's ttft
 *   gen_ai.server.time_per_output_token exponential histogram, s  -> tpot
 *   gen_ai.server.request.duration      exponential histogram, s  -> e2e, its count the
 *                                       requests ok; a point with error.type: its count
 *                                       the requests in error (values not kept: a window's
 *                                       latency histograms hold successful requests)
 *   gen_ai.client.token.usage           histogram of either kind, {token}: its sum, by
 *                                       gen_ai.token.type "input" (prompt) or "output"
 *
 * each point's model from gen_ai.response.model, else gen_ai.request.model. Only exponential
 * histograms carry latencies exactly into the agent's windows (the same bucket layout): a
 * point at scale s becomes a ww_hist at min(s, conf->scale) (bucket i at scale s is bucket
 * i >> (s - t) at scale t: exact, as OpenTelemetry's own downscaling); values at or below
 * WW_HIST_MIN go to underflow, above WW_HIST_MAX to overflow, zero and negative ones (the
 * zero bucket, the negative buckets) to zero_count. An explicit-bucket histogram of a
 * latency metric is refused (its buckets cannot be placed in ours without inventing where
 * the values were).
 *
 * Temporality. A delta point is taken as it is. A cumulative point is turned into the
 * delta since the previous point of its stream (the metric, its point's attributes and its
 * resource's): bucket by bucket, count, sum; its min and max are then the bounds its
 * buckets give, within the cumulative min and max. A stream's first cumulative point is
 * taken whole when it began (start_time_unix_nano) at or after `since_ns` (the agent
 * started), else it is only the baseline (counted, not taken: what came before the agent
 * is not its to report). A new start time, or counts that went down, is a reset: the point
 * is taken whole; a point that began BEFORE its stream's latest start is refused (two
 * exporters with one identity: taking each as a restart would count them over and over).
 * The same point again (an exporter's retry) adds nothing. A stream is the metric, its
 * scope's name and version, its point's attributes and its resource's (scalar and bytes
 * values; arrays and key-value lists by their kind only). At most conf->max_streams streams
 * are followed: when full, those idle for WW_OTLP_METRICS_STREAM_IDLE_NS are forgotten, and
 * a point of a new stream past that is refused.
 *
 * Refused points (counted, the first reason kept for the reply's partial_success): a latency
 * metric whose unit is set and is not "s"; no model, a model name that is empty, too long or not
 * clean UTF-8; temporality unspecified; no sum; a scale outside 0..20; counts that disagree with
 * the buckets; times missing or out of order; an explicit-bucket latency histogram; a token sum
 * that is not a whole number of tokens. Points of other metrics, and of other kinds (gauges, sums,
 * summaries), are counted `other`.
 */
#ifndef WW_OTLP_METRICS_H
#define WW_OTLP_METRICS_H

#include "ww_hist.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ww_otlp_metrics ww_otlp_metrics_t;

/* The metric and attribute names read, the scale of the windows, the streams followed. */
typedef struct {
    const char *ttft, *tpot, *e2e, *tokens;
    const char *token_type, *error_type;
    const char *response_model, *request_model;
    int scale;          /* the agent's histogram scale (0..WW_HIST_MAX_SCALE) */
    size_t max_streams; /* cumulative streams remembered */
} ww_otlp_metrics_conf_t;

#define WW_OTLP_METRICS_MAX_STREAMS 4096
/* A stream whose last point ended this long before a new stream's point is forgotten when
 * the table is full (an exporter gone; a restarted one is a new stream). */
#define WW_OTLP_METRICS_STREAM_IDLE_NS (INT64_C(3600) * 1000000000)
#define WW_OTLP_METRICS_CONF_GENAI                                                                 \
    {                                                                                              \
        "gen_ai.server.time_to_first_token", "gen_ai.server.time_per_output_token",                \
            "gen_ai.server.request.duration", "gen_ai.client.token.usage", "gen_ai.token.type",    \
            "error.type", "gen_ai.response.model", "gen_ai.request.model", WW_HIST_DEFAULT_SCALE,  \
            WW_OTLP_METRICS_MAX_STREAMS                                                            \
    }

/* What a taken point adds to a window. */
typedef enum {
    WW_OTLP_M_TTFT,   /* hist: TTFT values */
    WW_OTLP_M_TPOT,   /* hist: TPOT values */
    WW_OTLP_M_E2E,    /* hist: end-to-end values; count requests ok */
    WW_OTLP_M_ERRORS, /* count requests in error */
    WW_OTLP_M_TOKENS, /* prompt_tokens, output_tokens */
} ww_otlp_m_kind_t;

typedef struct {
    ww_otlp_m_kind_t kind;
    int64_t time_ns;        /* the end of the point's interval */
    uint64_t count;         /* values (TTFT, TPOT), requests (E2E, ERRORS) */
    uint64_t prompt_tokens; /* TOKENS */
    uint64_t output_tokens;
    const ww_hist_t *hist; /* TTFT, TPOT, E2E (checked: ww_hist_check); NULL otherwise */
} ww_otlp_m_point_t;

/* Receives one taken point (never an empty one): its model name (NUL-terminated, checked
 * clean; valid for the call) and what it adds (p->hist valid for the call). */
typedef void (*ww_otlp_point_fn)(void *arg, const char *model, const ww_otlp_m_point_t *p);

/* What one export held. */
typedef struct {
    uint64_t points;   /* every data point */
    uint64_t taken;    /* handed to the callback */
    uint64_t other;    /* of other metrics or kinds */
    uint64_t refused;  /* of ours, refused (see above) */
    uint64_t baseline; /* first cumulative points of streams older than the agent */
    uint64_t repeated; /* cumulative points that added nothing (a retry, no new values) */
    char why[160];     /* the first refusal's reason; "" when none */
} ww_otlp_metrics_counts_t;

/* conf is copied (its strings must outlive the decoder). Returns NULL when out of memory. */
ww_otlp_metrics_t *ww_otlp_metrics_new(const ww_otlp_metrics_conf_t *conf, int64_t since_ns);

/* Decodes body[0..len) and calls fn for every taken point, in the order of the export.
 * One thread at a time. Fills *counts. Returns 0; -EBADMSG when the body is not an
 * ExportMetricsServiceRequest, -ENOSPC when it holds more than max_points data points
 * (the caller's room: nothing was taken and no stream changed on either, so that the
 * exporter's retry of the same export is read as new); -ENOMEM. */
int ww_otlp_metrics_decode(ww_otlp_metrics_t *self, const uint8_t *body, size_t len,
                           size_t max_points, ww_otlp_point_fn fn, void *arg,
                           ww_otlp_metrics_counts_t *counts);

/* Streams followed now. */
size_t ww_otlp_metrics_streams(const ww_otlp_metrics_t *self);

/* Safe on NULL and twice. */
void ww_otlp_metrics_destroy(ww_otlp_metrics_t **self_p);

#endif
