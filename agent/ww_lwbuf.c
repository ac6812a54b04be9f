/* agent_batch: see ww_lwbuf.h. */
#include "ww_lwbuf.h"

#include "ww_hist_wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void ww_lwbuf_init(ww_lwbuf_t *b)
{
    memset(b, 0, sizeof *b);
}

void ww_lwbuf_reset(ww_lwbuf_t *b)
{
    for (size_t i = 0; i < b->n * 8; i++) {
        free(b->scratch[i]);
        b->scratch[i] = NULL;
    }
    b->n = 0;
    b->failed = 0;
}

void ww_lwbuf_fini(ww_lwbuf_t *b)
{
    ww_lwbuf_reset(b);
    free(b->w);
    free(b->ptrs);
    free(b->h);
    free(b->scratch);
    memset(b, 0, sizeof *b);
}

static int s_grow(ww_lwbuf_t *b)
{
    size_t cap = b->cap ? b->cap * 2 : 16;
    ww_latency_window_pb_t *w = realloc(b->w, cap * sizeof *w);
    if (w) {
        b->w = w;
    }
    ww_latency_window_pb_t **p = realloc(b->ptrs, cap * sizeof *p);
    if (p) {
        b->ptrs = p;
    }
    ww_histogram_pb_t *h = realloc(b->h, cap * 4 * sizeof *h);
    if (h) {
        b->h = h;
    }
    void **s = realloc(b->scratch, cap * 8 * sizeof *s);
    if (s) {
        b->scratch = s;
        memset(s + b->cap * 8, 0, (cap - b->cap) * 8 * sizeof *s);
    }
    /* The arrays may have moved: the windows added so far point into them. */
    for (size_t i = 0; i < b->n; i++) {
        b->ptrs[i] = &b->w[i];
        b->w[i].queue = &b->h[i * 4 + 0];
        b->w[i].ttft = &b->h[i * 4 + 1];
        b->w[i].tpot = &b->h[i * 4 + 2];
        b->w[i].e2e = &b->h[i * 4 + 3];
    }
    if (!w || !p || !h || !s) {
        return -ENOMEM;
    }
    b->cap = cap;
    return 0;
}

/* Converts one histogram into pb slot k of window i, with its own bucket arrays. */
static int s_hist(ww_lwbuf_t *b, size_t i, int k, const ww_hist_t *src)
{
    ww_histogram_pb_t *pb = &b->h[i * 4 + (size_t)k];
    size_t n = ww_hist_nonempty(src);
    int32_t *idx = malloc((n ? n : 1) * sizeof *idx);
    uint64_t *cnt = malloc((n ? n : 1) * sizeof *cnt);
    b->scratch[i * 8 + (size_t)k * 2] = idx;
    b->scratch[i * 8 + (size_t)k * 2 + 1] = cnt;
    if (!idx || !cnt) {
        return -ENOMEM;
    }
    return ww_hist_to_pb(src, pb, idx, cnt, n);
}

int ww_lwbuf_add(ww_lwbuf_t *b, const char *node_id, const char *model, int64_t start_ns,
                 int64_t duration_ns, const ww_lat_window_t *w)
{
    if (b->n == b->cap && s_grow(b) < 0) {
        b->failed++;
        return -ENOMEM;
    }
    size_t i = b->n;
    ww_latency_window_pb_t *pb = &b->w[i];
    waferwatch__v1__latency_window__init(pb);
    pb->node_id = (char *)node_id;
    pb->model = (char *)model;
    pb->start_ns = start_ns;
    pb->duration_ns = duration_ns;
    pb->requests_ok = w->ok;
    pb->requests_error = w->error;
    pb->requests_timeout = w->timeout;
    pb->requests_rejected = w->rejected;
    pb->prompt_tokens = w->prompt_tokens;
    pb->output_tokens = w->output_tokens;
    pb->aggregated = w->aggregated;
    const ww_hist_t *src[4] = {&w->queue, &w->ttft, &w->tpot, &w->e2e};
    for (int k = 0; k < 4; k++) {
        if (s_hist(b, i, k, src[k]) < 0) {
            for (int j = 0; j < 8; j++) {
                free(b->scratch[i * 8 + (size_t)j]);
                b->scratch[i * 8 + (size_t)j] = NULL;
            }
            b->failed++;
            return -ENOMEM;
        }
    }
    pb->queue = &b->h[i * 4 + 0];
    pb->ttft = &b->h[i * 4 + 1];
    pb->tpot = &b->h[i * 4 + 2];
    pb->e2e = &b->h[i * 4 + 3];
    b->ptrs[i] = pb;
    b->n++;
    return 0;
}

void ww_lwbuf_attach(ww_lwbuf_t *b, ww_batch_t *batch)
{
    batch->latency_windows = b->ptrs;
    batch->n_latency_windows = b->n;
}
