/* bench_sblock: what a node-hour of samples costs as a ww_sblock block (lib/ww_sblock.h),
 * beside the entropy of the same readings, and how fast it encodes and decodes.
 *
 * Data: NODES nodes (default 8) of the default simulator (agent/sources/ww_sim: the agent's
 * calibrated defaults, three models, ~30 arrivals/s with bursts, 1 Hz), each sampled for one
 * hour after a 60 s warm-up, starting 2027-01-01 12:00 UTC. One node in four (0, 4) suffers
 * a pump degradation from minute 20 to 35 (flow 0.3x: the wafer heats and throttles), and
 * the last node has no humidity sensor (humidity_pct NULL all hour), as a fleet would. Each
 * reading is quantized to its resolution (WW_FIELD_RES_<name>, ww_fields.h) with
 * ww_sblock_quantize(), what the agent will send; the same hours unquantized (the readings
 * as the simulator gives them, every float off the grid) are encoded too, for comparison.
 *
 * Printed, per column and in all:
 *  - block:   bytes per sample of the encoded blocks (each column's section, its length
 *             prefix included; the block head in the total);
 *  - H(delta): the Shannon entropy floor of the column's deltas: per block, the empirical
 *             entropy of the sample-to-sample deltas of the grid index k (of u for U32, of
 *             0/1 for BOOL, the delta-of-delta for times), in bits times the count; summed
 *             over blocks, per sample, in bytes. It does not count what a decoder must be
 *             told of the distribution itself, so no order-0 code of the deltas goes below;
 *  - H(pool): the entropy of the same deltas pooled over all the node-hours: the per-block
 *             figure is biased low where a block's deltas rarely repeat (it cannot pass
 *             log2(3600) = 11.8 bits: tokens_per_s, power_w), the pooled one less so;
 *  - H(value): the per-block entropy of the values themselves (what a code of k, not of its
 *             delta, could reach), for reference;
 *  - varint:  what one zigzag varint per delta (the plain design) would take.
 * Then encode, decode (into an array) and iterator (one sample at a time) speed in ns per
 * sample, fastest of 5 runs.
 *
 *   build/bench/bench_sblock [NODES]
 */
#include "ww_sblock.h"
#include "ww_sim.h"
#include "ww_sim_defaults.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEC 1000000000LL
#define T0 (1798761600LL * SEC + 12 * 3600 * SEC) /* 2027-01-01 12:00 UTC, as bench_sim */
#define PG_EPOCH_S 946684800LL                    /* 2000-01-01 UTC in Unix seconds */
#define HOUR 3600
#define WARM 60

static void s_die(const char *what)
{
    fprintf(stderr, "bench_sblock: %s\n", what);
    exit(1);
}

static int64_t s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

/* One node-hour of the simulator into s[0 .. HOUR). */
static void s_node_hour(const ww_sim_conf_t *c, unsigned node, bool has_rh, ww_sblock_sample_t *s)
{
    void *st = NULL;
    if (ww_sim_source.open(c, node, T0, &st) != 0) {
        s_die("simulator: open failed");
    }
    for (int i = -WARM; i < HOUR; i++) {
        int64_t t = T0 + (int64_t)(i + WARM + 1) * SEC;
        ww_reading_t r;
        if (ww_sim_source.sample(st, t, &r) != 0) {
            s_die("simulator: sample failed");
        }
        /* Keep the records from piling up (the agent hands them to its latency windows). */
        ww_request_t req[256];
        while (ww_sim_source.poll_requests(st, req, 256) == 256) {
        }
        if (i < 0) {
            continue;
        }
        ww_sblock_sample_t *x = &s[i];
        memset(x, 0, sizeof *x);
        x->time_us = t / 1000 - PG_EPOCH_S * 1000000;
#define COPY_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc) x->name = r.name;
        WW_READING_FIELDS(COPY_)
#undef COPY_
        x->humidity_pct_null = !has_rh || isnan(r.humidity_pct);
        if (x->humidity_pct_null) {
            x->humidity_pct = 0.0f;
        }
    }
    ww_sim_source.close(&st);
}

