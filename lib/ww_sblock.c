/* ww_sblock: see ww_sblock.h for the format.
 *
 * Encoding, one column at a time, in two passes over the samples. The plan pass classifies
 * each sample (NULL, off the grid, or a value x: k, u or 0/1), counts, and feeds the cost of
 * every order of every stream (the NULL runs, the escape runs, the escaped values' deltas,
 * the values' deltas as PLAIN codes and as RUNS, the bool runs); the orders and modes are
 * chosen from those costs, which also give the exact size of every part, so the section's
 * length is written first and each part straight into the caller's ww_buf by its own bit
 * writer, all in the one write pass. The cost of EG(k) of x for the 64 orders at once comes,
 * as in ww_hist_pack.c, from two numbers of x: its bit length B and the first order lo for
 * which x + 2^k carries out of the top (bitlen(x + 2^k) = max(B, k + 1) + [lo <= k < B]);
 * values below 64 (most deltas) are only counted, by value, and folded in at the end.
 *
 * Decoding, a column at a time too (or a sample at a time, for the iterator). A column is
 * opened (its head bytes; its NULL and escape runs walked once, to count the values and find
 * where the next parts begin), stepped sample by sample (each step takes what that sample
 * needs from each part, through a cursor per part), and closed (each part ended exactly
 * where it must, padding zero, the orders and modes the canonical ones: the decoder computes
 * them again from what it decoded, with the encoder's own functions). Bits read past the end
 * of a part are zeros and a code is at most 190 bits, so a truncated or lying block reads no
 * byte out of bounds and is refused at the close at the latest. The iterator checks the
 * whole block column by column at init, then opens every column again and steps them side
 * by side: ww_sblock_iter_next() cannot fail.
 */
#include "ww_sblock.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define S_NULLS 0x01u
#define S_ESC 0x02u
#define S_MODE_PLAIN 0u
#define S_MODE_RUNS 1u
#define S_MAX_K 63u
/* Grid indexes are within +-2^50: exact in a double, deltas far from the int64 limits. */
#define S_KMAX (INT64_C(1) << 50)
/* Below 2^22 in magnitude the grid's floats are at most res / 2 apart, so each k is the k
 * of its own value (test_sblock checks every one): the decoder need not recompute it. */
#define S_KFAST (INT64_C(1) << 22)
#define S_EMIN (-9)
#define S_EMAX 9
/* Values a cost counts one by one (below: by value, folded in at the end). */
#define S_SMALL 64

/* ---- the columns ------------------------------------------------------------------- */

