/* agent_latency: per-request latencies of one node, recorded per model into windows.
 *
 * Every completion record the source reports lands in the window [start, start + window)
 * that holds its completion time: queue time (start - arrival, admitted requests),
 * TTFT (first token - arrival), TPOT ((done - first token) / (output tokens - 1), requests
 * with two or more output tokens) and end-to-end latency (done - arrival), each into a
 * ww_hist_t, plus counts by status and token sums. Latency histograms take successful
 * requests only; failures are counted by status.
 *
 * Windows are aligned to wall-clock multiples of `window` (a multiple of the sampling
 * interval) plus an optional phase, so windows of different nodes merge exactly; an agent
 * that drives many nodes staggers their phases by whole intervals so that not all of
 * them close in the same tick (a fleet agent would otherwise send every window of
 * thousands of nodes in one burst). Once per tick the agent
 * closes every window that ended at or before the tick; a window that saw no request
 * emits nothing. Between ticks completions span at most two windows, hence two slots.
 */
#ifndef WW_AGENT_LATENCY_H
#define WW_AGENT_LATENCY_H

#include "ww_hist.h"
#include "ww_source.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int64_t start_ns; /* INT64_MIN: slot unused */
    uint64_t ok, error, timeout, rejected;
    uint64_t prompt_tokens, output_tokens;
    ww_hist_t queue, ttft, tpot, e2e;
} ww_lat_window_t;

typedef struct {
    int64_t window_ns;
    int64_t phase_ns; /* windows start at multiples of window_ns plus this */
    unsigned n_models;
    ww_lat_window_t *slot[2]; /* n_models windows each, for two consecutive window starts */
    uint64_t late;            /* records older than every open window (kept, in the oldest) */
    uint64_t recorded;        /* records taken (a model index out of range is not) */
} ww_latency_t;

/* Called for each closed window of each model that saw at least one request. */
typedef void (*ww_lat_emit_fn)(void *arg, unsigned model, int64_t start_ns, int64_t window_ns,
                               const ww_lat_window_t *w);

/* 0 or -ENOMEM. window_ns > 0; scale as ww_hist_init. */
int ww_latency_init(ww_latency_t *l, unsigned n_models, int64_t window_ns, int scale);

/* Shifts the window grid: windows start at multiples of window_ns plus phase_ns (taken
 * modulo window_ns). Call before the first record. */
void ww_latency_set_phase(ww_latency_t *l, int64_t phase_ns);
void ww_latency_fini(ww_latency_t *l);

/* Records one completion (its model index must be < n_models; others are ignored). */
void ww_latency_record(ww_latency_t *l, const ww_request_t *r);

/* ww_latency_record as a source's sink (a ww_req_sink_fn): arg is the ww_latency_t. */
void ww_latency_sink(void *arg, const ww_request_t *r);

/* Emits and empties every window whose end is at or before now_ns (all open windows when
 * `all`, for shutdown). Returns the number of windows emitted. */
int ww_latency_close(ww_latency_t *l, int64_t now_ns, bool all, ww_lat_emit_fn emit, void *arg);

#endif
