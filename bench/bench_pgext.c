/* bench_pgext: the C side of bench/pgext.sh. Generates latency windows with the real
 * simulator and the agent's latency windows (ww_sim, ww_latency), writes them as the files
 * the script loads into PostgreSQL, and measures in C what the SQL figures stand beside.
 *
 *   bench_pgext merge DIR ROWS OLD_ROWS WINDOW_S
 *     TTFT histograms of WINDOW_S-second windows of the default simulator (all three
 *     default models; nodes x time enough for ROWS rows). Writes DIR/merge.bin (binary
 *     COPY of t(id int, h ww_hist): the packed bytes, as ww_copy_field_hist writes them)
 *     and DIR/merge_old.txt (text COPY of the first OLD_ROWS rows for the former composite
 *     ww_hist: dense bigint[] from "offset").
 *   bench_pgext cmerge DIR FIRST
 *     Reads DIR/merge.bin back and times, min of 5 runs each, ns per row of
 *     ww_hist_merge() over the unpacked histograms (the reference), ww_hist_merge_packed()
 *     and ww_hist_merge_stored() (the aggregate's path) over the packed bytes and
 *     ww_hist_unpack() alone, over the first FIRST rows and over all of them (the script
 *     runs it before and after the SQL timings).
 *   bench_pgext windows DIR NODES SECONDS
 *     NODES nodes of the default simulator for SECONDS s each, 10 s windows. Writes
 *     DIR/lw.bin (binary COPY of latency_windows by ww_copy_window(), the collector's
 *     encoder, from the LatencyWindow messages ww_lwbuf_add() builds, as the agent sends
 *     them), DIR/lw_old.txt (the same rows in the v12 layout, text COPY, composite
 *     histograms) and DIR/hdr.txt (each histogram's raw values in microseconds, one line
 *     per histogram, four per window, for HdrHistogram). Prints the packed payload and the
 *     entropy floor of the bucket counts per window.
 *
 * Output: one "key value" line per figure (the script reads them), after a readable line.
 */
#include "ww_copy.h"
#include "ww_hist.h"
#include "ww_hist_pack.h"
#include "ww_latency.h"
#include "ww_lwbuf.h"
#include "ww_sim.h"
#include "ww_sim_defaults.h"
#include "ww_time.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEC 1000000000LL
#define T0 (1798761600LL * SEC + 12 * 3600 * SEC) /* 2027-01-01 12:00 UTC, as bench_sim */
#define NKIND 4                                   /* queue, ttft, tpot, e2e */

static void s_die(const char *what)
{
    fprintf(stderr, "bench_pgext: %s\n", what);
    exit(1);
}

static void *s_xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL) {
        s_die("out of memory");
    }
    return p;
}

/* ---- raw values beside the agent's windows ------------------------------------------ */

typedef struct {
    double *v;
    size_t n, cap;
} vec_t;

static void s_vec_push(vec_t *a, double x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->v = s_xrealloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = x;
}

struct gen;
/* Called for each window the agent's latency module emits, with the raw values of its four
 * histograms (what was recorded into them, in seconds). */
typedef void (*s_window_fn)(struct gen *g, unsigned node, unsigned model, int64_t start_ns,
                            int64_t duration_ns, const ww_lat_window_t *w, const vec_t raw[NKIND]);

typedef struct gen {
    ww_sim_conf_t conf;
    ww_sim_model_t models[WW_SIM_MAX_MODELS];
    ww_latency_t lat;
    vec_t raw[WW_SIM_MAX_MODELS][NKIND];
    unsigned node;
    s_window_fn fn;
    void *arg;
    uint64_t windows, mismatched; /* raw values that disagree with the histogram's count */
    bool stop;                    /* set by fn: no more nodes */
} gen_t;

static void s_emit(void *arg, unsigned model, int64_t start_ns, int64_t duration_ns,
                   const ww_lat_window_t *w)
{
    gen_t *g = arg;
    vec_t *raw = g->raw[model];
    const ww_hist_t *h[NKIND] = {&w->queue, &w->ttft, &w->tpot, &w->e2e};
    for (int k = 0; k < NKIND; k++) {
        g->mismatched += raw[k].n != h[k]->count;
    }
    g->windows++;
    g->fn(g, g->node, model, start_ns, duration_ns, w, raw);
    for (int k = 0; k < NKIND; k++) {
        raw[k].n = 0;
    }
}