static void s_quantize(ww_sblock_sample_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t c = 1; c < WW_SBLOCK_NCOLS; c++) {
            const ww_sblock_column_t *col = ww_sblock_column(c);
            if (col->kind == WW_FIELD_KIND_F32) {
                float *f = (float *)((char *)&s[i] + col->off);
                *f = ww_sblock_quantize(*f, col->res);
            }
        }
    }
}

/* ---- entropy ------------------------------------------------------------------------ */

static int s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* n * the empirical entropy of v[0 .. n) (sorted in place), in bits. */
static double s_bits(int64_t *v, size_t n)
{
    if (n == 0) {
        return 0.0;
    }
    qsort(v, n, sizeof *v, s_cmp_i64);
    double bits = 0.0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && v[j] == v[i]) {
            j++;
        }
        double p = (double)(j - i) / (double)n;
        bits -= (double)(j - i) * log2(p);
        i = j;
    }
    return bits;
}

static size_t s_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

typedef struct {
    double block_bytes, raw_bytes, h_delta_bits, h_value_bits, varint_bytes;
    size_t escapes;
    int64_t *pool; /* every block's deltas, and their count */
    size_t npool;
} s_col_stat_t;

/* Adds the entropy and the varint size of column c of s[0 .. n) to *st. The "values" are k
 * (F32 on the grid: escapes counted apart, 32 bits each in both floors), u, 0/1, time. */
static void s_column_floor(const ww_sblock_sample_t *s, size_t n, size_t c, s_col_stat_t *st,
                           int64_t *val, int64_t *del)
{
    const ww_sblock_column_t *col = ww_sblock_column(c);
    size_t nv = 0, nd = 0;
    for (size_t i = 0; i < n; i++) {
        const char *at = (const char *)&s[i] + col->off;
        if (col->optional && *(const bool *)((const char *)&s[i] + col->null_off)) {
            continue;
        }
        int64_t x;
        if (c == 0) {
            x = s[i].time_us;
        } else if (col->kind == WW_FIELD_KIND_F32) {
            float f;
            memcpy(&f, at, sizeof f);
            if (!ww_sblock_grid_index(f, col->res, &x)) {
                st->escapes++;
                st->h_delta_bits += 32;
                st->h_value_bits += 32;
                st->varint_bytes += 4;
                continue;
            }
        } else if (col->kind == WW_FIELD_KIND_U32) {
            uint32_t u;
            memcpy(&u, at, sizeof u);
            x = u;
        } else {
            x = *(const bool *)at;
        }
        val[nv++] = x;
    }
    for (size_t i = 1; i < nv; i++) {
        int64_t d = val[i] - val[i - 1];
        if (c == 0) {
            if (i < 2) {
                continue;
            }
            d -= val[i - 1] - val[i - 2]; /* delta of delta */
        }
        del[nd++] = d;
        st->pool[st->npool++] = d;
        st->varint_bytes += (double)s_varint_len(((uint64_t)d << 1) ^ (uint64_t)(d >> 63));
    }
    if (nv > 0) {
        st->varint_bytes +=
            (double)s_varint_len(((uint64_t)val[0] << 1) ^ (uint64_t)(val[0] >> 63));
    }
    st->h_delta_bits += s_bits(del, nd);
    st->h_value_bits += s_bits(val, nv);
}

/* Adds each column's section size (its length prefix included) of the block p[0 .. len) to
 * st[c].block_bytes, or st[c].raw_bytes when `raw`. Returns the head's size. */
static size_t s_sections(const uint8_t *p, size_t len, s_col_stat_t *st, bool raw)
{
    size_t pos = 2, head;
    uint64_t v = 0;
    int sh = 0;
    do {
        v |= (uint64_t)(p[pos] & 0x7f) << sh;
        sh += 7;
    } while (p[pos++] & 0x80);
    head = pos;
    for (size_t c = 0; c < WW_SBLOCK_NCOLS && pos < len; c++) {
        size_t start = pos;
        v = 0;
        sh = 0;
        do {
            v |= (uint64_t)(p[pos] & 0x7f) << sh;
            sh += 7;
        } while (p[pos++] & 0x80);
        pos += (size_t)v;
        *(raw ? &st[c].raw_bytes : &st[c].block_bytes) += (double)(pos - start);
    }
    return head;
}

