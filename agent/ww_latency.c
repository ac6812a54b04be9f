/* agent_latency: see ww_latency.h. */
#define WW_LOG_MODULE "latency"
#include "ww_latency.h"

#include "ww_time.h"
#include "ww_wire.h"

#include <errno.h>
#include <stdlib.h>

static void s_slot_init(ww_lat_window_t *w, unsigned n, int scale)
{
    for (unsigned m = 0; m < n; m++) {
        w[m].start_ns = INT64_MIN;
        ww_hist_init(&w[m].queue, scale);
        ww_hist_init(&w[m].ttft, scale);
        ww_hist_init(&w[m].tpot, scale);
        ww_hist_init(&w[m].e2e, scale);
    }
}

/* Empties a histogram for the next window, at `scale`: a window an aggregate made coarser
 * (ww_latency_merge) must not make every later one coarser too. */
static void s_hist_empty(ww_hist_t *h, int scale)
{
    if (h->scale == scale) {
        ww_hist_reset(h); /* keeps its allocation */
    } else {
        ww_hist_fini(h);
        ww_hist_init(h, scale);
    }
}

static void s_window_empty(ww_lat_window_t *w, int scale)
{
    w->start_ns = INT64_MIN;
    w->ok = w->error = w->timeout = w->rejected = 0;
    w->prompt_tokens = w->output_tokens = 0;
    w->aggregated = false;
    s_hist_empty(&w->queue, scale);
    s_hist_empty(&w->ttft, scale);
    s_hist_empty(&w->tpot, scale);
    s_hist_empty(&w->e2e, scale);
}

int ww_latency_init(ww_latency_t *l, unsigned n_models, int64_t window_ns, int scale,
                    ww_lat_emit_fn emit, void *arg)
{
    l->window_ns = window_ns;
    l->phase_ns = 0;
    l->n_models = n_models;
    l->open_ns = INT64_MIN;
    l->emit = emit;
    l->emit_arg = arg;
    l->late = 0;
    l->recorded = 0;
    l->emitted = 0;
    l->cover_ns = INT64_MIN;
    l->scale = scale;
    l->win = calloc(n_models ? n_models : 1, sizeof *l->win);
    if (!l->win) {
        return -ENOMEM;
    }
    s_slot_init(l->win, n_models, scale);
    return 0;
}

void ww_latency_fini(ww_latency_t *l)
{
    for (unsigned m = 0; l->win && m < l->n_models; m++) {
        ww_hist_fini(&l->win[m].queue);
        ww_hist_fini(&l->win[m].ttft);
        ww_hist_fini(&l->win[m].tpot);
        ww_hist_fini(&l->win[m].e2e);
    }
    free(l->win);
    l->win = NULL;
}

void ww_latency_set_phase(ww_latency_t *l, int64_t phase_ns)
{
    l->phase_ns = ((phase_ns % l->window_ns) + l->window_ns) % l->window_ns;
}

static int64_t s_window_start(int64_t t, int64_t window, int64_t phase)
{
    return ww_time_next_tick(t - phase, window) - window + phase;
}

static double s_seconds(int64_t ns)
{
    return (double)ns / 1e9;
}

/* The part of the window starting at start that this run covered, if it stops at stop_ns
 * (INT64_MAX: it did not stop), at least 1 ms (the wire's shortest). */
static int64_t s_covered(const ww_latency_t *l, int64_t start, int64_t stop_ns)
{
    int64_t from = start > l->cover_ns ? start : l->cover_ns;
    int64_t to = start + l->window_ns;
    if (stop_ns < to) {
        to = stop_ns;
    }
    int64_t d = to - from;
    if (d > l->window_ns) {
        d = l->window_ns;
    }
    return d < WW_NS_PER_MS ? WW_NS_PER_MS : d;
}

/* Emits every model's window that saw a request and empties them; no window is open then.
 * stop_ns: the stop time for a window closed at a stop, INT64_MAX otherwise. Returns how
 * many were emitted. */
static int s_flush(ww_latency_t *l, int64_t stop_ns)
{
    int emitted = 0;
    for (unsigned m = 0; m < l->n_models; m++) {
        ww_lat_window_t *w = &l->win[m];
        if (w->start_ns == INT64_MIN) {
            continue;
        }
        l->emit(l->emit_arg, m, w->start_ns, s_covered(l, w->start_ns, stop_ns), w);
        l->emitted += w->ok + w->error + w->timeout + w->rejected;
        emitted++;
        s_window_empty(w, l->scale);
    }
    l->open_ns = INT64_MIN;
    return emitted;
}

/* The window of `model` that a record or aggregate done at t goes into, opened (and the
 * open one emitted first when t is past it). */