/* The agent's sink (ww_latency_record) and, after it (it may first emit the previous
 * window), the raw values it recorded: the same quantities as ww_latency.c. */
static void s_sink(void *arg, const ww_request_t *r)
{
    gen_t *g = arg;
    ww_latency_record(&g->lat, r);
    if (r->model >= g->conf.n_models) {
        return;
    }
    vec_t *raw = g->raw[r->model];
    if (r->status == WW_REQ_OK) {
        s_vec_push(&raw[0], (double)(r->start_ns - r->arrival_ns) / 1e9);
        s_vec_push(&raw[1], (double)(r->first_token_ns - r->arrival_ns) / 1e9);
        s_vec_push(&raw[3], (double)(r->done_ns - r->arrival_ns) / 1e9);
        if (r->output_tokens >= 2) {
            s_vec_push(&raw[2], (double)(r->done_ns - r->first_token_ns) / 1e9 /
                                    (double)(r->output_tokens - 1));
        }
    } else if (r->status == WW_REQ_ERROR) {
        s_vec_push(&raw[0], (double)(r->start_ns - r->arrival_ns) / 1e9);
    }
}

/* Runs `nodes` simulated nodes (default settings and models) for `seconds` each, ticking
 * once per second as the agent does, windows of window_s seconds; fn gets every window
 * and may set g->stop to end the run. */
static void s_generate(gen_t *g, unsigned nodes, long seconds, long window_s)
{
    for (unsigned n = 0; n < nodes && !g->stop; n++) {
        void *st = NULL;
        g->node = n;
        if (ww_sim_source.open(&g->conf, n, T0, &st) != 0 ||
            ww_latency_init(&g->lat, (unsigned)g->conf.n_models, window_s * SEC,
                            WW_HIST_DEFAULT_SCALE, s_emit, g) != 0) {
            s_die("simulator setup failed");
        }
        ww_sim_source.set_sink(st, s_sink, g);
        for (long s = 1; s <= seconds && !g->stop; s++) {
            ww_reading_t rd;
            ww_sim_source.sample(st, T0 + s * SEC, &rd);
            ww_latency_close(&g->lat, T0 + s * SEC, false);
        }
        ww_latency_fini(&g->lat); /* the window still open is dropped: not whole */
        ww_sim_source.close(&st);
        for (size_t m = 0; m < g->conf.n_models; m++) {
            for (int k = 0; k < NKIND; k++) {
                g->raw[m][k].n = 0;
            }
        }
    }
}

static void s_gen_init(gen_t *g, s_window_fn fn, void *arg)
{
    memset(g, 0, sizeof *g);
    ww_sim_conf_set_defaults(&g->conf);
    g->conf.n_models = ww_sim_default_models(g->models, WW_SIM_MAX_MODELS);
    if (g->conf.n_models == 0) {
        s_die("no default models");
    }
    g->conf.models = g->models;
    g->fn = fn;
    g->arg = arg;
}

static void s_gen_fini(gen_t *g)
{
    for (size_t m = 0; m < g->conf.n_models; m++) {
        free(g->models[m].name);
        for (int k = 0; k < NKIND; k++) {
            free(g->raw[m][k].v);
        }
    }
}

/* ---- histogram helpers -------------------------------------------------------------- */

/* First and last non-empty bucket of h's dense array (positions in counts[]); false when
 * no bucket is non-empty. */
static bool s_range(const ww_hist_t *h, uint32_t *a, uint32_t *z)
{
    uint32_t i = 0, j = h->len;
    while (i < h->len && h->counts[i] == 0) {
        i++;
    }
    if (i == h->len) {
        return false;
    }
    while (h->counts[j - 1] == 0) {
        j--;
    }
    *a = i;
    *z = j - 1;
    return true;
}

/* The former composite ww_hist (0012_baseline.sql) as a row-literal of text COPY: dense
 * counts from the first to the last non-empty bucket, min/max NULL without a finite value
 * (ww_hist_trim's canonical form). */