/* Every field may be NULL (its `optional`: it has a NULL flag). */
#define S_COL_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                        \
    {#name,                                                                                        \
     WW_FIELD_CAT(WW_FIELD_KIND_ENUM_, kind),                                                      \
     true,                                                                                         \
     offsetof(ww_sblock_sample_t, name),                                                           \
     offsetof(ww_sblock_sample_t, name##_null),                                                    \
     WW_FIELD_RES(name)},

static const ww_sblock_column_t s_cols[] = {
    {"time_us", WW_FIELD_KIND_U32, false, offsetof(ww_sblock_sample_t, time_us), 0, 1.0},
    WW_READING_FIELDS(S_COL_)};
_Static_assert(sizeof s_cols / sizeof s_cols[0] == WW_SBLOCK_NCOLS,
               "a column per field of ww_fields.h, and the time");
_Static_assert(WW_READING_NFIELDS < 128, "nf is one byte, and a varint of one byte");

const ww_sblock_column_t *ww_sblock_column(size_t i)
{
    return i < WW_SBLOCK_NCOLS ? &s_cols[i] : NULL;
}

/* ---- the grid ---------------------------------------------------------------------- */

static const double s_p10[] = {1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0,
                               1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9};

/* The exponent e of res = 10^e, or INT32_MIN when res is no power of ten of the table. */
static int s_grid_e(double res)
{
    for (int e = S_EMIN; e <= S_EMAX; e++) {
        if (s_p10[e - S_EMIN] == res) {
            return e;
        }
    }
    return INT32_MIN;
}

static inline uint32_t s_f2u(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

/* The value of grid index k: the double product, cast to float. */
static inline float s_grid_val(int64_t k, int e)
{
    return (float)((double)k * s_p10[e - S_EMIN]);
}

/* Whether v is on the grid 10^e, and its k (ww_sblock.h). */
static inline bool s_grid_k(float v, int e, int64_t *k)
{
    if (!isfinite(v)) {
        return false;
    }
    double q = (double)v * s_p10[-e - S_EMIN];
    if (!(fabs(q) <= (double)S_KMAX)) {
        return false;
    }
    int64_t kk = (int64_t)llround(q);
    if (s_f2u(s_grid_val(kk, e)) != s_f2u(v)) {
        return false;
    }
    *k = kk;
    return true;
}

bool ww_sblock_grid_index(float v, double res, int64_t *k)
{
    int e = s_grid_e(res);
    return e != INT32_MIN && s_grid_k(v, e, k);
}

float ww_sblock_grid_value(int64_t k, double res)
{
    int e = s_grid_e(res);
    if (e == INT32_MIN || k > S_KMAX || k < -S_KMAX) {
        return NAN;
    }
    return s_grid_val(k, e);
}

float ww_sblock_quantize(float v, double res)
{
    if (!isfinite(v) || !(res > 0.0)) {
        return v;
    }
    double q = (double)v / res;
    if (!(fabs(q) <= (double)S_KMAX)) {
        return v;
    }
    return (float)((double)llround(q) * res);
}

/* ---- integers ---------------------------------------------------------------------- */

static inline uint64_t s_zz(int64_t s)
{
    return ((uint64_t)s << 1) ^ (0 - ((uint64_t)s >> 63));
}

static inline int64_t s_unzz(uint64_t z)
{
    return (int64_t)((z >> 1) ^ (0 - (z & 1)));
}

/* The order-preserving image of float bits u in [-2^31, 2^31), and back. */
static inline int64_t s_image(uint32_t u)
{
    return u < 0x80000000u ? (int64_t)u : INT64_C(0x7fffffff) - (int64_t)u;
}

static inline uint32_t s_unimage(int64_t y)
{
    return (uint32_t)(y >= 0 ? y : INT64_C(0x7fffffff) - y);
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

/* Reads a minimal varint of p[*pos .. len). */
static bool s_varint_get(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < 10; i++) {
        if (*pos >= len) {
            return false;
        }
        uint8_t b = p[(*pos)++];
        if (i == 9 && b > 1) {
            return false; /* past 2^64 - 1 */
        }
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (b == 0 && i > 0) {
                return false; /* not minimal */
            }
            *v = x;
            return true;
        }
    }
    return false;
}

static inline uint64_t s_bytes(uint64_t bits)
{
    return (bits + 7) / 8;
}

/* ---- the cost of every order of a stream of EG codes ------------------------------- */

typedef struct {
    uint64_t n;              /* values */
    uint64_t small[S_SMALL]; /* values below S_SMALL, by value */
    uint64_t cnt[65];        /* the others by bit length B */
    int64_t diff[66];        /* and their intervals [lo, B) of orders that carry */
    bool has_max;            /* a value 2^64 - 1: k = 0 cannot code it */
} s_cost_t;

static void s_cost_init(s_cost_t *c)
{
    memset(c, 0, sizeof *c);
}

static void s_cost_big(s_cost_t *c, uint64_t x, uint64_t times)
{
    if (x == 0) {
        c->cnt[0] += times;
        return;
    }
    int lz = __builtin_clzll(x);
    int b = 64 - lz;
    uint64_t top = ~(x << lz); /* the leading ones of x as leading zeros */
    int lo = b - (top ? __builtin_clzll(top) : 64);
    c->cnt[b] += times;
    c->diff[lo] += (int64_t)times;
    c->diff[b] -= (int64_t)times;
    c->has_max |= x == UINT64_MAX;
}

static inline void s_cost_add(s_cost_t *c, uint64_t x)
{
    c->n++;
    if (x < S_SMALL) {
        c->small[x]++;
    } else {
        s_cost_big(c, x, 1);
    }
}

/* The order of least total bits (the smallest on ties) and those bits. Folds the small
 * values in: the cost is then final. */
static unsigned s_cost_best(s_cost_t *c, uint64_t *bits)
{
    for (uint64_t x = 0; x < S_SMALL; x++) {
        if (c->small[x]) {
            s_cost_big(c, x, c->small[x]);
            c->small[x] = 0;
        }
    }
    if (c->n == 0) {
        *bits = 0;
        return 0;
    }
    /* total(k) = 2 sum_x bitlen(x + 2^k) - n (k + 1), and sum_x max(B, k + 1) =
     * (k + 1) #{B <= k + 1} + sum_{B > k + 1} B cnt[B]. */
    uint64_t le = c->cnt[0], wgt = 0;
    for (int b = 1; b <= 64; b++) {
        wgt += (uint64_t)b * c->cnt[b];
    }
    int64_t carry = 0;
    unsigned best = 0;
    uint64_t best_bits = UINT64_MAX;
    for (unsigned k = 0; k <= S_MAX_K; k++) {
        le += c->cnt[k + 1];
        wgt -= (uint64_t)(k + 1) * c->cnt[k + 1];
        carry += c->diff[k];
        uint64_t total = 2 * ((uint64_t)(k + 1) * le + wgt + (uint64_t)carry) - c->n * (k + 1);
        if (total < best_bits && !(k == 0 && c->has_max)) {
            best_bits = total;
            best = k;
        }
    }
    *bits = best_bits;
    return best;
}

/* The runs of a bool sequence, their lengths - 1 into a cost. */
typedef struct {
    s_cost_t cost;
    uint64_t m, ones, len;
    bool first, bit;
} s_rstat_t;

static void s_rstat_init(s_rstat_t *r)
{
    s_cost_init(&r->cost);
    r->m = r->ones = r->len = 0;
    r->first = r->bit = false;
}

static inline void s_rstat_add(s_rstat_t *r, bool b)
{
    if (r->m == 0) {
        r->first = r->bit = b;
        r->len = 1;
    } else if (b == r->bit) {
        r->len++;
    } else {
        s_cost_add(&r->cost, r->len - 1);
        r->bit = b;
        r->len = 1;
    }
    r->m++;
    r->ones += b;
}

/* The order of the runs and their bits. */
static unsigned s_rstat_best(s_rstat_t *r, uint64_t *bits)
{
    if (r->len > 0) {
        s_cost_add(&r->cost, r->len - 1);
        r->len = 0;
    }
    return s_cost_best(&r->cost, bits);
}

/* A stream of zigzag deltas, as PLAIN codes and as RUNS: the non-zero values' cost (z - 1)
 * is the PLAIN one shifted, taken from it at the end for the small values. */
typedef struct {
    s_cost_t plain, runs, vals;
    uint64_t zeros;
} s_dstat_t;

typedef struct {
    unsigned mode, k, k_val;
    uint64_t bits; /* of the bit part */
} s_dchoice_t;

static void s_dstat_init(s_dstat_t *d)
{
    s_cost_init(&d->plain);
    s_cost_init(&d->runs);
    s_cost_init(&d->vals);
    d->zeros = 0;
}

static inline void s_dstat_add(s_dstat_t *d, uint64_t z)
{
    d->plain.n++;
    if (z == 0) {
        d->plain.small[0]++;
        d->zeros++;
        return;
    }
    s_cost_add(&d->runs, d->zeros);
    d->zeros = 0;
    d->vals.n++;
    if (z < S_SMALL) {
        d->plain.small[z]++;
    } else {
        s_cost_big(&d->plain, z, 1);
        s_cost_big(&d->vals, z - 1, 1);
    }
}

static s_dchoice_t s_dstat_choose(s_dstat_t *d)
{
    if (d->zeros > 0) {
        s_cost_add(&d->runs, d->zeros);
        d->zeros = 0;
    }
    for (uint64_t z = 1; z < S_SMALL; z++) {
        d->vals.small[z - 1] = d->plain.small[z];
    }
    uint64_t bp, br, bv;
    unsigned kp = s_cost_best(&d->plain, &bp);
    unsigned kr = s_cost_best(&d->runs, &br);
    unsigned kv = s_cost_best(&d->vals, &bv);
    if (br + bv + 8 < bp) {
        return (s_dchoice_t){S_MODE_RUNS, kr, kv, br + bv};
    }
    return (s_dchoice_t){S_MODE_PLAIN, kp, 0, bp};
}

static size_t s_dhead_len(const s_dchoice_t *ch)
{
    return ch->mode == S_MODE_RUNS ? 2 : 1;
}

/* ---- why --------------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t cap;
} s_why_t;

static int s_fail(s_why_t *w, const char *col, size_t sample, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes "<col>: sample <i>: <what>" (no sample when SIZE_MAX); returns -EINVAL. */
static int s_fail(s_why_t *w, const char *col, size_t sample, const char *fmt, ...)
{
    if (w->buf && w->cap > 0) {
        int n = sample == SIZE_MAX ? snprintf(w->buf, w->cap, "%s: ", col)
                                   : snprintf(w->buf, w->cap, "%s: sample %zu: ", col, sample);
        if (n >= 0 && (size_t)n < w->cap) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(w->buf + n, w->cap - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -EINVAL;
}

/* ---- bits out ---------------------------------------------------------------------- */

typedef struct {
    uint8_t *out;
    size_t cap, pos; /* pos past cap: counted only (a size mistake: the caller refuses) */
    uint64_t acc;
    unsigned nacc; /* bits in acc not yet written, < 8 between calls */
} s_bw_t;

static s_bw_t s_bw(uint8_t *out, size_t cap)
{
    return (s_bw_t){out, cap, 0, 0, 0};
}

static inline void s_byte(s_bw_t *w, uint8_t b)
{
    if (w->pos < w->cap) {
        w->out[w->pos] = b;
    }
    w->pos++;
}

static void s_varint_put(s_bw_t *w, uint64_t v)
{
    while (v >= 0x80) {
        s_byte(w, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    s_byte(w, (uint8_t)v);
}

/* n = 0 .. 32 bits: v < 2^n. */
static inline void s_bits(s_bw_t *w, uint64_t v, unsigned n)
{
    w->acc = (w->acc << n) | v;
    w->nacc += n;
    while (w->nacc >= 8) {
        w->nacc -= 8;
        s_byte(w, (uint8_t)(w->acc >> w->nacc));
    }
}

/* The low n = 0 .. 64 bits of v. */
static void s_bits64(s_bw_t *w, uint64_t v, unsigned n)
{
    if (n > 32) {
        s_bits(w, (v >> 32) & ((UINT64_C(1) << (n - 32)) - 1), n - 32);
        n = 32;
    }
    s_bits(w, n == 0 ? 0 : v & (UINT64_MAX >> (64 - n)), n);
}

static inline void s_eg_put(s_bw_t *w, uint64_t x, unsigned k)
{
    uint64_t v = (x >> k) + 1; /* the orders chosen never make this wrap */
    unsigned l = 63u - (unsigned)__builtin_clzll(v);
    if (2 * l + 1 + k <= 32) { /* the common case: one write (the l zeros lead v << k) */
        s_bits(w, (v << k) | (x & ((UINT64_C(1) << k) - 1)), 2 * l + 1 + k);
        return;
    }
    for (unsigned z = l; z > 0;) {
        unsigned c = z < 32 ? z : 32;
        s_bits(w, 0, c);
        z -= c;
    }
    s_bits64(w, v, l + 1);
    s_bits64(w, x, k);
}

static void s_pad(s_bw_t *w)
{
    if (w->nacc > 0) {
        s_bits(w, 0, 8 - w->nacc);
    }
}

/* A RUNS bit part being written. */
typedef struct {
    s_bw_t *w;
    unsigned k;
    uint64_t m, len;
    bool bit;
} s_rw_t;

static inline void s_rw_add(s_rw_t *r, bool b)
{
    if (r->m > 0 && b == r->bit) {
        r->len++;
    } else {
        if (r->m > 0) {
            s_eg_put(r->w, r->len - 1, r->k);
        }
        r->bit = b;
        r->len = 1;
    }
    r->m++;
}

static void s_rw_end(s_rw_t *r)
{
    if (r->m > 0) {
        s_eg_put(r->w, r->len - 1, r->k);
    }
}

/* A DELTAS bit part being written. */
typedef struct {
    s_bw_t *w;
    s_dchoice_t ch;
    uint64_t zeros;
} s_dw_t;

static inline void s_dw_add(s_dw_t *d, uint64_t z)
{
    if (d->ch.mode == S_MODE_PLAIN) {
        s_eg_put(d->w, z, d->ch.k);
    } else if (z == 0) {
        d->zeros++;
    } else {
        s_eg_put(d->w, d->zeros, d->ch.k);
        d->zeros = 0;
        s_eg_put(d->w, z - 1, d->ch.k_val);
    }
}

static void s_dw_end(s_dw_t *d)
{
    if (d->ch.mode == S_MODE_RUNS && d->zeros > 0) {
        s_eg_put(d->w, d->zeros, d->ch.k);
    }
}

static void s_dhead_put(s_bw_t *w, const s_dchoice_t *ch)
{
    s_byte(w, (uint8_t)(ch->mode << 6 | ch->k));
    if (ch->mode == S_MODE_RUNS) {
        s_byte(w, (uint8_t)ch->k_val);
    }
}

/* ---- encoding ---------------------------------------------------------------------- */

enum { S_IS_NULL, S_IS_ESC, S_IS_VAL };

/* Sample s in column c (grid exponent e for F32): NULL, off the grid (its image in *x), or
 * a value *x (k, u or 0/1). */
static inline int s_classify(const ww_sblock_column_t *c, int e, const ww_sblock_sample_t *s,
                             int64_t *x)
{
    const char *at = (const char *)s + c->off;
    if (c->optional) {
        bool nul;
        memcpy(&nul, (const char *)s + c->null_off, sizeof nul);
        if (nul) {
            return S_IS_NULL;
        }
    }
    if (c->kind == WW_FIELD_KIND_F32) {
        float v;
        memcpy(&v, at, sizeof v);
        if (s_grid_k(v, e, x)) {
            return S_IS_VAL;
        }
        *x = s_image(s_f2u(v));
        return S_IS_ESC;
    }
    if (c->kind == WW_FIELD_KIND_U32) {
        uint32_t u;
        memcpy(&u, at, sizeof u);
        *x = (int64_t)u;
    } else {
        bool b;
        memcpy(&b, at, sizeof b);
        *x = b;
    }
    return S_IS_VAL;
}

/* What the plan pass learns of a field column. */
typedef struct {
    int e;
    unsigned head;
    uint64_t g, h; /* values, escaped values */
    int64_t first; /* x_1 */
    s_rstat_t nul, esc, bools;
    s_dstat_t dz, dy; /* the values' deltas, the escaped values' */
    unsigned k_nul, k_esc, k_bools;
    uint64_t b_nul, b_esc, b_bools;
    s_dchoice_t ch, ch_esc;
    /* bytes: the head (up to the runs part), the runs part, the values' head, the escape
     * part, the value part; the body */
    uint64_t head_len, runs_len, vhead_len, esc_len, val_len, len;
} s_plan_t;

/* The orders, modes and sizes, from the plan pass's counts and costs. */
static void s_plan_sizes(const ww_sblock_column_t *c, s_plan_t *pl)
{
    pl->head = (pl->nul.ones > 0 ? S_NULLS : 0) | (pl->h > 0 ? S_ESC : 0);
    pl->k_nul = s_rstat_best(&pl->nul, &pl->b_nul);
    pl->k_esc = s_rstat_best(&pl->esc, &pl->b_esc);
    pl->k_bools = s_rstat_best(&pl->bools, &pl->b_bools);
    pl->ch = (s_dchoice_t){S_MODE_PLAIN, 0, 0, 0};
    pl->ch_esc = pl->ch;
    bool deltas = c->kind != WW_FIELD_KIND_BOOL && pl->g >= 2;
    if (deltas) {
        pl->ch = s_dstat_choose(&pl->dz);
    }
    if (pl->h > 0) {
        pl->ch_esc = s_dstat_choose(&pl->dy);
    }
    /* The sizes. */
    pl->head_len = 1 + (c->kind == WW_FIELD_KIND_F32) + !!(pl->head & S_NULLS) + (pl->h > 0);
    pl->runs_len = s_bytes(((pl->head & S_NULLS) ? pl->b_nul : 0) + (pl->h > 0 ? pl->b_esc : 0));
    pl->esc_len = pl->h > 0 ? s_bytes(pl->ch_esc.bits) : 0;
    pl->vhead_len = pl->h > 0 ? s_varint_len(pl->esc_len) + s_dhead_len(&pl->ch_esc) : 0;
    if (c->kind == WW_FIELD_KIND_BOOL) {
        pl->vhead_len += pl->g >= 1;
        pl->val_len = pl->g >= 1 ? s_bytes(pl->b_bools) : 0;
    } else {
        if (pl->g >= 1) {
            pl->vhead_len +=
                s_varint_len(c->kind == WW_FIELD_KIND_F32 ? s_zz(pl->first) : (uint64_t)pl->first);
        }
        if (deltas) {
            pl->vhead_len += s_dhead_len(&pl->ch);
        }
        pl->val_len = deltas ? s_bytes(pl->ch.bits) : 0;
    }
    pl->len = pl->head_len + pl->runs_len + pl->vhead_len + pl->esc_len + pl->val_len;
}

/* The plan pass over field column c. */
static int s_plan_field(const ww_sblock_column_t *c, const ww_sblock_sample_t *s, size_t n,
                        s_plan_t *pl, s_why_t *why)
{
    pl->e = 0;
    if (c->kind == WW_FIELD_KIND_F32 && (pl->e = s_grid_e(c->res)) == INT32_MIN) {
        return s_fail(why, c->name, SIZE_MAX, "resolution %g is no power of ten in 1e-9 .. 1e9",
                      c->res);
    }
    s_rstat_init(&pl->nul);
    s_rstat_init(&pl->esc);
    s_rstat_init(&pl->bools);
    s_dstat_init(&pl->dz);
    s_dstat_init(&pl->dy);
    pl->g = pl->h = 0;
    pl->first = 0;
    int64_t prev = 0, yprev = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t x = 0;
        int cl = s_classify(c, pl->e, &s[i], &x);
        if (c->optional) {
            s_rstat_add(&pl->nul, cl == S_IS_NULL);
        }
        if (cl == S_IS_NULL) {
            continue;
        }
        if (c->kind == WW_FIELD_KIND_F32) {
            s_rstat_add(&pl->esc, cl == S_IS_ESC);
        }
        if (cl == S_IS_ESC) {
            s_dstat_add(&pl->dy, s_zz(x - yprev));
            yprev = x;
            pl->h++;
            continue;
        }
        if (c->kind == WW_FIELD_KIND_U32 && x > INT32_MAX) {
            return s_fail(why, c->name, i, "%lld is past INT32_MAX (a PostgreSQL integer)",
                          (long long)x);
        }
        if (c->kind == WW_FIELD_KIND_BOOL) {
            s_rstat_add(&pl->bools, x != 0);
        } else if (pl->g == 0) {
            pl->first = x;
        } else {
            s_dstat_add(&pl->dz, s_zz(x - prev));
        }
        prev = x;
        pl->g++;
    }
    s_plan_sizes(c, pl);
    return 0;
}

/* Writes the head bytes of the body planned in *pl (up to the runs part) into out and the
 * values' head into vout. False on a size mistake. */
static bool s_write_heads(const ww_sblock_column_t *c, const s_plan_t *pl, uint8_t *out,
                          uint8_t *vout)
{
    s_bw_t w = s_bw(out, (size_t)pl->head_len);
    s_byte(&w, (uint8_t)pl->head);
    if (c->kind == WW_FIELD_KIND_F32) {
        s_byte(&w, (uint8_t)(int8_t)pl->e);
    }
    if (pl->head & S_NULLS) {
        s_byte(&w, (uint8_t)((pl->nul.first ? 0x80u : 0) | pl->k_nul));
    }
    if (pl->h > 0) {
        s_byte(&w, (uint8_t)((pl->esc.first ? 0x80u : 0) | pl->k_esc));
    }
    bool ok = w.pos == w.cap;
    s_bw_t wv = s_bw(vout, (size_t)pl->vhead_len);
    if (pl->h > 0) {
        s_varint_put(&wv, pl->esc_len);
        s_dhead_put(&wv, &pl->ch_esc);
    }
    if (c->kind == WW_FIELD_KIND_BOOL) {
        if (pl->g >= 1) {
            s_byte(&wv, (uint8_t)((pl->bools.first ? 0x80u : 0) | pl->k_bools));
        }
    } else if (pl->g >= 1) {
        s_varint_put(&wv, c->kind == WW_FIELD_KIND_F32 ? s_zz(pl->first) : (uint64_t)pl->first);
        if (pl->g >= 2) {
            s_dhead_put(&wv, &pl->ch);
        }
    }
    return ok && wv.pos == wv.cap;
}

/* Writes the body planned in *pl into out[0 .. pl->len). False on a size mistake. */
static bool s_write_field(const ww_sblock_column_t *c, const ww_sblock_sample_t *s, size_t n,
                          const s_plan_t *pl, uint8_t *out)
{
    uint8_t *p = out + pl->head_len;
    bool ok = s_write_heads(c, pl, out, p + pl->runs_len);
    /* The runs part: the NULL runs alone, then the rest beside the escape and value parts. */
    s_bw_t wr = s_bw(p, (size_t)pl->runs_len);
    if (pl->head & S_NULLS) {
        s_rw_t r = {&wr, pl->k_nul, 0, 0, false};
        for (size_t i = 0; i < n; i++) {
            bool nul;
            memcpy(&nul, (const char *)&s[i] + c->null_off, sizeof nul);
            s_rw_add(&r, nul);
        }
        s_rw_end(&r);
    }
    p += pl->runs_len + pl->vhead_len;
    s_bw_t we = s_bw(p, (size_t)pl->esc_len), wz = s_bw(p + pl->esc_len, (size_t)pl->val_len);
    s_rw_t re = {&wr, pl->k_esc, 0, 0, false}, rb = {&wz, pl->k_bools, 0, 0, false};
    s_dw_t dy = {&we, pl->ch_esc, 0}, dz = {&wz, pl->ch, 0};
    bool have = false;
    int64_t prev = 0, yprev = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t x;
        int cl = s_classify(c, pl->e, &s[i], &x);
        if (cl == S_IS_NULL) {
            continue;
        }
        if (pl->h > 0) {
            s_rw_add(&re, cl == S_IS_ESC);
        }
        if (cl == S_IS_ESC) {
            s_dw_add(&dy, s_zz(x - yprev));
            yprev = x;
        } else if (c->kind == WW_FIELD_KIND_BOOL) {
            s_rw_add(&rb, x != 0);
        } else {
            if (have) {
                s_dw_add(&dz, s_zz(x - prev));
            }
            prev = x;
            have = true;
        }
    }
    if (pl->h > 0) {
        s_rw_end(&re);
        s_dw_end(&dy);
    }
    if (c->kind == WW_FIELD_KIND_BOOL) {
        s_rw_end(&rb);
    } else if (pl->g >= 2) {
        s_dw_end(&dz);
    }
    s_pad(&wr);
    s_pad(&we);
    s_pad(&wz);
    return ok && wr.pos == wr.cap && we.pos == we.cap && wz.pos == wz.cap;
}

/* Appends the section of field column c. */
static int s_enc_field(const ww_sblock_column_t *c, const ww_sblock_sample_t *s, size_t n,
                       ww_buf_t *out, s_plan_t *pl, s_why_t *why)
{
    int rc = s_plan_field(c, s, n, pl, why);
    if (rc != 0) {
        return rc;
    }
    size_t lv = s_varint_len(pl->len);
    ww_buf_reserve(out, lv + (size_t)pl->len);
    if (out->oom) {
        return -ENOMEM;
    }
    uint8_t *p = (uint8_t *)out->p + out->len;
    s_bw_t w = s_bw(p, lv);
    s_varint_put(&w, pl->len);
    if (!s_write_field(c, s, n, pl, p + lv)) {
        return s_fail(why, c->name, SIZE_MAX, "internal error: the section's size was misplanned");
    }
    out->len += lv + (size_t)pl->len;
    out->p[out->len] = '\0';
    return 0;
}

/* d_i = t_i - t_(i-1) and the zigzag of d_i - d_(i-1), modulo 2^64. */
static inline uint64_t s_tdiff(const ww_sblock_sample_t *s, size_t i)
{
    return (uint64_t)s[i].time_us - (uint64_t)s[i - 1].time_us;
}

static inline uint64_t s_tdod(const ww_sblock_sample_t *s, size_t i)
{
    return s_zz((int64_t)(s_tdiff(s, i) - s_tdiff(s, i - 1)));
}

/* Appends the time section. */
static int s_enc_time(const ww_sblock_sample_t *s, size_t n, ww_buf_t *out, s_dstat_t *dz,
                      s_why_t *why)
{
    s_dstat_init(dz);
    for (size_t i = 1; i < n; i++) {
        if (s[i].time_us < s[i - 1].time_us) {
            return s_fail(why, "time_us", i,
                          "before the sample ahead of it (times must not "
                          "decrease)");
        }
        if (i >= 2) {
            s_dstat_add(dz, s_tdod(s, i));
        }
    }
    s_dchoice_t ch = {S_MODE_PLAIN, 0, 0, 0};
    uint64_t len = s_varint_len(s_zz(s[0].time_us));
    if (n >= 2) {
        len += s_varint_len(s_tdiff(s, 1));
    }
    if (n >= 3) {
        ch = s_dstat_choose(dz);
        len += s_dhead_len(&ch) + s_bytes(ch.bits);
    }
    size_t lv = s_varint_len(len);
    ww_buf_reserve(out, lv + (size_t)len);
    if (out->oom) {
        return -ENOMEM;
    }
    s_bw_t w = s_bw((uint8_t *)out->p + out->len, lv + (size_t)len);
    s_varint_put(&w, len);
    s_varint_put(&w, s_zz(s[0].time_us));
    if (n >= 2) {
        s_varint_put(&w, s_tdiff(s, 1));
    }
    if (n >= 3) {
        s_dhead_put(&w, &ch);
        s_dw_t d = {&w, ch, 0};
        for (size_t i = 2; i < n; i++) {
            s_dw_add(&d, s_tdod(s, i));
        }
        s_dw_end(&d);
        s_pad(&w);
    }
    if (w.pos != w.cap) {
        return s_fail(why, "time_us", SIZE_MAX,
                      "internal error: the section's size was "
                      "misplanned");
    }
    out->len += w.pos;
    out->p[out->len] = '\0';
    return 0;
}

int ww_sblock_encode(const ww_sblock_sample_t *s, size_t n, ww_buf_t *out, char *why,
                     size_t why_cap)
{
    s_why_t w = {why, why_cap};
    if (why && why_cap > 0) {
        why[0] = '\0';
    }
    if (n > WW_SBLOCK_MAX_SAMPLES) {
        return s_fail(&w, "block", SIZE_MAX, "%zu samples, more than %d", n, WW_SBLOCK_MAX_SAMPLES);
    }
    if (n > 0 && s == NULL) {
        return s_fail(&w, "block", SIZE_MAX, "no samples given");
    }
    if (out->oom) {
        return -ENOMEM;
    }
    size_t mark = out->len;
    uint8_t head[2 + 10] = {WW_SBLOCK_VERSION, WW_READING_NFIELDS};
    s_bw_t hw = s_bw(head + 2, 10);
    s_varint_put(&hw, n);
    ww_buf_put(out, head, 2 + hw.pos);
    int rc = 0;
    if (n > 0) {
        s_plan_t pl; /* ~15 KiB of costs, reused column after column */
        rc = s_enc_time(s, n, out, &pl.dz, &w);
        for (size_t c = 1; rc == 0 && c < WW_SBLOCK_NCOLS; c++) {
            rc = s_enc_field(&s_cols[c], s, n, out, &pl, &w);
        }
    }
    if (rc == 0 && out->oom) {
        rc = -ENOMEM;
    }
    if (rc != 0 && !out->oom) {
        out->len = mark; /* nothing appended */
        if (out->p) {
            out->p[mark] = '\0';
        }
    }
    return rc;
}

/* ---- bits in ----------------------------------------------------------------------- */

typedef ww_sblock_br_t s_br_t;

static s_br_t s_br(const uint8_t *p, size_t len)
{
    return (s_br_t){p, len, 0, 0, 0};
}

static inline void s_refill(s_br_t *r)
{
    if (r->pos <= r->len && r->len - r->pos >= 8) {
        uint64_t w;
        memcpy(&w, r->p + r->pos, 8);
        w = __builtin_bswap64(w);
        /* Bits below avail already hold these same bytes (or zeros): OR is exact. */
        r->cache |= w >> r->avail;
        r->pos += (size_t)(63 - r->avail) >> 3;
        r->avail |= 56;
    } else {
        while (r->avail < 56) { /* ends in 56 .. 63 */
            uint64_t b = r->pos < r->len ? r->p[r->pos] : 0;
            r->cache |= b << (56 - r->avail);
            r->pos++;
            r->avail += 8;
        }
    }
}

/* The bits consumed. */
static inline uint64_t s_br_used(const s_br_t *r)
{
    return (uint64_t)r->pos * 8 - (uint64_t)r->avail;
}

/* n = 0 .. 56 bits. */
static inline uint64_t s_get(s_br_t *r, unsigned n)
{
    if (n == 0) {
        return 0;
    }
    if ((unsigned)r->avail < n) {
        s_refill(r);
    }
    uint64_t v = r->cache >> (64 - n);
    r->cache <<= n;
    r->avail -= (int)n;
    return v;
}

/* n = 0 .. 64 bits. */
static uint64_t s_get64(s_br_t *r, unsigned n)
{
    if (n > 32) {
        uint64_t hi = s_get(r, n - 32);
        return hi << 32 | s_get(r, 32);
    }
    return s_get(r, n);
}

static __attribute__((noinline)) bool s_eg_slow(s_br_t *r, unsigned k, uint64_t *x)
{
    unsigned l = 0;
    for (;;) {
        s_refill(r);
        int z = r->cache ? __builtin_clzll(r->cache) : 64;
        if (z < r->avail) {
            l += (unsigned)z;
            r->cache <<= z;
            r->avail -= z;
            break;
        }
        l += (unsigned)r->avail;
        r->cache = 0;
        r->avail = 0;
        if (l > 63) {
            return false;
        }
    }
    if (l > 63) {
        return false;
    }
    uint64_t v = s_get64(r, l + 1);
    uint64_t low = s_get64(r, k);
    if (v - 1 > (UINT64_MAX >> k)) {
        return false;
    }
    *x = ((v - 1) << k) | low;
    return true;
}

/* One EG(k) code: false when it is longer than 64 bits or past 2^64 - 1. */
static inline bool s_eg(s_br_t *r, unsigned k, uint64_t *x)
{
    if (r->avail < 56) {
        s_refill(r);
    }
    unsigned l = r->cache ? (unsigned)__builtin_clzll(r->cache) : 64;
    unsigned len = 2 * l + 1 + k;
    if (len <= (unsigned)r->avail) {
        uint64_t w = r->cache >> (64 - len); /* v << k | low, the l zeros above */
        r->cache <<= len;
        r->avail -= (int)len;
        *x = w - (UINT64_C(1) << k);
        return true;
    }
    return s_eg_slow(r, k, x);
}

/* Whether the part read by r ends exactly at the end of its bytes, padding zero. */
static bool s_br_ends(const s_br_t *r)
{
    uint64_t used = s_br_used(r);
    if (used > (uint64_t)r->len * 8 || s_bytes(used) != r->len) {
        return false;
    }
    unsigned pad = (unsigned)((uint64_t)r->len * 8 - used);
    return pad == 0 || (r->p[r->len - 1] & ((1u << pad) - 1)) == 0;
}

/* ---- streams in -------------------------------------------------------------------- */

/* A RUNS cursor over m bools, from its head byte. */
static void s_runs_start(ww_sblock_runs_t *r, const s_br_t *br, uint8_t head, uint64_t m)
{
    r->br = *br;
    r->left = m;
    r->run = 0;
    r->k = head & 0x3f;
    r->bit = !(head & 0x80); /* flipped by the first run */
}

/* The next bool; false when the part is invalid (a bad code, a run past the end). */
static inline bool s_runs_next(ww_sblock_runs_t *r, s_cost_t *cost, bool *bit)
{
    if (r->run == 0) {
        uint64_t x;
        if (!s_eg(&r->br, r->k, &x) || x >= r->left) {
            return false;
        }
        if (cost) {
            s_cost_add(cost, x);
        }
        r->run = x + 1;
        r->bit = !r->bit;
    }
    r->run--;
    r->left--;
    *bit = r->bit;
    return true;
}

/* Reads a DELTAS head at body[*pos] into d (its bit part set later). */
static int s_dhead_get(const uint8_t *body, size_t len, size_t *pos, ww_sblock_deltas_t *d,
                       const char *name, s_why_t *why)
{
    if (*pos >= len) {
        return s_fail(why, name, SIZE_MAX, "truncated: no delta head");
    }
    d->mode = body[*pos] >> 6;
    d->k = body[(*pos)++] & 0x3f;
    d->k_val = 0;
    if (d->mode > S_MODE_RUNS) {
        return s_fail(why, name, SIZE_MAX, "delta mode %u unknown", d->mode);
    }
    if (d->mode == S_MODE_RUNS) {
        if (*pos >= len) {
            return s_fail(why, name, SIZE_MAX, "truncated: no k_val");
        }
        d->k_val = body[(*pos)++];
        if (d->k_val > S_MAX_K) {
            return s_fail(why, name, SIZE_MAX, "k_val %u above 63", d->k_val);
        }
    }
    return 0;
}

static void s_deltas_start(ww_sblock_deltas_t *d, const s_br_t *br, uint64_t m)
{
    d->br = *br;
    d->left = m;
    d->zeros = 0;
    d->need_run = true;
}

/* The next zigzag delta; false when the part is invalid. */
static inline bool s_deltas_next(ww_sblock_deltas_t *d, s_dstat_t *st, uint64_t *z)
{
    if (d->mode == S_MODE_PLAIN) {
        if (!s_eg(&d->br, d->k, z)) {
            return false;
        }
    } else {
        if (d->need_run) {
            uint64_t r;
            if (!s_eg(&d->br, d->k, &r) || r > d->left) {
                return false;
            }
            d->zeros = r;
            d->need_run = false;
        }
        if (d->zeros > 0) {
            d->zeros--;
            *z = 0;
        } else {
            uint64_t x;
            if (!s_eg(&d->br, d->k_val, &x) || x == UINT64_MAX) {
                return false;
            }
            *z = x + 1;
            d->need_run = d->left > 1;
        }
    }
    d->left--;
    if (st) {
        s_dstat_add(st, *z);
    }
    return true;
}

/* Whether a DELTAS part was written with the canonical mode and orders (from the stats of
 * what was decoded). */
static bool s_deltas_canonical(const ww_sblock_deltas_t *d, s_dstat_t *st)
{
    s_dchoice_t ch = s_dstat_choose(st);
    return ch.mode == d->mode && ch.k == d->k && ch.k_val == d->k_val;
}

/* ---- columns in -------------------------------------------------------------------- */

/* What checking a column needs beside its cursor (decoded values' statistics). */
typedef struct {
    s_dstat_t dz, dy;
    s_cost_t bools;
} s_check_t;

static int s_open_time(ww_sblock_col_t *c, const uint8_t *body, size_t len, size_t n, s_why_t *why)
{
    size_t pos = 0;
    uint64_t v;
    if (!s_varint_get(body, len, &pos, &v)) {
        return s_fail(why, "time_us", 0, "truncated or bad varint");
    }
    c->x = s_unzz(v);
    if (n >= 2 && !s_varint_get(body, len, &pos, &c->d2)) {
        return s_fail(why, "time_us", 1, "truncated or bad varint");
    }
    int rc;
    if (n >= 3 && (rc = s_dhead_get(body, len, &pos, &c->dz, "time_us", why)) != 0) {
        return rc;
    }
    s_br_t br = s_br(body + pos, len - pos);
    s_deltas_start(&c->dz, &br, n >= 3 ? n - 2 : 0);
    return 0;
}

/* Walks the runs of r (a copy: r stays at its start) over its bools; *ones gets how many
 * are true, *end the position after them. Checks the order when `check`. by_sample: the
 * bools are the samples' (else the non-NULL samples': no sample index is named). */
static int s_walk_runs(const ww_sblock_runs_t *r, bool check, bool by_sample, uint64_t *ones,
                       s_br_t *end, const char *name, const char *what, s_why_t *why)
{
    ww_sblock_runs_t w = *r;
    s_cost_t cost;
    s_cost_init(&cost);
    uint64_t m = r->left, t = 0;
    for (uint64_t i = 0; i < m; i++) {
        bool b;
        if (!s_runs_next(&w, check ? &cost : NULL, &b)) {
            return s_fail(why, name, by_sample ? (size_t)i : SIZE_MAX,
                          "%s runs: bad code or a run past the end", what);
        }
        t += b;
    }
    uint64_t bits;
    if (check && t == 0) {
        return s_fail(why, name, SIZE_MAX, "%s flag set, and no %s sample", what, what);
    }
    if (check && s_cost_best(&cost, &bits) != r->k) {
        return s_fail(why, name, SIZE_MAX, "%s runs: order not the canonical one", what);
    }
    *ones = t;
    *end = w.br;
    return 0;
}

/* The runs part of field column c at body[*pos], walked once: the counts of NULL, escaped and
 * other values, and where the rest begins (*pos past the runs part). */
static int s_open_runs(ww_sblock_col_t *c, const ww_sblock_column_t *def, const uint8_t *body,
                       size_t len, size_t *at, size_t n, uint8_t h_nul, uint8_t h_esc, bool check,
                       s_why_t *why)
{
    const char *name = def->name;
    size_t pos = *at;
    s_br_t br = s_br(body + pos, len - pos);
    uint64_t nulls = 0;
    int rc;
    if (c->head & S_NULLS) {
        s_runs_start(&c->nul, &br, h_nul, n);
        if ((rc = s_walk_runs(&c->nul, check, true, &nulls, &br, name, "NULL", why)) != 0) {
            return rc;
        }
    }
    c->h = 0;
    if (c->head & S_ESC) {
        if (nulls == n) {
            return s_fail(why, name, SIZE_MAX, "ESC set with every sample NULL");
        }
        s_runs_start(&c->esc, &br, h_esc, n - nulls);
        if ((rc = s_walk_runs(&c->esc, check, false, &c->h, &br, name, "escape", why)) != 0) {
            return rc;
        }
    }
    uint64_t used = s_br_used(&br);
    if (used > (uint64_t)(len - pos) * 8) {
        return s_fail(why, name, SIZE_MAX, "truncated in the runs");
    }
    size_t runs_len = (size_t)s_bytes(used);
    unsigned pad = (unsigned)(runs_len * 8 - used);
    if (pad > 0 && (body[pos + runs_len - 1] & ((1u << pad) - 1)) != 0) {
        return s_fail(why, name, SIZE_MAX, "runs: padding bits not zero");
    }
    *at = pos + runs_len;
    c->g = n - nulls - c->h;
    return 0;
}

/* The heads of the escaped values and of the values at body[*at], then the cursors of the
 * escape and value parts that follow. */
static int s_open_values(ww_sblock_col_t *c, const ww_sblock_column_t *def, const uint8_t *body,
                         size_t len, size_t *at, s_why_t *why)
{
    const char *name = def->name;
    size_t pos = *at;
    int rc;
    uint64_t esc_len = 0;
    if (c->h > 0) {
        if (!s_varint_get(body, len, &pos, &esc_len)) {
            return s_fail(why, name, SIZE_MAX, "escape part length: truncated or bad varint");
        }
        if ((rc = s_dhead_get(body, len, &pos, &c->dy, name, why)) != 0) {
            return rc;
        }
    }
    uint8_t h_bools = 0;
    if (def->kind == WW_FIELD_KIND_BOOL && c->g >= 1) {
        if (pos >= len) {
            return s_fail(why, name, SIZE_MAX, "truncated: no runs head");
        }
        if ((h_bools = body[pos++]) & 0x40) {
            return s_fail(why, name, SIZE_MAX, "runs head: bit 6 set");
        }
    } else if (def->kind != WW_FIELD_KIND_BOOL && c->g >= 1) {
        uint64_t v;
        if (!s_varint_get(body, len, &pos, &v)) {
            return s_fail(why, name, SIZE_MAX, "first value: truncated or bad varint");
        }
        if (def->kind == WW_FIELD_KIND_F32) {
            c->x = s_unzz(v);
            if (c->x > S_KMAX || c->x < -S_KMAX) {
                return s_fail(why, name, SIZE_MAX, "first k past 2^50");
            }
        } else if (v > INT32_MAX) {
            return s_fail(why, name, SIZE_MAX, "first value %llu past INT32_MAX",
                          (unsigned long long)v);
        } else {
            c->x = (int64_t)v;
        }
        if (c->g >= 2 && (rc = s_dhead_get(body, len, &pos, &c->dz, name, why)) != 0) {
            return rc;
        }
    }
    /* The escape part, then the value part. */
    if (esc_len > len - pos) {
        return s_fail(why, name, SIZE_MAX, "truncated: an escape part of %llu bytes, %zu left",
                      (unsigned long long)esc_len, len - pos);
    }
    s_br_t br = s_br(body + pos, (size_t)esc_len);
    s_deltas_start(&c->dy, &br, c->h);
    pos += (size_t)esc_len;
    br = s_br(body + pos, len - pos);
    *at = len;
    if (def->kind == WW_FIELD_KIND_BOOL) {
        s_runs_start(&c->bools, &br, h_bools, c->g);
    } else {
        s_deltas_start(&c->dz, &br, c->g >= 2 ? c->g - 1 : 0);
    }
    return 0;
}

/* Opens field column ci over body[0 .. len) of a block of n samples (n >= 1): reads its head,
 * walks its NULL and escape runs (checked when `check`) and places every cursor. */
static int s_open_field(ww_sblock_col_t *c, size_t ci, const uint8_t *body, size_t len, size_t n,
                        bool check, s_why_t *why)
{
    const ww_sblock_column_t *def = &s_cols[ci];
    const char *name = def->name;
    size_t pos = 0;
    if (len < 1 + (def->kind == WW_FIELD_KIND_F32)) {
        return s_fail(why, name, SIZE_MAX, "truncated: no head");
    }
    c->head = body[pos++];
    unsigned allowed = (def->optional ? S_NULLS : 0) | (def->kind == WW_FIELD_KIND_F32 ? S_ESC : 0);
    if (c->head & ~allowed) {
        return s_fail(why, name, SIZE_MAX, "head 0x%02x: flags this column cannot have", c->head);
    }
    if (def->kind == WW_FIELD_KIND_F32) {
        c->e = (int8_t)body[pos++];
        int want = s_grid_e(def->res);
        if (c->e != want) {
            return s_fail(why, name, SIZE_MAX,
                          "grid 1e%d in the block, 1e%d in this build (another resolution)", c->e,
                          want);
        }
    }
    uint8_t h_nul = 0, h_esc = 0;
    if (c->head & S_NULLS) {
        if (pos >= len) {
            return s_fail(why, name, SIZE_MAX, "truncated: no NULL runs head");
        }
        h_nul = body[pos++];
    }
    if (c->head & S_ESC) {
        if (pos >= len) {
            return s_fail(why, name, SIZE_MAX, "truncated: no escape runs head");
        }
        h_esc = body[pos++];
    }
    if ((h_nul | h_esc) & 0x40) {
        return s_fail(why, name, SIZE_MAX, "runs head: bit 6 set");
    }
    int rc = s_open_runs(c, def, body, len, &pos, n, h_nul, h_esc, check, why);
    if (rc == 0) {
        rc = s_open_values(c, def, body, len, &pos, why);
    }
    return rc;
}

static int s_col_open(ww_sblock_col_t *c, size_t ci, const uint8_t *body, size_t len, size_t n,
                      bool check, s_why_t *why)
{
    memset(c, 0, sizeof *c);
    c->first = true;
    return ci == 0 ? s_open_time(c, body, len, n, why)
                   : s_open_field(c, ci, body, len, n, check, why);
}

static int s_step_time(ww_sblock_col_t *c, size_t i, ww_sblock_sample_t *s, s_check_t *chk,
                       s_why_t *why)
{
    if (i >= 1) {
        if (i == 1) {
            c->d = c->d2;
        } else {
            uint64_t z;
            if (!s_deltas_next(&c->dz, chk ? &chk->dz : NULL, &z)) {
                return s_fail(why, "time_us", i, "bad delta code");
            }
            c->d += (uint64_t)s_unzz(z);
        }
        /* t + d <= INT64_MAX, in unsigned arithmetic (INT64_MAX - t is in [0, 2^64)). */
        if (c->d > (uint64_t)INT64_MAX - (uint64_t)c->x) {
            return s_fail(why, "time_us", i, "time past the int64 range");
        }
        c->x = (int64_t)((uint64_t)c->x + c->d);
    }
    if (s) {
        s->time_us = c->x;
    }
    return 0;
}

/* Sample i of an escaped F32 value. */
static int s_step_escape(ww_sblock_col_t *c, const ww_sblock_column_t *def, size_t i, char *at,
                         s_check_t *chk, s_why_t *why)
{
    uint64_t z;
    if (!s_deltas_next(&c->dy, chk ? &chk->dy : NULL, &z)) {
        return s_fail(why, def->name, i, "escaped value: bad delta code");
    }
    int64_t d = s_unzz(z);
    if (d > INT64_C(0xffffffff) || d < -INT64_C(0xffffffff) || c->y + d > INT32_MAX ||
        c->y + d < INT32_MIN) {
        return s_fail(why, def->name, i, "escaped value past 32 bits");
    }
    c->y += d;
    uint32_t u = s_unimage(c->y);
    int64_t k;
    float v;
    memcpy(&v, &u, sizeof v);
    if (chk && s_grid_k(v, c->e, &k)) {
        return s_fail(why, def->name, i, "escaped value 0x%08x is on the grid", u);
    }
    if (at) {
        memcpy(at, &u, sizeof u);
    }
    return 0;
}

/* Decodes sample i of column ci into *s (when not NULL), checking what a sample can break. */
static int s_col_step(ww_sblock_col_t *c, size_t ci, size_t i, ww_sblock_sample_t *s,
                      s_check_t *chk, s_why_t *why)
{
    if (ci == 0) {
        return s_step_time(c, i, s, chk, why);
    }
    const ww_sblock_column_t *def = &s_cols[ci];
    char *at = s ? (char *)s + def->off : NULL;
    bool b;
    if (c->head & S_NULLS) {
        if (!s_runs_next(&c->nul, NULL, &b)) {
            return s_fail(why, def->name, i, "NULL runs");
        }
        if (b) {
            if (s) {
                memcpy((char *)s + def->null_off, &b, sizeof b);
            }
            return 0; /* the value stays 0, as the caller zeroed it */
        }
    }
    if (c->head & S_ESC) {
        if (!s_runs_next(&c->esc, NULL, &b)) {
            return s_fail(why, def->name, i, "escape runs");
        }
        if (b) {
            return s_step_escape(c, def, i, at, chk, why);
        }
    }
    if (def->kind == WW_FIELD_KIND_BOOL) {
        if (!s_runs_next(&c->bools, chk ? &chk->bools : NULL, &b)) {
            return s_fail(why, def->name, i, "bad run code or a run past the end");
        }
        if (at) {
            memcpy(at, &b, sizeof b);
        }
        return 0;
    }
    if (c->first) {
        c->first = false;
    } else {
        uint64_t z;
        if (!s_deltas_next(&c->dz, chk ? &chk->dz : NULL, &z)) {
            return s_fail(why, def->name, i, "bad delta code");
        }
        int64_t d = s_unzz(z), lim = def->kind == WW_FIELD_KIND_F32 ? 2 * S_KMAX : INT64_C(1) << 32;
        if (d > lim || d < -lim) {
            return s_fail(why, def->name, i, "delta %lld out of range", (long long)d);
        }
        c->x += d;
    }
    if (def->kind == WW_FIELD_KIND_F32) {
        if (c->x > S_KMAX || c->x < -S_KMAX) {
            return s_fail(why, def->name, i, "k %lld past 2^50", (long long)c->x);
        }
        float v = s_grid_val(c->x, c->e);
        int64_t k;
        if (chk && (c->x >= S_KFAST || c->x <= -S_KFAST) && (!s_grid_k(v, c->e, &k) || k != c->x)) {
            return s_fail(why, def->name, i, "k %lld is not the grid index of its value",
                          (long long)c->x);
        }
        if (at) {
            memcpy(at, &v, sizeof v);
        }
    } else {
        if (c->x < 0 || c->x > INT32_MAX) {
            return s_fail(why, def->name, i, "%lld out of [0, INT32_MAX]", (long long)c->x);
        }
        if (at) {
            uint32_t u = (uint32_t)c->x;
            memcpy(at, &u, sizeof u);
        }
    }
    return 0;
}

/* After the last step of column ci: every part ended where it must, its orders canonical. */
static int s_col_close(ww_sblock_col_t *c, size_t ci, s_check_t *chk, s_why_t *why)
{
    const ww_sblock_column_t *def = &s_cols[ci];
    const char *bad_end = "truncated, bytes left over or padding not zero";
    if (c->h > 0) {
        if (!s_deltas_canonical(&c->dy, &chk->dy)) {
            return s_fail(why, def->name, SIZE_MAX,
                          "escaped values: delta mode or orders not the canonical ones");
        }
        if (!s_br_ends(&c->dy.br)) {
            return s_fail(why, def->name, SIZE_MAX, "escape part: %s", bad_end);
        }
    }
    if (ci > 0 && def->kind == WW_FIELD_KIND_BOOL) {
        uint64_t bits;
        if (c->g >= 1 && s_cost_best(&chk->bools, &bits) != c->bools.k) {
            return s_fail(why, def->name, SIZE_MAX, "runs: order not the canonical one");
        }
        if (!s_br_ends(&c->bools.br)) {
            return s_fail(why, def->name, SIZE_MAX, "value part: %s", bad_end);
        }
        return 0;
    }
    bool deltas = ci == 0 ? chk->dz.plain.n > 0 : c->g >= 2;
    if (deltas && !s_deltas_canonical(&c->dz, &chk->dz)) {
        return s_fail(why, def->name, SIZE_MAX, "delta mode or orders not the canonical ones");
    }
    if (!s_br_ends(&c->dz.br)) {
        return s_fail(why, def->name, SIZE_MAX, "%s: %s", ci == 0 ? "bit part" : "value part",
                      bad_end);
    }
    return 0;
}

/* ---- blocks in --------------------------------------------------------------------- */

/* Reads the head; *pos past it. */
static int s_head(const uint8_t *p, size_t len, size_t *pos, size_t *n, s_why_t *why)
{
    if (why->buf && why->cap > 0) {
        why->buf[0] = '\0';
    }
    if (p == NULL || len < 3) {
        return s_fail(why, "block", SIZE_MAX, "truncated: %zu bytes, a head is at least 3",
                      p ? len : 0);
    }
    if (p[0] != WW_SBLOCK_VERSION) {
        return s_fail(why, "block", SIZE_MAX, "version %u, this build reads %d", p[0],
                      WW_SBLOCK_VERSION);
    }
    if (p[1] != WW_READING_NFIELDS) {
        return s_fail(why, "block", SIZE_MAX, "%u field columns, this build knows %d", p[1],
                      WW_READING_NFIELDS);
    }
    *pos = 2;
    uint64_t v;
    if (!s_varint_get(p, len, pos, &v)) {
        return s_fail(why, "block", SIZE_MAX, "count: truncated or bad varint");
    }
    if (v > WW_SBLOCK_MAX_SAMPLES) {
        return s_fail(why, "block", SIZE_MAX, "%llu samples, more than %d", (unsigned long long)v,
                      WW_SBLOCK_MAX_SAMPLES);
    }
    *n = (size_t)v;
    return 0;
}

int ww_sblock_count(const uint8_t *p, size_t len, size_t *n)
{
    s_why_t why = {NULL, 0};
    size_t pos;
    return s_head(p, len, &pos, n, &why);
}

/* The next section's body: body[0 .. *blen). */
static int s_section(const uint8_t *p, size_t len, size_t *pos, size_t ci, const uint8_t **body,
                     size_t *blen, s_why_t *why)
{
    uint64_t v;
    if (!s_varint_get(p, len, pos, &v)) {
        return s_fail(why, s_cols[ci].name, SIZE_MAX, "section length: truncated or bad varint");
    }
    if (v > len - *pos) {
        return s_fail(why, s_cols[ci].name, SIZE_MAX,
                      "truncated: a section of %llu bytes, %zu left", (unsigned long long)v,
                      len - *pos);
    }
    *body = p + *pos;
    *blen = (size_t)v;
    *pos += (size_t)v;
    return 0;
}

/* Checks the whole block column by column, and decodes it into out when not NULL. */
static int s_walk(const uint8_t *p, size_t len, size_t n, size_t pos, ww_sblock_sample_t *out,
                  s_why_t *why)
{
    if (n == 0) {
        if (pos != len) {
            return s_fail(why, "block", SIZE_MAX, "%zu bytes left over after an empty block",
                          len - pos);
        }
        return 0;
    }
    s_check_t chk;
    ww_sblock_col_t c;
    for (size_t ci = 0; ci < WW_SBLOCK_NCOLS; ci++) {
        const uint8_t *body;
        size_t blen;
        int rc = s_section(p, len, &pos, ci, &body, &blen, why);
        if (rc == 0) {
            rc = s_col_open(&c, ci, body, blen, n, true, why);
        }
        if (rc != 0) {
            return rc;
        }
        s_dstat_init(&chk.dz);
        s_dstat_init(&chk.dy);
        s_cost_init(&chk.bools);
        for (size_t i = 0; i < n; i++) {
            if ((rc = s_col_step(&c, ci, i, out ? &out[i] : NULL, &chk, why)) != 0) {
                return rc;
            }
        }
        if ((rc = s_col_close(&c, ci, &chk, why)) != 0) {
            return rc;
        }
    }
    if (pos != len) {
        return s_fail(why, "block", SIZE_MAX, "%zu bytes left over after the last section",
                      len - pos);
    }
    return 0;
}

int ww_sblock_decode(const uint8_t *p, size_t len, ww_sblock_sample_t *out, size_t cap, size_t *n,
                     char *why, size_t why_cap)
{
    s_why_t w = {why, why_cap};
    size_t pos, count;
    int rc = s_head(p, len, &pos, &count, &w);
    if (rc != 0) {
        return rc;
    }
    *n = count;
    if (count > cap) {
        /* An invalid block is -EINVAL whatever the room: check it before asking for more. */
        if ((rc = s_walk(p, len, count, pos, NULL, &w)) != 0) {
            return rc;
        }
        s_fail(&w, "block", SIZE_MAX, "%zu samples, room for %zu", count, cap);
        return -ENOBUFS;
    }
    if (count > 0) {
        memset(out, 0, count * sizeof *out);
    }
    return s_walk(p, len, count, pos, out, &w);
}

int ww_sblock_iter_init(ww_sblock_iter_t *it, const uint8_t *p, size_t len, char *why,
                        size_t why_cap)
{
    s_why_t w = {why, why_cap};
    it->n = it->i = 0;
    size_t pos, count;
    int rc = s_head(p, len, &pos, &count, &w);
    if (rc == 0) {
        rc = s_walk(p, len, count, pos, NULL, &w);
    }
    if (rc != 0) {
        return rc;
    }
    for (size_t ci = 0; count > 0 && ci < WW_SBLOCK_NCOLS; ci++) {
        const uint8_t *body;
        size_t blen;
        if ((rc = s_section(p, len, &pos, ci, &body, &blen, &w)) != 0 ||
            (rc = s_col_open(&it->col[ci], ci, body, blen, count, false, &w)) != 0) {
            return rc; /* checked above: cannot happen */
        }
    }
    it->n = count;
    return 0;
}

size_t ww_sblock_iter_count(const ww_sblock_iter_t *it)
{
    return it->n;
}

bool ww_sblock_iter_next(ww_sblock_iter_t *it, ww_sblock_sample_t *s)
{
    if (it->i >= it->n) {
        return false;
    }
    memset(s, 0, sizeof *s);
    s_why_t w = {NULL, 0};
    for (size_t ci = 0; ci < WW_SBLOCK_NCOLS; ci++) {
        if (s_col_step(&it->col[ci], ci, it->i, s, NULL, &w) != 0) {
            it->i = it->n = 0; /* checked at init: cannot happen */
            return false;
        }
    }
    it->i++;
    return true;
}
