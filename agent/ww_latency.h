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
 * thousands of nodes in one burst).
 *
 * One window per model is open at a time: sources report completions in completion order,
 * so the first record of the next window closes the open one (it is emitted then), and
 * once per tick the agent closes the window if it ended at or before the tick. A window
 * that saw no request emits nothing. A record older than the open window (out of order)
 * is kept in the open window and counted in `late`, never lost. One window, not two, so a
 * node's histograms are held once (TTFT and end-to-end spans of ~1,000 buckets each at
 * 5,000 requests/s).
 *
 * Durations: a window is emitted with the part of [start, start + window) this run
 * covered, never more (issue 14 item 12: a window sent at a stop used to claim the whole
 * window, and the restarted agent sent a second row for the same start). The part begins
 * at the window's start, or at the cover start (ww_latency_set_cover: the agent's first
 * tick) when the window began before the run did; it ends at the window's end, or, for a
 * window closed by ww_latency_close(.., all) at a stop, at the stop time passed in. The
 * start stays the grid start: the collector merges a second part of the same (node,
 * model, start) into the stored row (durations and counts add, histograms merge), and the
 * time between the parts is the agent's recorded outage. A part is at least 1 ms, the
 * shortest duration the wire takes.
 *
 * Requests that a crash would lose: recorded - emitted are the requests in windows still
 * open (ww_latency_open_requests), which the agent persists with every tick so that its
 * next run can report them (ww_runlog.h).
 */
#ifndef WW_LATENCY_H
#define WW_LATENCY_H

#include "ww_hist.h"
#include "ww_source.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int64_t start_ns; /* INT64_MIN: saw no request yet */
    uint64_t ok, error, timeout, rejected;
    uint64_t prompt_tokens, output_tokens;
    ww_hist_t queue, ttft, tpot, e2e;
    bool aggregated; /* took an aggregate (ww_latency_merge): counts stand apart */
} ww_lat_window_t;

/* Called for each closed window of each model that saw at least one request: start_ns is
 * the grid start, duration_ns the part covered (see above; the window length when whole). */
typedef void (*ww_lat_emit_fn)(void *arg, unsigned model, int64_t start_ns, int64_t duration_ns,
                               const ww_lat_window_t *w);

typedef struct {
    int64_t window_ns;
    int64_t phase_ns; /* windows start at multiples of window_ns plus this */
    unsigned n_models;
    int64_t open_ns;      /* start of the open window, INT64_MIN: none */
    ww_lat_window_t *win; /* n_models windows, for open_ns */
    ww_lat_emit_fn emit;
    void *emit_arg;
    uint64_t late;     /* records older than the open window (kept in it) */
    uint64_t recorded; /* records taken (a model index out of range is not) */
    uint64_t emitted;  /* of those, in windows emitted */
    int64_t cover_ns;  /* the run covers time from here on; INT64_MIN: whole windows */
    int scale;         /* each window's histograms start at this scale */
} ww_latency_t;

/* 0 or -ENOMEM. window_ns > 0; scale as ww_hist_init. Closed windows go to emit(arg, ...),
 * from ww_latency_record (a record of a later window) or ww_latency_close. */
int ww_latency_init(ww_latency_t *l, unsigned n_models, int64_t window_ns, int scale,
                    ww_lat_emit_fn emit, void *arg);

/* Shifts the window grid: windows start at multiples of window_ns plus phase_ns (taken
 * modulo window_ns). Call before the first record. */
void ww_latency_set_phase(ww_latency_t *l, int64_t phase_ns);

/* The run covers time from from_ns on (the agent's first tick): a window that began
 * before it is emitted with the duration from from_ns to its end (or to the stop). */
void ww_latency_set_cover(ww_latency_t *l, int64_t from_ns);

/* Requests recorded into windows not emitted yet (recorded - emitted): what a crash now
 * would lose. O(1). */
uint64_t ww_latency_open_requests(const ww_latency_t *l);
void ww_latency_fini(ww_latency_t *l);

/* Records one completion (its model index must be < n_models; others are ignored). A
 * record of a later window than the open one first emits the open one. */
void ww_latency_record(ww_latency_t *l, const ww_request_t *r);

/* An aggregate an inference server exported (OTLP metrics, proto/ww_otlp_metrics.h): values
 * counted by the server, not request by request. */
typedef struct {
    unsigned model;
    int64_t at_ns;                      /* the end of the interval it covers */
    const ww_hist_t *ttft, *tpot, *e2e; /* merged into the window's; NULL: none */
    uint64_t ok, error;                 /* requests */
    uint64_t prompt_tokens, output_tokens;
} ww_lat_agg_t;

/* Merges an aggregate into the window that holds a->at_ns, as ww_latency_record places a
 * record (a later window first emits the open one; an older one goes into the open one,
 * counted late). The window is then `aggregated`: its histograms' counts need not agree
 * with each other or with its requests (waferwatch.proto, LatencyWindow.aggregated), and
 * it has no queue time from the aggregate. An aggregate coarser than the window (a lower
 * scale) makes that window coarser (ww_hist_merge); the next window starts at the agent's
 * scale again. Every count is bounded as the wire bounds a
 * window's (an hour at WW_WIRE_MAX_REQ_PER_S requests, WW_WIRE_MAX_TOKENS_PER_S tokens a
 * second): an aggregate that would pass one is refused whole, nothing changed. Returns 0,
 * -EINVAL (model out of range), -ERANGE (past a bound), -ENOMEM (the window unchanged). */
int ww_latency_merge(ww_latency_t *l, const ww_lat_agg_t *a);

/* ww_latency_record as a source's sink (a ww_req_sink_fn): arg is the ww_latency_t. */
void ww_latency_sink(void *arg, const ww_request_t *r);

/* Emits and empties the open window if its end is at or before now_ns. With `all` (a
 * stop), emits it whatever its end, with the part covered up to now_ns (the last tick).
 * Returns the number of model windows emitted. */
int ww_latency_close(ww_latency_t *l, int64_t now_ns, bool all);

#endif