static void s_put_old(FILE *f, const ww_hist_t *h)
{
    uint32_t a = 0, z = 0;
    bool any = s_range(h, &a, &z);
    fprintf(f, "(%d,%llu,%.17g,", h->scale, (unsigned long long)h->count, h->sum);
    if (isnan(h->min)) {
        fputs(",,", f);
    } else {
        fprintf(f, "%.17g,%.17g,", h->min, h->max);
    }
    fprintf(f, "%llu,%llu,%llu,%d,\"{", (unsigned long long)h->zero_count,
            (unsigned long long)h->underflow, (unsigned long long)h->overflow,
            any ? h->offset + (int32_t)a : 0);
    for (uint32_t i = a; any && i <= z; i++) {
        fprintf(f, i > a ? ",%llu" : "%llu", (unsigned long long)h->counts[i]);
    }
    fputs("}\")", f);
}

/* log2 of the number of ways to place the bucket values of h in its span (first to last
 * non-empty bucket): C(m + span - 1, span - 1), m the values in buckets. */
static double s_entropy_bits(const ww_hist_t *h)
{
    uint32_t a = 0, z = 0;
    if (!s_range(h, &a, &z)) {
        return 0.0;
    }
    double m = 0, span = (double)(z - a + 1);
    for (uint32_t i = a; i <= z; i++) {
        m += (double)h->counts[i];
    }
    return (lgamma(m + span) - lgamma(m + 1) - lgamma(span)) / log(2.0);
}

static long s_pack(const ww_hist_t *h, uint8_t **out)
{
    size_t cap = ww_hist_pack_bound(h);
    *out = s_xrealloc(NULL, cap);
    long n = ww_hist_pack(h, *out, cap);
    if (n < 0) {
        s_die("ww_hist_pack failed");
    }
    return n;
}

static void s_write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        s_die("cannot write an output file");
    }
}

static FILE *s_open(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        s_die("cannot open an output file");
    }
    return f;
}

/* ---- merge: TTFT windows for t(id, h) and the C merge beside SQL -------------------- */

typedef struct {
    size_t want, old_rows, n;
    uint8_t **packed;
    size_t *len;
    ww_hist_t *hist; /* unpacked */
    FILE *old;
    double requests, span, nonempty, bytes;
} merge_t;

static void s_merge_window(gen_t *g, unsigned node, unsigned model, int64_t start_ns,
                           int64_t duration_ns, const ww_lat_window_t *w, const vec_t raw[NKIND])
{
    (void)node, (void)model, (void)start_ns, (void)duration_ns, (void)raw;
    merge_t *m = g->arg;
    uint32_t a = 0, z = 0;
    if (m->n == m->want || !s_range(&w->ttft, &a, &z)) {
        return;
    }
    size_t i = m->n++;
    g->stop = m->n == m->want;
    long n = s_pack(&w->ttft, &m->packed[i]);
    m->len[i] = (size_t)n;
    const char *why = NULL;
    ww_hist_init(&m->hist[i], WW_HIST_DEFAULT_SCALE);
    if (ww_hist_unpack(m->packed[i], m->len[i], &m->hist[i], &why) != 0) {
        s_die(why ? why : "ww_hist_unpack failed");
    }
    m->requests += (double)w->ttft.count;
    m->span += (double)(z - a + 1);
    m->nonempty += (double)ww_hist_nonempty(&w->ttft);
    m->bytes += (double)n;
    if (i < m->old_rows) {
        fprintf(m->old, "%zu\t", i + 1);
        s_put_old(m->old, &w->ttft);
        fputc('\n', m->old);
    }
}

typedef enum { MERGE_UNPACKED, MERGE_PACKED, MERGE_STORED, UNPACK_ONLY } how_t;

/* ns per row of one way over rows [0, n), the fastest of 5; *out the merged result. */
static double s_time_merge(const merge_t *m, size_t n, how_t how, ww_hist_t *out)
{
    double best = INFINITY;
    ww_hist_t tmp;
    ww_hist_init(&tmp, WW_HIST_DEFAULT_SCALE);
    for (int r = 0; r < 5; r++) {
        ww_hist_fini(out);
        ww_hist_init(out, WW_HIST_DEFAULT_SCALE);
        int rc = 0;
        int64_t t0 = ww_time_mono_ns();
        for (size_t i = 0; i < n && rc == 0; i++) {
            switch (how) {
            case MERGE_UNPACKED:
                rc = ww_hist_merge(out, &m->hist[i]);
                break;
            case MERGE_PACKED:
                rc = ww_hist_merge_packed(out, m->packed[i], m->len[i], NULL);
                break;
            case MERGE_STORED:
                rc = ww_hist_merge_stored(out, m->packed[i], m->len[i], NULL);
                break;
            case UNPACK_ONLY:
                rc = ww_hist_unpack(m->packed[i], m->len[i], &tmp, NULL);
                out->count += tmp.count;
                break;
            }
        }
        int64_t t1 = ww_time_mono_ns();
        if (rc != 0) {
            s_die("merge failed");
        }
        double ns = (double)(t1 - t0) / (double)n;
        best = ns < best ? ns : best;
    }
    ww_hist_fini(&tmp);
    return best;
}

