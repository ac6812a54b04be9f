/* ww_wblock: see ww_wblock.h for the format.
 *
 * One pass each way, window by window. The encoder takes each histogram apart with
 * ww_hist_pack_head (after ww_hist_unpack has checked it whole) and writes its fields; the
 * decoder reads the fields back, rebuilds the packed bytes with ww_hist_pack_join into the
 * caller's arena and checks them whole with ww_hist_unpack into one scratch histogram
 * (its bucket array reused from histogram to histogram). Reads are bounded by the block's
 * length at every step; nothing is allocated but the scratch histogram's buckets.
 */
#include "ww_wblock.h"

#include "ww_hist.h"
#include "ww_hist_pack.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define S_M_MODEL 0x10u
#define S_M_DUR 0x20u
#define S_M_PARTS 0x40u
#define S_M_HEAD(k) (1u << (k))

#define S_DBL_RAW 0u
#define S_DBL_NS 1u
#define S_DBL_NEG_NS 2u

static const char *const s_hist_names[WW_WBLOCK_NHIST] = {"queue", "ttft", "tpot", "e2e"};

static int s_fail(char *why, size_t why_len, size_t window, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int s_fail(char *why, size_t why_len, size_t window, const char *fmt, ...)
{
    if (why && why_len) {
        int n = window == SIZE_MAX ? 0 : snprintf(why, why_len, "window %zu: ", window);
        if (n >= 0 && (size_t)n < why_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(why + n, why_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -EINVAL;
}

static uint64_t s_zz(int64_t s)
{
    return ((uint64_t)s << 1) ^ (uint64_t)(s >> 63);
}

static int64_t s_unzz(uint64_t z)
{
    return (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
}

static uint64_t s_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static double s_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static int s_varint_len(uint64_t v)
{
    int n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* ---- encoding ---------------------------------------------------------------------- */

static void s_put_varint(ww_buf_t *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    while (v >= 0x80) {
        t[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    t[n++] = (uint8_t)v;
    ww_buf_put(b, t, n);
}

static void s_put_u8(ww_buf_t *b, unsigned v)
{
    uint8_t t = (uint8_t)v;
    ww_buf_put(b, &t, 1);
}

/* The code of d (S_DBL_*) and, for the nanosecond codes, its k and e. Deterministic: the
 * decoder computes (double)k / 1e9 the same way. */
static unsigned s_dbl_plan(double d, uint64_t *k, int64_t *e)
{
    double a = fabs(d);
    /* Below 2^53 ns (~104 days in seconds) k is exact; past it, 8 bytes are as short. */
    if (!isfinite(d) || d == 0 || a >= 9.0e6) {
        return S_DBL_RAW;
    }
    double kd = nearbyint(a * 1e9);
    if (kd < 1) {
        return S_DBL_RAW;
    }
    *k = (uint64_t)kd;
    double r = (double)*k / 1e9;
    *e = (int64_t)(s_bits(a) - s_bits(r)); /* both positive and finite: within int64 */
    if (s_varint_len(*k) + s_varint_len(s_zz(*e)) >= 8) {
        return S_DBL_RAW;
    }
    return signbit(d) ? S_DBL_NEG_NS : S_DBL_NS;
}

static void s_put_dbl(ww_buf_t *b, double d, unsigned code, uint64_t k, int64_t e)
{
    if (code == S_DBL_RAW) {
        uint64_t v = s_bits(d);
        uint8_t t[8];
        for (int i = 0; i < 8; i++) {
            t[i] = (uint8_t)(v >> (8 * i));
        }
        ww_buf_put(b, t, sizeof t);
    } else {
        s_put_varint(b, k);
        s_put_varint(b, s_zz(e));
    }
}

typedef struct {
    int scale;
    unsigned flags;
    int32_t first; /* of the last window whose histogram k had buckets; 0 before */
} s_prev_hist_t;

int ww_wblock_encode(const char *const *models, const size_t *model_len, size_t m,
                     const ww_wblock_window_t *w, size_t n, ww_buf_t *out, char *why,
                     size_t why_len)
{
    if (n < 1 || n > WW_WBLOCK_MAX_WINDOWS) {
        return s_fail(why, why_len, SIZE_MAX, "%zu windows: a block holds 1 .. %d", n,
                      WW_WBLOCK_MAX_WINDOWS);
    }
    if (m < 1 || m > WW_WBLOCK_MAX_MODELS) {
        return s_fail(why, why_len, SIZE_MAX, "%zu models: a block holds 1 .. %d", m,
                      WW_WBLOCK_MAX_MODELS);
    }
    s_put_u8(out, WW_WBLOCK_VERSION);
    s_put_varint(out, n);
    s_put_varint(out, m);
    for (size_t j = 0; j < m; j++) {
        if (model_len[j] > WW_WBLOCK_MAX_MODEL_LEN) {
            return s_fail(why, why_len, SIZE_MAX, "model %zu: %zu bytes, at most %d", j,
                          model_len[j], WW_WBLOCK_MAX_MODEL_LEN);
        }
        s_put_varint(out, model_len[j]);
        ww_buf_put(out, models[j], model_len[j]);
    }
    ww_hist_t scratch;
    ww_hist_init(&scratch, 0);
    s_prev_hist_t prev[WW_WBLOCK_NHIST] = {{0}};
    int rc = 0;
    uint64_t t_prev = 0, d_prev = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const ww_wblock_window_t *x = &w[i];
        if (x->model >= m) {
            rc = s_fail(why, why_len, i, "model index %u, the block has %zu models",
                        (unsigned)x->model, m);
            break;
        }
        ww_hist_pack_head_t hd[WW_WBLOCK_NHIST];
        unsigned mask = 0;
        for (int k = 0; k < WW_WBLOCK_NHIST; k++) {
            const char *hwhy = "";
            int hrc = ww_hist_unpack(x->hist[k], x->hist_len[k], &scratch, &hwhy);
            if (hrc == 0) {
                hrc = ww_hist_pack_head(x->hist[k], x->hist_len[k], &hd[k], &hwhy);
            }
            if (hrc == -ENOMEM) {
                rc = -ENOMEM;
                break;
            }
            if (hrc < 0) {
                rc = s_fail(why, why_len, i, "%s: not a valid packed histogram: %s",
                            s_hist_names[k], hwhy);
                break;
            }
            unsigned flags = x->hist[k][1];
            if (i == 0 || prev[k].scale != hd[k].scale || prev[k].flags != flags) {
                mask |= S_M_HEAD(k);
            }
        }
        if (rc < 0) {
            break;
        }
        if (i == 0 || x->model != w[i - 1].model) {
            mask |= S_M_MODEL;
        }
        if (i == 0 || s_bits(x->duration_s) != s_bits(w[i - 1].duration_s)) {
            mask |= S_M_DUR;
        }
        if (x->parts != 1) {
            mask |= S_M_PARTS;
        }
        s_put_u8(out, mask);
        if (mask & S_M_MODEL) {
            s_put_varint(out, x->model);
        }
        uint64_t t = (uint64_t)x->time_us;
        if (i == 0) {
            s_put_varint(out, s_zz(x->time_us));
        } else {
            uint64_t d = t - t_prev;
            s_put_varint(out, s_zz((int64_t)(d - d_prev)));
            d_prev = d;
        }
        t_prev = t;
        if (mask & S_M_DUR) {
            uint64_t k = 0;
            int64_t e = 0;
            unsigned code = s_dbl_plan(x->duration_s, &k, &e);
            s_put_u8(out, code);
            s_put_dbl(out, x->duration_s, code, k, e);
        }
        if (mask & S_M_PARTS) {
            s_put_varint(out, s_zz(x->parts));
        }
        const int64_t ctr[6] = {x->requests_ok,       x->requests_error, x->requests_timeout,
                                x->requests_rejected, x->prompt_tokens,  x->output_tokens};
        unsigned zeros = 0;
        for (int c = 0; c < 6; c++) {
            zeros |= ctr[c] == 0 ? 1u << c : 0;
        }
        s_put_u8(out, zeros);
        for (int c = 0; c < 6; c++) {
            if (ctr[c] != 0) {
                s_put_varint(out, s_zz(ctr[c]));
            }
        }
        for (int k = 0; k < WW_WBLOCK_NHIST; k++) {
            const ww_hist_pack_head_t *h = &hd[k];
            unsigned flags = x->hist[k][1];
            if (mask & S_M_HEAD(k)) {
                s_put_u8(out, (unsigned)h->scale);
                s_put_u8(out, flags);
            }
            if (k == 0) {
                s_put_varint(out, h->count);
            } else { /* both counts <= INT64_MAX: the difference is an int64 */
                s_put_varint(out, s_zz((int64_t)h->count - (int64_t)hd[k - 1].count));
            }
            if (flags & WW_HIST_PACK_F_ZERO) { /* <= count in a valid histogram */
                s_put_varint(out, h->count - h->zero_count);
            }
            if (flags & WW_HIST_PACK_F_UNDER) {
                s_put_varint(out, h->underflow);
            }
            if (flags & WW_HIST_PACK_F_OVER) {
                s_put_varint(out, h->overflow);
            }
            if (flags & WW_HIST_PACK_F_FINITE) {
                const unsigned fl[3] = {WW_HIST_PACK_F_SUM, WW_HIST_PACK_F_MIN, WW_HIST_PACK_F_MAX};
                const double v[3] = {h->sum, h->min, h->max};
                unsigned code[3] = {0, 0, 0};
                uint64_t kk[3] = {0, 0, 0};
                int64_t ee[3] = {0, 0, 0};
                for (int j = 0; j < 3; j++) {
                    if (flags & fl[j]) {
                        code[j] = s_dbl_plan(v[j], &kk[j], &ee[j]);
                    }
                }
                s_put_u8(out, code[0] | code[1] << 2 | code[2] << 4);
                for (int j = 0; j < 3; j++) {
                    if (flags & fl[j]) {
                        s_put_dbl(out, v[j], code[j], kk[j], ee[j]);
                    }
                }
            }
            s_put_varint(out, h->nb);
            if (h->nb > 0) {
                s_put_varint(out, s_zz((int64_t)h->first - prev[k].first));
                s_put_u8(out, (unsigned)(h->k_gap << 4 | h->k_count));
                ww_buf_put(out, h->bits, h->n_bits_bytes);
                prev[k].first = h->first;
            }
            prev[k].scale = h->scale;
            prev[k].flags = flags;
        }
    }
    ww_hist_fini(&scratch);
    if (rc == 0 && out->oom) {
        rc = -ENOMEM;
    }
    return rc;
}

/* ---- decoding ---------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t len, pos;
} s_rd_t;

static bool s_u8(s_rd_t *r, unsigned *v)
{
    if (r->pos >= r->len) {
        return false;
    }
    *v = r->p[r->pos++];
    return true;
}

/* A minimal varint below 2^64. */
static bool s_varint(s_rd_t *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < 10; i++) {
        if (r->pos >= r->len) {
            return false;
        }
        uint8_t b = r->p[r->pos++];
        if (i == 9 && b > 1) {
            return false;
        }
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (i > 0 && b == 0) {
                return false; /* not minimal */
            }
            *v = x;
            return true;
        }
    }
    return false;
}

static bool s_zzread(s_rd_t *r, int64_t *v)
{
    uint64_t z;
    if (!s_varint(r, &z)) {
        return false;
    }
    *v = s_unzz(z);
    return true;
}

/* A double by its code; false when cut short or the code is refused. */
static bool s_dbl(s_rd_t *r, unsigned code, double *d)
{
    if (code == S_DBL_RAW) {
        if (r->len - r->pos < 8) {
            return false;
        }
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) {
            v |= (uint64_t)r->p[r->pos + (size_t)i] << (8 * i);
        }
        r->pos += 8;
        *d = s_double(v);
        return true;
    }
    if (code != S_DBL_NS && code != S_DBL_NEG_NS) {
        return false;
    }
    uint64_t k;
    int64_t e;
    if (!s_varint(r, &k) || !s_zzread(r, &e)) {
        return false;
    }
    double a = s_double(s_bits((double)k / 1e9) + (uint64_t)e);
    if (!isfinite(a) || a <= 0) { /* the codes hold finite non-zero doubles only */
        return false;
    }
    *d = code == S_DBL_NEG_NS ? -a : a;
    return true;
}

int ww_wblock_count(const uint8_t *p, size_t len, size_t *n, size_t *m)
{
    s_rd_t r = {p, len, 0};
    unsigned v;
    uint64_t nn, mm;
    if (!s_u8(&r, &v) || v != WW_WBLOCK_VERSION || !s_varint(&r, &nn) || nn < 1 ||
        nn > WW_WBLOCK_MAX_WINDOWS || !s_varint(&r, &mm) || mm < 1 || mm > WW_WBLOCK_MAX_MODELS) {
        return -EINVAL;
    }
    *n = (size_t)nn;
    *m = (size_t)mm;
    return 0;
}

size_t ww_wblock_arena_bound(size_t len, size_t n)
{
    return len + n * WW_WBLOCK_NHIST * WW_HIST_PACK_HEAD_MAX;
}

#define S_CUT(what) s_fail(why, why_len, i, "%s: cut short or not a valid code", what)

int ww_wblock_decode(const uint8_t *p, size_t len, ww_wblock_window_t *w, size_t n,
                     const char **models, size_t *model_len, size_t m, uint8_t *arena,
                     size_t arena_cap, char *why, size_t why_len)
{
    size_t hn, hm;
    if (ww_wblock_count(p, len, &hn, &hm) < 0) {
        return s_fail(why, why_len, SIZE_MAX,
                      "head: not a version-%d block head (version, "
                      "windows, models)",
                      WW_WBLOCK_VERSION);
    }
    if (hn != n || hm != m) {
        return s_fail(why, why_len, SIZE_MAX, "head: %zu windows and %zu models, not %zu and %zu",
                      hn, hm, n, m);
    }
    s_rd_t r = {p, len, 0};
    uint64_t skip;
    unsigned u;
    (void)s_u8(&r, &u);
    (void)s_varint(&r, &skip);
    (void)s_varint(&r, &skip);
    size_t used = 0;
    size_t i = SIZE_MAX;
    for (size_t j = 0; j < m; j++) {
        uint64_t l;
        if (!s_varint(&r, &l) || l > WW_WBLOCK_MAX_MODEL_LEN || r.len - r.pos < l ||
            arena_cap - used < l) {
            return s_fail(why, why_len, SIZE_MAX, "model %zu: its length is invalid or cut short",
                          j);
        }
        memcpy(arena + used, p + r.pos, (size_t)l);
        models[j] = (const char *)arena + used;
        model_len[j] = (size_t)l;
        used += (size_t)l;
        r.pos += (size_t)l;
    }
    ww_hist_t scratch;
    ww_hist_init(&scratch, 0);
    s_prev_hist_t prev[WW_WBLOCK_NHIST] = {{0}};
    uint64_t t_prev = 0, d_prev = 0;
    uint32_t model = 0;
    uint64_t dur_bits = 0;
    int rc = 0;
    for (i = 0; i < n && rc == 0; i++) {
        ww_wblock_window_t *x = &w[i];
        unsigned mask;
        if (!s_u8(&r, &mask)) {
            rc = S_CUT("mask");
            break;
        }
        const unsigned first_needs = S_M_MODEL | S_M_DUR | 0x0fu;
        if ((mask & 0x80u) || (i == 0 && (mask & first_needs) != first_needs)) {
            rc = s_fail(why, why_len, i,
                        "mask 0x%02x: a reserved bit set, or a first window "
                        "that does not say everything",
                        mask);
            break;
        }
        if (mask & S_M_MODEL) {
            uint64_t v;
            if (!s_varint(&r, &v) || v >= m) {
                rc = S_CUT("model index");
                break;
            }
            model = (uint32_t)v;
        }
        x->model = model;
        int64_t z;
        if (!s_zzread(&r, &z)) {
            rc = S_CUT("time");
            break;
        }
        if (i == 0) {
            t_prev = (uint64_t)z;
        } else {
            d_prev += (uint64_t)z;
            t_prev += d_prev;
        }
        x->time_us = (int64_t)t_prev;
        if (mask & S_M_DUR) {
            unsigned code;
            double d;
            if (!s_u8(&r, &code) || !s_dbl(&r, code, &d)) {
                rc = S_CUT("duration_s");
                break;
            }
            dur_bits = s_bits(d);
        }
        x->duration_s = s_double(dur_bits);
        x->parts = 1;
        if (mask & S_M_PARTS) {
            if (!s_zzread(&r, &z) || z == 1 || z < INT32_MIN || z > INT32_MAX) {
                rc = S_CUT("parts");
                break;
            }
            x->parts = (int32_t)z;
        }
        int64_t *ctr[6] = {&x->requests_ok,       &x->requests_error, &x->requests_timeout,
                           &x->requests_rejected, &x->prompt_tokens,  &x->output_tokens};
        unsigned zeros;
        if (!s_u8(&r, &zeros) || (zeros & 0xc0u)) {
            rc = S_CUT("zero counters");
            break;
        }
        for (int c = 0; c < 6 && rc == 0; c++) {
            *ctr[c] = 0;
            if (!(zeros & 1u << c) && (!s_zzread(&r, ctr[c]) || *ctr[c] == 0)) {
                rc = S_CUT("counters");
            }
        }
        uint64_t count_prev = 0;
        for (int k = 0; k < WW_WBLOCK_NHIST && rc == 0; k++) {
            const char *name = s_hist_names[k];
            ww_hist_pack_head_t hd;
            memset(&hd, 0, sizeof hd);
            if (mask & S_M_HEAD(k)) {
                unsigned sc, fl;
                if (!s_u8(&r, &sc) || !s_u8(&r, &fl) || sc > WW_HIST_MAX_SCALE || (fl & 0x80u)) {
                    rc = s_fail(why, why_len, i, "%s: scale or flags cut short or invalid", name);
                    break;
                }
                prev[k].scale = (int)sc;
                prev[k].flags = fl;
            }
            unsigned flags = prev[k].flags;
            hd.scale = prev[k].scale;
            if (k == 0) {
                if (!s_varint(&r, &hd.count)) {
                    rc = s_fail(why, why_len, i, "%s: count cut short", name);
                    break;
                }
            } else {
                int64_t dc, c;
                if (!s_zzread(&r, &dc) || __builtin_add_overflow((int64_t)count_prev, dc, &c) ||
                    c < 0) {
                    rc = s_fail(why, why_len, i, "%s: count cut short or out of range", name);
                    break;
                }
                hd.count = (uint64_t)c;
            }
            if (hd.count > INT64_MAX) {
                rc = s_fail(why, why_len, i, "%s: count past INT64_MAX", name);
                break;
            }
            count_prev = hd.count;
            uint64_t nonzero = 0;
            if ((flags & WW_HIST_PACK_F_ZERO) && (!s_varint(&r, &nonzero) || nonzero > hd.count)) {
                rc = s_fail(why, why_len, i, "%s: zero_count cut short or past count", name);
                break;
            }
            hd.zero_count = (flags & WW_HIST_PACK_F_ZERO) ? hd.count - nonzero : 0;
            if (((flags & WW_HIST_PACK_F_UNDER) && !s_varint(&r, &hd.underflow)) ||
                ((flags & WW_HIST_PACK_F_OVER) && !s_varint(&r, &hd.overflow))) {
                rc = s_fail(why, why_len, i, "%s: zero, underflow or overflow cut short", name);
                break;
            }
            hd.sum = 0;
            hd.min = hd.max = NAN;
            if (flags & WW_HIST_PACK_F_FINITE) {
                const unsigned fl[3] = {WW_HIST_PACK_F_SUM, WW_HIST_PACK_F_MIN, WW_HIST_PACK_F_MAX};
                double *v[3] = {&hd.sum, &hd.min, &hd.max};
                unsigned codes;
                if (!s_u8(&r, &codes) || (codes & 0xc0u)) {
                    rc = s_fail(why, why_len, i, "%s: double codes cut short or invalid", name);
                    break;
                }
                hd.min = hd.max = 0;
                for (int j = 0; j < 3 && rc == 0; j++) {
                    unsigned code = codes >> (2 * j) & 3u;
                    if (!(flags & fl[j])) {
                        if (code != 0) {
                            rc = s_fail(why, why_len, i, "%s: a code for an absent double", name);
                        }
                    } else if (!s_dbl(&r, code, v[j])) {
                        rc = s_fail(why, why_len, i, "%s: sum, min or max cut short or invalid",
                                    name);
                    }
                }
                if (rc < 0) {
                    break;
                }
            } else if (flags & (WW_HIST_PACK_F_SUM | WW_HIST_PACK_F_MIN | WW_HIST_PACK_F_MAX)) {
                rc = s_fail(why, why_len, i, "%s: sum, min or max without F_FINITE", name);
                break;
            }
            if (!s_varint(&r, &hd.nb)) {
                rc = s_fail(why, why_len, i, "%s: nb cut short", name);
                break;
            }
            if (hd.nb > 0) {
                int64_t df, first;
                unsigned orders;
                if (!s_zzread(&r, &df) || __builtin_add_overflow(df, prev[k].first, &first) ||
                    first < INT32_MIN || first > INT32_MAX || !s_u8(&r, &orders)) {
                    rc = s_fail(why, why_len, i, "%s: buckets cut short or invalid", name);
                    break;
                }
                hd.first = (int32_t)first;
                hd.k_gap = (int)(orders >> 4);
                hd.k_count = (int)(orders & 0x0f);
                /* The head checked first (its counters, nb, first within the scale's
                 * range): the walk that finds the stream's end relies on it. */
                const char *bwhy = "";
                ww_hist_pack_head_t chk;
                long hl = ww_hist_pack_join(&hd, arena + used, arena_cap - used);
                if (hl < 0 || ww_hist_pack_head(arena + used, (size_t)hl, &chk, &bwhy) < 0) {
                    rc = s_fail(why, why_len, i, "%s: %s", name,
                                hl == -ENOBUFS ? "the arena is too small"
                                : hl < 0       ? "invalid fields"
                                               : bwhy);
                    break;
                }
                hd.bits = p + r.pos;
                hd.n_bits_bytes = r.len - r.pos;
                long bl = ww_hist_pack_bits_len(&hd, &bwhy);
                if (bl < 0) {
                    rc = s_fail(why, why_len, i, "%s: %s", name, bwhy);
                    break;
                }
                hd.n_bits_bytes = (size_t)bl;
                r.pos += (size_t)bl;
                prev[k].first = hd.first;
            }
            long got = ww_hist_pack_join(&hd, arena + used, arena_cap - used);
            if (got < 0) {
                rc = s_fail(why, why_len, i, "%s: %s", name,
                            got == -ENOBUFS ? "the arena is too small" : "invalid fields");
                break;
            }
            const char *hwhy = "";
            int hrc = ww_hist_unpack(arena + used, (size_t)got, &scratch, &hwhy);
            if (hrc == -ENOMEM) {
                rc = -ENOMEM;
                break;
            }
            if (hrc < 0) {
                rc = s_fail(why, why_len, i, "%s: not a valid histogram: %s", name, hwhy);
                break;
            }
            x->hist[k] = arena + used;
            x->hist_len[k] = (size_t)got;
            used += (size_t)got;
        }
    }
    ww_hist_fini(&scratch);
    if (rc == 0 && r.pos != r.len) {
        rc = s_fail(why, why_len, SIZE_MAX, "%zu bytes left over after the last window",
                    r.len - r.pos);
    }
    return rc;
}