/* ---- main --------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    unsigned nodes = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 8;
    if (nodes < 1 || nodes > 1000) {
        fprintf(stderr, "usage: bench_sblock [NODES 1..1000]\n");
        return 2;
    }
    ww_sim_model_t models[WW_SIM_MAX_MODELS];
    ww_sim_conf_t c;
    ww_sim_conf_set_defaults(&c);
    c.n_models = ww_sim_default_models(models, WW_SIM_MAX_MODELS);
    c.models = models;
    c.pump_fault = true;
    c.pump_fault_every = 4;
    c.pump_fault_start_s = WARM + 20 * 60;
    c.pump_fault_duration_s = 15 * 60;
    const size_t n = HOUR;
    ww_sblock_sample_t **raw = calloc(nodes, sizeof *raw), **qs = calloc(nodes, sizeof *qs);
    if (!raw || !qs) {
        s_die("out of memory");
    }
    int64_t a = s_now();
    for (unsigned k = 0; k < nodes; k++) {
        raw[k] = malloc(n * sizeof **raw);
        qs[k] = malloc(n * sizeof **qs);
        if (!raw[k] || !qs[k]) {
            s_die("out of memory");
        }
        s_node_hour(&c, k, k + 1 < nodes || nodes == 1, raw[k]);
        memcpy(qs[k], raw[k], n * sizeof **qs);
        s_quantize(qs[k], n);
    }
    double sim_s = (double)(s_now() - a) / 1e9;

    /* Sizes and floors. */
    s_col_stat_t st[WW_SBLOCK_NCOLS];
    memset(st, 0, sizeof st);
    for (size_t col = 0; col < WW_SBLOCK_NCOLS; col++) {
        if (!(st[col].pool = malloc(n * nodes * sizeof(int64_t)))) {
            s_die("out of memory");
        }
    }
    int64_t *val = malloc(n * sizeof *val), *del = malloc(n * sizeof *del);
    ww_buf_t *blocks = calloc(nodes, sizeof *blocks);
    if (!val || !del || !blocks) {
        s_die("out of memory");
    }
    double total = 0, head = 0, raw_total = 0;
    char why[256];
    for (unsigned k = 0; k < nodes; k++) {
        if (ww_sblock_encode(qs[k], n, &blocks[k], why, sizeof why) != 0) {
            s_die(why);
        }
        total += (double)blocks[k].len;
        head += (double)s_sections((const uint8_t *)blocks[k].p, blocks[k].len, st, false);
        for (size_t col = 0; col < WW_SBLOCK_NCOLS; col++) {
            s_column_floor(qs[k], n, col, &st[col], val, del);
        }
        ww_buf_t rb = WW_BUF_INIT;
        if (ww_sblock_encode(raw[k], n, &rb, why, sizeof why) != 0) {
            s_die(why);
        }
        raw_total += (double)rb.len;
        s_sections((const uint8_t *)rb.p, rb.len, st, true);
        ww_buf_free(&rb);
    }
    double ns = (double)n * nodes;
    printf("bench_sblock: %u node-hours of the default simulator at 1 Hz (%.0f samples; "
           "pump fault on nodes %% 4 == 0, no humidity sensor on the last), quantized to "
           "ww_fields.h's resolutions; simulated in %.2f s\n",
           nodes, ns, sim_s);
    printf("  %-20s %9s %9s %9s %9s %9s %8s %11s\n", "bytes/sample", "block", "H(delta)", "H(pool)",
           "H(value)", "varint", "escapes", "unquantized");
    double sum_h = 0, sum_hp = 0, sum_hv = 0, sum_v = 0;
    for (size_t col = 0; col < WW_SBLOCK_NCOLS; col++) {
        const ww_sblock_column_t *cd = ww_sblock_column(col);
        double b = st[col].block_bytes / ns, h = st[col].h_delta_bits / 8 / ns;
        double hv = st[col].h_value_bits / 8 / ns, v = st[col].varint_bytes / ns;
        /* Escapes are 32 bits in both floors. */
        double hp = (s_bits(st[col].pool, st[col].npool) + 32.0 * (double)st[col].escapes) / 8 / ns;
        sum_h += h;
        sum_hp += hp;
        sum_hv += hv;
        sum_v += v;
        printf("  %-20s %9.4f %9.4f %9.4f %9.4f %9.4f %8zu %11.4f\n", cd->name, b, h, hp, hv, v,
               st[col].escapes, st[col].raw_bytes / ns);
        free(st[col].pool);
    }
    printf("  %-20s %9.4f\n", "(block head)", head / ns);
    printf("  %-20s %9.4f %9.4f %9.4f %9.4f %9.4f %8s %11.4f\n", "total", total / ns, sum_h, sum_hp,
           sum_hv, sum_v, "", raw_total / ns);
    printf("  block / H(delta) %.3f, / H(pool) %.3f; a node-hour block %.0f bytes; raw "
           "node_samples rows ~152 "
           "bytes/sample\n",
           total / ns / sum_h, total / ns / sum_hp, total / nodes);
    printf("  unquantized: the same hours as the simulator gives them (every float off the grid, "
           "escaped)\n");

    /* Speed: fastest of 5 runs over all node-hours. */
    ww_sblock_sample_t *out = malloc(n * sizeof *out);
    ww_sblock_iter_t *it = malloc(sizeof *it);
    if (!out || !it) {
        s_die("out of memory");
    }
    double best_enc = 1e30, best_dec = 1e30, best_it = 1e30;
    uint64_t sink = 0;
    ww_buf_t b = WW_BUF_INIT;
    for (int run = 0; run < 5; run++) {
        int64_t t0 = s_now();
        for (unsigned k = 0; k < nodes; k++) {
            ww_buf_reset(&b);
            if (ww_sblock_encode(qs[k], n, &b, NULL, 0) != 0) {
                s_die("encode failed");
            }
            sink += b.len;
        }
        int64_t t1 = s_now();
        for (unsigned k = 0; k < nodes; k++) {
            size_t m;
            if (ww_sblock_decode((const uint8_t *)blocks[k].p, blocks[k].len, out, n, &m, why,
                                 sizeof why) != 0 ||
                m != n || memcmp(&out[n - 1].time_us, &qs[k][n - 1].time_us, 8) != 0) {
                s_die("decode failed");
            }
            sink += (uint64_t)out[m / 2].requests_completed;
        }
        int64_t t2 = s_now();
        for (unsigned k = 0; k < nodes; k++) {
            if (ww_sblock_iter_init(it, (const uint8_t *)blocks[k].p, blocks[k].len, why,
                                    sizeof why) != 0) {
                s_die("iter_init failed");
            }
            ww_sblock_sample_t s;
            while (ww_sblock_iter_next(it, &s)) {
                sink += (uint64_t)s.requests_in_flight;
            }
        }
        int64_t t3 = s_now();
        best_enc = fmin(best_enc, (double)(t1 - t0) / ns);
        best_dec = fmin(best_dec, (double)(t2 - t1) / ns);
        best_it = fmin(best_it, (double)(t3 - t2) / ns);
    }
    printf("  ns/sample (fastest of 5): encode %.1f, decode %.1f, iterator %.1f (check + "
           "one sample at a time)\n",
           best_enc, best_dec, best_it);
    ww_buf_free(&b);
    for (unsigned k = 0; k < nodes; k++) {
        free(raw[k]);
        free(qs[k]);
        ww_buf_free(&blocks[k]);
    }
    for (size_t i = 0; i < c.n_models; i++) {
        free(models[i].name);
    }
    free(raw);
    free(qs);
    free(blocks);
    free(val);
    free(del);
    free(out);
    free(it);
    return sink == 42 ? 3 : 0;
}