static int s_merge_main(const char *dir, size_t rows, size_t old_rows, long window_s)
{
    merge_t m = {.want = rows, .old_rows = old_rows < rows ? old_rows : rows};
    m.packed = s_xrealloc(NULL, rows * sizeof *m.packed);
    m.len = s_xrealloc(NULL, rows * sizeof *m.len);
    m.hist = s_xrealloc(NULL, rows * sizeof *m.hist);
    m.old = s_open(dir, "merge_old.txt");
    gen_t g;
    s_gen_init(&g, s_merge_window, &m);
    /* About 100 windows per node and model; as many nodes as ROWS take. */
    int64_t t0 = ww_time_mono_ns();
    s_generate(&g, UINT32_MAX, 100 * window_s + 1, window_s);
    if (m.n < rows) {
        s_die("the simulator gave too few TTFT windows");
    }
    int64_t t1 = ww_time_mono_ns();
    fclose(m.old);

    ww_copy_t c = {0};
    ww_copy_begin(&c);
    for (size_t i = 0; i < m.n; i++) {
        ww_copy_put16(&c, 2);
        ww_copy_put32(&c, 4);
        ww_copy_put32(&c, (uint32_t)(i + 1));
        ww_copy_field_hist(&c, &m.hist[i]);
    }
    ww_copy_end(&c);
    if (c.buf.oom || c.range) {
        s_die("COPY encoding failed");
    }
    s_write_file(dir, "merge.bin", c.buf.p, c.buf.len);
    ww_copy_fini(&c);

    double n = (double)m.n;
    printf("bench_pgext merge: %zu TTFT windows of %ld s (default simulator, 3 models, "
           "%.1f s to simulate): %.1f requests, span %.1f buckets, %.1f non-empty, "
           "%.1f packed bytes per window\n",
           m.n, window_s, (double)(t1 - t0) / 1e9, m.requests / n, m.span / n, m.nonempty / n,
           m.bytes / n);
    printf("rows %zu\nold_rows %zu\nrequests %.1f\nspan %.1f\nnonempty %.1f\npacked %.1f\n", m.n,
           m.old_rows, m.requests / n, m.span / n, m.nonempty / n, m.bytes / n);
    printf("dense_span_bytes %.1f\n", 8.0 * m.span / n);

    printf("raw_mismatch %llu\n", (unsigned long long)g.mismatched);
    for (size_t i = 0; i < m.n; i++) {
        free(m.packed[i]);
        ww_hist_fini(&m.hist[i]);
    }
    free(m.packed);
    free(m.len);
    free(m.hist);
    s_gen_fini(&g);
    return 0;
}

/* Reads the rows of merge.bin (binary COPY of (int4, ww_hist)) into m: packed and
 * unpacked. */
static void s_read_copy(const char *path, merge_t *m)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        s_die("cannot open merge.bin");
    }
    uint8_t head[19], b[12];
    if (fread(head, 1, sizeof head, f) != sizeof head || memcmp(head, "PGCOPY\n\377\r\n\0", 11)) {
        s_die("merge.bin: not binary COPY");
    }
    size_t cap = 0;
    for (;;) {
        if (fread(b, 1, 2, f) != 2) {
            s_die("merge.bin: truncated");
        }
        if (b[0] == 0xff && b[1] == 0xff) {
            break;
        }
        if (fread(b, 1, 12, f) != 12) { /* 4 (the id's length), the id, the histogram's length */
            s_die("merge.bin: truncated");
        }
        size_t len = (size_t)b[8] << 24 | (size_t)b[9] << 16 | (size_t)b[10] << 8 | b[11];
        if (m->n == cap) {
            cap = cap ? 2 * cap : 1024;
            m->packed = s_xrealloc(m->packed, cap * sizeof *m->packed);
            m->len = s_xrealloc(m->len, cap * sizeof *m->len);
            m->hist = s_xrealloc(m->hist, cap * sizeof *m->hist);
        }
        size_t i = m->n++;
        m->packed[i] = s_xrealloc(NULL, len ? len : 1);
        m->len[i] = len;
        if (fread(m->packed[i], 1, len, f) != len) {
            s_die("merge.bin: truncated");
        }
        const char *why = NULL;
        ww_hist_init(&m->hist[i], WW_HIST_DEFAULT_SCALE);
        if (ww_hist_unpack(m->packed[i], len, &m->hist[i], &why) != 0) {
            s_die(why ? why : "ww_hist_unpack failed");
        }
    }
    fclose(f);
}

