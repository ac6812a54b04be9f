/* ww_rollup: see ww_rollup.h. */
#include "ww_rollup.h"

#include "ww_hist_wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WW_ROLLUP_NCOLS 15

uint64_t ww_rollup_hash(const char *s)
{
    uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    }
    return h;
}

void ww_rollup_forget_phases(ww_rollup_t *r)
{
    for (size_t i = 0; i < r->phases_cap; i++) {
        free(r->key[i]);
        free(r->val[i]);
    }
    free(r->key);
    free(r->val);
    r->key = r->val = NULL;
    r->n_phases = r->phases_cap = 0;
}

void ww_rollup_fini(ww_rollup_t *r)
{
    ww_rollup_forget_phases(r);
    for (size_t i = 0; i < r->rows_cap; i++) {
        for (int k = 0; k < 4; k++) {
            ww_hist_fini(&r->rows[i].h[k]);
        }
    }
    free(r->rows);
    memset(r, 0, sizeof *r);
}

const char *ww_rollup_phase(const ww_rollup_t *r, const char *node)
{
    if (r->phases_cap == 0) {
        return NULL;
    }
    size_t mask = r->phases_cap - 1;
    for (size_t i = ww_rollup_hash(node) & mask;; i = (i + 1) & mask) {
        if (!r->key[i]) {
            return NULL;
        }
        if (strcmp(r->key[i], node) == 0) {
            return r->val[i];
        }
    }
}

/* Doubles the phase table (from 1024 slots), rehashing the entries. 0 or -ENOMEM (the
 * table is then left as it was). */
static int s_phases_grow(ww_rollup_t *r)
{
    size_t cap = r->phases_cap ? r->phases_cap * 2 : 1024;
    char **key = calloc(cap, sizeof(char *)), **val = calloc(cap, sizeof(char *));
    if (!key || !val) {
        free(key);
        free(val);
        return -ENOMEM;
    }
    for (size_t i = 0; i < r->phases_cap; i++) {
        if (r->key[i]) {
            size_t j = ww_rollup_hash(r->key[i]) & (cap - 1);
            while (key[j]) {
                j = (j + 1) & (cap - 1);
            }
            key[j] = r->key[i];
            val[j] = r->val[i];
        }
    }
    free(r->key);
    free(r->val);
    r->key = key;
    r->val = val;
    r->phases_cap = cap;
    return 0;
}

void ww_rollup_set_phase(ww_rollup_t *r, const char *node, const char *phase, const char *site)
{
    if ((r->n_phases + 1) * 2 > r->phases_cap && s_phases_grow(r) < 0) {
        ww_rollup_forget_phases(r);
        return;
    }
    size_t i = ww_rollup_hash(node) & (r->phases_cap - 1);
    while (r->key[i] && strcmp(r->key[i], node) != 0) {
        i = (i + 1) & (r->phases_cap - 1);
    }
    /* One allocation, "phase\0site\0": ww_rollup_phase() returns it, the site follows. */
    phase = phase ? phase : "";
    site = site ? site : "";
    size_t lp = strlen(phase) + 1, ls = strlen(site) + 1;
    char *v = malloc(lp + ls);
    if (v) {
        memcpy(v, phase, lp);
        memcpy(v + lp, site, ls);
    }
    if (!v) {
        ww_rollup_forget_phases(r);
        return;
    }
    if (r->key[i]) {
        free(r->val[i]);
    } else if (!(r->key[i] = strdup(node))) {
        free(v);
        ww_rollup_forget_phases(r);
        return;
    } else {
        r->n_phases++;
    }
    r->val[i] = v;
}

void ww_rollup_clear(ww_rollup_t *r)
{
    r->n_rows = 0;
}

/* The row of (minute, phase, model, site), made (counts zeroed) when there is none; NULL
 * when out of memory. */
