/* agent_latency: see agent_latency.h. */
#define WW_LOG_MODULE "latency"
#include "agent_latency.h"

#include "ww_time.h"

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

static void s_window_empty(ww_lat_window_t *w)
{
    w->start_ns = INT64_MIN;
    w->ok = w->error = w->timeout = w->rejected = 0;
    w->prompt_tokens = w->output_tokens = 0;
    ww_hist_reset(&w->queue);
    ww_hist_reset(&w->ttft);
    ww_hist_reset(&w->tpot);
    ww_hist_reset(&w->e2e);
}

int ww_latency_init(ww_latency_t *l, unsigned n_models, int64_t window_ns, int scale)
{
    l->window_ns = window_ns;
    l->phase_ns = 0;
    l->n_models = n_models;
    l->late = 0;
    l->recorded = 0;
    for (int k = 0; k < 2; k++) {
        l->slot[k] = calloc(n_models ? n_models : 1, sizeof *l->slot[k]);
        if (!l->slot[k]) {
            ww_latency_fini(l);
            return -ENOMEM;
        }
        s_slot_init(l->slot[k], n_models, scale);
    }
    return 0;
}

void ww_latency_fini(ww_latency_t *l)
{
    for (int k = 0; k < 2; k++) {
        for (unsigned m = 0; l->slot[k] && m < l->n_models; m++) {
            ww_hist_fini(&l->slot[k][m].queue);
            ww_hist_fini(&l->slot[k][m].ttft);
            ww_hist_fini(&l->slot[k][m].tpot);
            ww_hist_fini(&l->slot[k][m].e2e);
        }
        free(l->slot[k]);
        l->slot[k] = NULL;
    }
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

void ww_latency_record(ww_latency_t *l, const ww_request_t *r)
{
    if (r->model >= l->n_models) {
        return;
    }
    l->recorded++;
    int64_t start = s_window_start(r->done_ns, l->window_ns, l->phase_ns);
    /* Slot by window parity: consecutive windows never share a slot. */
    int k = (int)(((start - l->phase_ns) / l->window_ns) & 1);
    ww_lat_window_t *w = &l->slot[k][r->model];
    int64_t open = l->slot[k][0].start_ns;
    for (unsigned m = 1; m < l->n_models && open == INT64_MIN; m++) {
        open = l->slot[k][m].start_ns;
    }
    if (open != INT64_MIN && open != start) {
        /* The slot still holds a window two or more windows away: the agent closes windows
         * every tick, so only an out-of-order record gets here. Keep it in that window
         * rather than lose it, and count it. */
        l->late++;
        start = open;
    }
    w->start_ns = start;
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

int ww_latency_close(ww_latency_t *l, int64_t now_ns, bool all, ww_lat_emit_fn emit, void *arg)
{
    int emitted = 0;
    /* Oldest slot first, so windows leave in time order. */
    int order[2] = {0, 1};
    int64_t s0 = INT64_MAX, s1 = INT64_MAX;
    for (unsigned m = 0; m < l->n_models; m++) {
        if (l->slot[0][m].start_ns != INT64_MIN && l->slot[0][m].start_ns < s0) {
            s0 = l->slot[0][m].start_ns;
        }
        if (l->slot[1][m].start_ns != INT64_MIN && l->slot[1][m].start_ns < s1) {
            s1 = l->slot[1][m].start_ns;
        }
    }
    if (s1 < s0) {
        order[0] = 1;
        order[1] = 0;
    }
    for (int o = 0; o < 2; o++) {
        ww_lat_window_t *slot = l->slot[order[o]];
        for (unsigned m = 0; m < l->n_models; m++) {
            ww_lat_window_t *w = &slot[m];
            if (w->start_ns == INT64_MIN) {
                continue;
            }
            if (!all && w->start_ns + l->window_ns > now_ns) {
                continue;
            }
            emit(arg, m, w->start_ns, l->window_ns, w);
            emitted++;
            s_window_empty(w);
        }
    }
    return emitted;
}

void ww_latency_sink(void *arg, const ww_request_t *r)
{
    ww_latency_record(arg, r);
}
