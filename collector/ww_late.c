/* ww_late: see ww_late.h. */
#include "ww_late.h"

#include <stdbool.h>
#include <string.h>

#define WW_LATE_NS_PER_S INT64_C(1000000000)

void ww_late_begin(ww_late_t *l, int64_t watermark_ns)
{
    ww_buf_reset(&l->tiers);
    ww_buf_reset(&l->nodes);
    ww_buf_reset(&l->secs);
    ww_buf_puts(&l->tiers, "{");
    ww_buf_puts(&l->nodes, "{");
    ww_buf_puts(&l->secs, "{");
    l->watermark_ns = watermark_ns;
    l->n = 0;
    l->last_tier = 0;
    l->last_node = NULL;
    l->last_s = 0;
}

/* The start (Unix seconds) of the bucket of `span` seconds holding t_ns: floor, also for
 * times before 1970. */
static int64_t s_bucket(int64_t t_ns, int64_t span)
{
    int64_t s = t_ns / WW_LATE_NS_PER_S - (t_ns % WW_LATE_NS_PER_S < 0);
    return s - (((s % span) + span) % span);
}

static void s_add(ww_late_t *l, char tier, const char *node, int64_t bucket_s)
{
    if (l->last_node && l->last_tier == tier && l->last_s == bucket_s &&
        strcmp(l->last_node, node) == 0) {
        return;
    }
    bool first = l->n == 0;
    const char t[2] = {tier, '\0'};
    ww_buf_pg_elem(&l->tiers, t, first);
    ww_buf_pg_elem(&l->nodes, node, first);
    ww_buf_printf(&l->secs, "%s%lld", first ? "" : ",", (long long)bucket_s);
    l->n++;
    l->last_tier = tier;
    l->last_node = node;
    l->last_s = bucket_s;
}

void ww_late_batch(ww_late_t *l, const ww_batch_t *b)
{
    for (size_t i = 0; i < b->n_samples; i++) {
        const ww_node_sample_t *s = b->samples[i];
        if (s->time_ns < l->watermark_ns) {
            s_add(l, 's', s->node_id, s_bucket(s->time_ns, 60));
        }
    }
    /* Windows are built per hour of their start: late when that hour is closed. */
    int64_t closed = s_bucket(l->watermark_ns, 3600);
    for (size_t i = 0; i < b->n_latency_windows; i++) {
        const Waferwatch__V1__LatencyWindow *w = b->latency_windows[i];
        int64_t hour = s_bucket(w->start_ns, 3600);
        if (hour < closed) {
            s_add(l, 'l', w->node_id, hour);
        }
    }
}

const char *const *ww_late_params(ww_late_t *l, const char *params[3])
{
    ww_buf_t *bufs[3] = {&l->tiers, &l->nodes, &l->secs};
    for (int k = 0; k < 3; k++) {
        ww_buf_puts(bufs[k], "}");
        if (bufs[k]->oom) {
            return NULL;
        }
        params[k] = bufs[k]->p;
    }
    return params;
}

void ww_late_fini(ww_late_t *l)
{
    ww_buf_free(&l->tiers);
    ww_buf_free(&l->nodes);
    ww_buf_free(&l->secs);
    memset(l, 0, sizeof *l);
}