/* The C merges of the first `first` rows and of all rows of DIR/merge.bin. */
static int s_cmerge_main(const char *dir, size_t first)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/merge.bin", dir);
    merge_t m = {0};
    s_read_copy(path, &m);
    size_t sizes[2] = {first < m.n ? first : m.n, m.n};
    for (int s = 0; s < 2; s++) {
        ww_hist_t a, b, u, st;
        ww_hist_init(&a, WW_HIST_DEFAULT_SCALE);
        ww_hist_init(&b, WW_HIST_DEFAULT_SCALE);
        ww_hist_init(&u, WW_HIST_DEFAULT_SCALE);
        ww_hist_init(&st, WW_HIST_DEFAULT_SCALE);
        double ns_u = s_time_merge(&m, sizes[s], MERGE_UNPACKED, &a);
        double ns_p = s_time_merge(&m, sizes[s], MERGE_PACKED, &b);
        double ns_s = s_time_merge(&m, sizes[s], MERGE_STORED, &st);
        double ns_d = s_time_merge(&m, sizes[s], UNPACK_ONLY, &u);
        uint8_t *pa = NULL, *pb = NULL;
        long la = s_pack(&a, &pa), lb = s_pack(&b, &pb);
        uint8_t *ps = NULL;
        long ls = s_pack(&st, &ps);
        bool same = la == lb && memcmp(pa, pb, (size_t)la) == 0 && la == ls &&
                    memcmp(pa, ps, (size_t)la) == 0;
        printf("c_merge_ns_%zu %.1f\nc_merge_packed_ns_%zu %.1f\nc_merge_stored_ns_%zu %.1f\n"
               "c_unpack_ns_%zu %.1f\nc_merged_count_%zu %llu\nc_merged_same_%zu %d\n",
               sizes[s], ns_u, sizes[s], ns_p, sizes[s], ns_s, sizes[s], ns_d, sizes[s],
               (unsigned long long)a.count, sizes[s], same ? 1 : 0);
        free(ps);
        ww_hist_fini(&st);
        free(pa);
        free(pb);
        ww_hist_fini(&a);
        ww_hist_fini(&b);
        ww_hist_fini(&u);
    }
    for (size_t i = 0; i < m.n; i++) {
        free(m.packed[i]);
        ww_hist_fini(&m.hist[i]);
    }
    free(m.packed);
    free(m.len);
    free(m.hist);
    return 0;
}

/* ---- windows: latency_windows rows by the collector's encoder ----------------------- */

typedef struct {
    ww_copy_t copy;
    ww_lwbuf_t lw;
    FILE *old, *hdr;
    double payload[NKIND], floor_bits[NKIND], requests;
    size_t n;
} windows_t;