static ww_lat_window_t *s_window_at(ww_latency_t *l, unsigned model, int64_t t)
{
    int64_t start = l->open_ns;
    if (start == INT64_MIN || t < start || t - start >= l->window_ns) {
        start = s_window_start(t, l->window_ns, l->phase_ns);
    }
    if (l->open_ns != INT64_MIN && start > l->open_ns) {
        s_flush(l, INT64_MAX); /* the open window has ended: records come in completion order */
    }
    if (l->open_ns == INT64_MIN) {
        l->open_ns = start;
    } else if (start < l->open_ns) {
        /* Out of order: older than the open window, whose predecessor has been sent. Keep
         * it in the open window rather than lose it, and count it. */
        l->late++;
        start = l->open_ns;
    }
    ww_lat_window_t *w = &l->win[model];
    w->start_ns = start;
    return w;
}

void ww_latency_record(ww_latency_t *l, const ww_request_t *r)
{
    if (r->model >= l->n_models) {
        return;
    }
    l->recorded++;
    ww_lat_window_t *w = s_window_at(l, r->model, r->done_ns);
    switch (r->status) {
    case WW_REQ_OK:
        w->ok++;
        w->prompt_tokens += r->prompt_tokens;
        w->output_tokens += r->output_tokens;
        ww_hist_record(&w->queue, s_seconds(r->start_ns - r->arrival_ns));
        ww_hist_record(&w->ttft, s_seconds(r->first_token_ns - r->arrival_ns));
        ww_hist_record(&w->e2e, s_seconds(r->done_ns - r->arrival_ns));
        if (r->output_tokens >= 2) {
            ww_hist_record(&w->tpot, s_seconds(r->done_ns - r->first_token_ns) /
                                         (double)(r->output_tokens - 1));
        }
        break;
    case WW_REQ_ERROR:
        w->error++;
        ww_hist_record(&w->queue, s_seconds(r->start_ns - r->arrival_ns));
        break;
    case WW_REQ_TIMEOUT:
        w->timeout++;
        break;
    case WW_REQ_REJECTED:
        w->rejected++;
        break;
    }
}

/* a + b when it stays within max. */
static bool s_fits(uint64_t a, uint64_t b, uint64_t max)
{
    return b <= max && a <= max - b;
}

int ww_latency_merge(ww_latency_t *l, const ww_lat_agg_t *a)
{
    if (a->model >= l->n_models) {
        return -EINVAL;
    }
    const uint64_t max_req = UINT64_C(3600) * WW_WIRE_MAX_REQ_PER_S;
    const uint64_t max_tok = UINT64_C(3600) * WW_WIRE_MAX_TOKENS_PER_S;
    /* Checked against the window it would land in before anything changes (the open
     * window's counts when it is that one, else an empty one's). */
    int64_t start = l->open_ns;
    bool fresh = start == INT64_MIN || a->at_ns - start >= l->window_ns;
    const ww_lat_window_t *cur = &l->win[a->model];
    bool same = !fresh && cur->start_ns != INT64_MIN;
    uint64_t ok = same ? cur->ok : 0, err = same ? cur->error : 0;
    uint64_t pt = same ? cur->prompt_tokens : 0, ot = same ? cur->output_tokens : 0;
    const ww_hist_t *mine[3] = {&cur->ttft, &cur->tpot, &cur->e2e};
    const ww_hist_t *add[3] = {a->ttft, a->tpot, a->e2e};
    bool fits = s_fits(ok, a->ok, max_req) && s_fits(err, a->error, max_req) &&
                s_fits(pt, a->prompt_tokens, max_tok) && s_fits(ot, a->output_tokens, max_tok);
    for (int k = 0; k < 3 && fits; k++) {
        fits = !add[k] || s_fits(same ? mine[k]->count : 0, add[k]->count, max_req);
    }
    if (!fits) {
        return -ERANGE;
    }
    ww_lat_window_t *w = s_window_at(l, a->model, a->at_ns);
    ww_hist_t *into[3] = {&w->ttft, &w->tpot, &w->e2e};
    for (int k = 0; k < 3; k++) {
        /* ww_hist_merge leaves its dst as it was when it fails: a failure after an earlier
         * merge of this aggregate leaves that one in (counted by the caller as refused). */
        if (add[k] && ww_hist_merge(into[k], add[k]) < 0) {
            return -ENOMEM;
        }
    }
    w->ok += a->ok;
    w->error += a->error;
    w->prompt_tokens += a->prompt_tokens;
    w->output_tokens += a->output_tokens;
    w->aggregated = true;
    l->recorded += a->ok + a->error;
    return 0;
}

int ww_latency_close(ww_latency_t *l, int64_t now_ns, bool all)
{
    if (l->open_ns == INT64_MIN || (!all && l->open_ns + l->window_ns > now_ns)) {
        return 0;
    }
    return s_flush(l, all ? now_ns : INT64_MAX);
}

void ww_latency_set_cover(ww_latency_t *l, int64_t from_ns)
{
    l->cover_ns = from_ns;
}

uint64_t ww_latency_open_requests(const ww_latency_t *l)
{
    return l->recorded - l->emitted;
}

void ww_latency_sink(void *arg, const ww_request_t *r)
{
    ww_latency_record(arg, r);
}