static ww_rollup_row_t *s_row(ww_rollup_t *r, int64_t minute, const char *phase, const char *model,
                              const char *site)
{
    for (size_t i = 0; i < r->n_rows; i++) {
        ww_rollup_row_t *c = &r->rows[i];
        if (c->minute_us == minute && strcmp(c->phase, phase) == 0 &&
            strcmp(c->model, model) == 0 && strcmp(c->site, site) == 0) {
            return c;
        }
    }
    if (r->n_rows == r->rows_cap) {
        size_t cap = r->rows_cap ? r->rows_cap * 2 : 16;
        ww_rollup_row_t *g = realloc(r->rows, cap * sizeof *g);
        if (!g) {
            return NULL;
        }
        memset(g + r->rows_cap, 0, (cap - r->rows_cap) * sizeof *g);
        r->rows = g;
        r->rows_cap = cap;
    }
    ww_rollup_row_t *row = &r->rows[r->n_rows++];
    row->minute_us = minute;
    row->phase = phase;
    row->model = model;
    row->site = site;
    row->windows = row->added = row->ok = row->error = row->timeout = row->rejected = 0;
    row->prompt_tokens = row->output_tokens = 0;
    return row;
}

int ww_rollup_add(ww_rollup_t *r, const Waferwatch__V1__LatencyWindow *w, bool part)
{
    static const Waferwatch__V1__Histogram empty = WAFERWATCH__V1__HISTOGRAM__INIT;
    int64_t t = ww_copy_pg_time(w->start_ns);
    const int64_t m = INT64_C(60) * 1000000; /* date_trunc('minute') in the UTC session */
    int64_t minute = t - ((t % m) + m) % m;
    const char *phase = ww_rollup_phase(r, w->node_id);
    ww_rollup_row_t *row =
        s_row(r, minute, phase ? phase : "", w->model, phase ? phase + strlen(phase) + 1 : "");
    if (!row) {
        return -ENOMEM;
    }
    const Waferwatch__V1__Histogram *src[4] = {w->queue, w->ttft, w->tpot, w->e2e};
    for (int k = 0; k < 4; k++) {
        const Waferwatch__V1__Histogram *pb = src[k] ? src[k] : &empty;
        ww_hist_t h;
        /* Already validated on receipt: this only rebuilds the dense form. */
        int rc = ww_hist_from_pb(pb, &h, WW_HIST_WIRE_MAX_BUCKETS, NULL, "");
        if (rc == 0 && row->added == 0) {
            ww_hist_fini(&row->h[k]);
            row->h[k] = h;
            continue;
        }
        if (rc == 0) {
            rc = ww_hist_merge(&row->h[k], &h);
        }
        ww_hist_fini(&h);
        if (rc < 0) {
            return rc;
        }
    }
    /* Checked: a sum past INT64_MAX is refused (-EOVERFLOW: the write is refused as data
     * and the offending message found alone), never wrapped or clamped. */
    const struct {
        uint64_t *acc, v;
    } adds[] = {{&row->ok, w->requests_ok},
                {&row->error, w->requests_error},
                {&row->timeout, w->requests_timeout},
                {&row->rejected, w->requests_rejected},
                {&row->prompt_tokens, w->prompt_tokens},
                {&row->output_tokens, w->output_tokens}};
    for (size_t k = 0; k < sizeof adds / sizeof adds[0]; k++) {
        uint64_t sum;
        if (__builtin_add_overflow(*adds[k].acc, adds[k].v, &sum) || sum > (uint64_t)INT64_MAX) {
            return -EOVERFLOW;
        }
        *adds[k].acc = sum;
    }
    row->windows += part ? 0 : 1;
    row->added++;
    return 0;
}

void ww_rollup_encode(const ww_rollup_t *r, ww_copy_t *c)
{
    ww_copy_begin(c);
    for (size_t i = 0; i < r->n_rows; i++) {
        const ww_rollup_row_t *row = &r->rows[i];
        ww_copy_put16(c, WW_ROLLUP_NCOLS);
        ww_copy_put32(c, 8);
        ww_copy_put64(c, (uint64_t)row->minute_us);
        ww_copy_field_text(c, row->phase);
        ww_copy_field_text(c, row->model);
        ww_copy_field_i8(c, row->windows);
        ww_copy_field_i8(c, row->ok);
        ww_copy_field_i8(c, row->error);
        ww_copy_field_i8(c, row->timeout);
        ww_copy_field_i8(c, row->rejected);
        ww_copy_field_i8(c, row->prompt_tokens);
        ww_copy_field_i8(c, row->output_tokens);
        for (int k = 0; k < 4; k++) {
            ww_copy_field_hist(c, &row->h[k]);
        }
        ww_copy_field_text(c, row->site); /* added by migration 0024: the last column */
    }
    ww_copy_end(c);
}