static void s_lw_window(gen_t *g, unsigned node, unsigned model, int64_t start_ns,
                        int64_t duration_ns, const ww_lat_window_t *w, const vec_t raw[NKIND])
{
    windows_t *x = g->arg;
    char node_id[32];
    snprintf(node_id, sizeof node_id, "wse-hall1-%04u", node); /* 14 characters */
    const char *model_name = g->models[model].name;
    ww_lwbuf_reset(&x->lw);
    if (ww_lwbuf_add(&x->lw, node_id, model_name, start_ns, duration_ns, w) != 0) {
        s_die("ww_lwbuf_add failed");
    }
    ww_copy_window(&x->copy, x->lw.ptrs[0]);
    x->n++;
    x->requests += (double)(w->ok + w->error + w->timeout + w->rejected);

    const ww_hist_t *h[NKIND] = {&w->queue, &w->ttft, &w->tpot, &w->e2e};
    for (int k = 0; k < NKIND; k++) {
        uint8_t *p = NULL;
        x->payload[k] += (double)s_pack(h[k], &p);
        free(p);
        x->floor_bits[k] += s_entropy_bits(h[k]);
        for (size_t i = 0; i < raw[k].n; i++) {
            double us = raw[k].v[i] * 1e6;
            fprintf(x->hdr, i ? " %lld" : "%lld", (long long)llround(us < 0 ? 0 : us));
        }
        fputc('\n', x->hdr);
    }

    /* The v12 row: time (whole seconds: the grid is), node, model, duration, counts,
     * the four composites. */
    time_t secs = (time_t)(start_ns / SEC);
    struct tm tm;
    char ts[64];
    gmtime_r(&secs, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S+00", &tm);
    fprintf(x->old, "%s\t%s\t%s\t%.17g\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu", ts, node_id,
            model_name, (double)duration_ns / 1e9, (unsigned long long)w->ok,
            (unsigned long long)w->error, (unsigned long long)w->timeout,
            (unsigned long long)w->rejected, (unsigned long long)w->prompt_tokens,
            (unsigned long long)w->output_tokens);
    for (int k = 0; k < NKIND; k++) {
        fputc('\t', x->old);
        s_put_old(x->old, h[k]);
    }
    fputc('\n', x->old);
}

static int s_windows_main(const char *dir, unsigned nodes, long seconds)
{
    windows_t x = {0};
    ww_lwbuf_init(&x.lw);
    x.old = s_open(dir, "lw_old.txt");
    x.hdr = s_open(dir, "hdr.txt");
    gen_t g;
    s_gen_init(&g, s_lw_window, &x);
    ww_copy_begin(&x.copy);
    s_generate(&g, nodes, seconds, 10);
    ww_copy_end(&x.copy);
    if (x.copy.buf.oom || x.copy.range) {
        s_die("COPY encoding failed");
    }
    s_write_file(dir, "lw.bin", x.copy.buf.p, x.copy.buf.len);
    fclose(x.old);
    fclose(x.hdr);

    double n = (double)x.n, pay = 0, fl = 0;
    for (int k = 0; k < NKIND; k++) {
        pay += x.payload[k];
        fl += x.floor_bits[k];
    }
    printf("bench_pgext windows: %zu latency windows (%u nodes x %ld s, 10 s windows, "
           "%.1f requests each): packed histograms %.1f B, entropy floor %.1f B per window\n",
           x.n, nodes, seconds, x.requests / n, pay / n, fl / 8.0 / n);
    printf("windows %zu\nwin_requests %.1f\npayload %.1f\nfloor %.1f\n", x.n, x.requests / n,
           pay / n, fl / 8.0 / n);
    static const char *const names[NKIND] = {"queue", "ttft", "tpot", "e2e"};
    for (int k = 0; k < NKIND; k++) {
        printf("payload_%s %.1f\nfloor_%s %.1f\n", names[k], x.payload[k] / n, names[k],
               x.floor_bits[k] / 8.0 / n);
    }
    printf("raw_mismatch %llu\n", (unsigned long long)g.mismatched);
    ww_copy_fini(&x.copy);
    ww_lwbuf_fini(&x.lw);
    s_gen_fini(&g);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "merge") == 0) {
        long rows = atol(argv[3]), old_rows = atol(argv[4]), window_s = atol(argv[5]);
        if (rows > 0 && old_rows >= 0 && window_s > 0) {
            return s_merge_main(argv[2], (size_t)rows, (size_t)old_rows, window_s);
        }
    } else if (argc == 4 && strcmp(argv[1], "cmerge") == 0) {
        long first = atol(argv[3]);
        if (first > 0) {
            return s_cmerge_main(argv[2], (size_t)first);
        }
    } else if (argc == 5 && strcmp(argv[1], "windows") == 0) {
        long nodes = atol(argv[3]), seconds = atol(argv[4]);
        if (nodes > 0 && seconds >= 10) {
            return s_windows_main(argv[2], (unsigned)nodes, seconds);
        }
    }
    fprintf(stderr, "usage: bench_pgext merge DIR ROWS OLD_ROWS WINDOW_S\n"
                    "       bench_pgext cmerge DIR FIRST\n"
                    "       bench_pgext windows DIR NODES SECONDS\n");
    return 2;
}
