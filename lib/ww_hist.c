/* ww_hist: see ww_hist.h.
 *
 * Index algorithm. A positive normal double is v = 2^e * m with m = 1 + f in [1, 2). At
 * scale s the octave [2^e, 2^(e+1)) is cut by the 2^s - 1 boundaries B_k = 2^(k / 2^s)
 * (k = 1 .. 2^s - 1, scaled by 2^e), so bucket index = e * 2^s + #{k : B_k < m}, minus one
 * when m == 1 exactly (an exact power of two is the inclusive upper bound of the bucket
 * below, as OpenTelemetry specifies).
 *
 * #{k : B_k < m} comes from one table lookup and one comparison: the octave is cut into
 * 2^(s+1) equal cells by the top s+1 mantissa bits. A cell is 2^-(s+1) wide and the
 * narrowest bucket (the first of the octave) is 2^(1/2^s) - 1 > ln 2 / 2^s > 2^-(s+1)
 * wide, so a cell holds at most one boundary. Each table entry packs the number of
 * boundaries below the cell (top 12 bits) with the mantissa bits of the boundary inside
 * the cell, or all ones when there is none (low 52 bits): index = e * 2^s + below +
 * (mantissa > boundary) - (mantissa == 0). Integer comparison of mantissa bits is exact
 * comparison of doubles within one octave.
 *
 * The boundaries are the doubles exp2(k / 256) computed once (scale 8); coarser scales
 * use every 2^(8-s)-th of them, so a downscaled histogram is exactly the histogram
 * recorded at the coarser scale, and ww_hist_lower()/ww_hist_upper() return the very
 * doubles the index compares against: lower(i) < v <= upper(i) holds exactly for every v.
 * The only approximation is that a boundary is the double nearest (per libm's exp2) to
 * the irrational 2^(k/2^s): a value within an ulp or so of it may land on either side.
 *
 * The tables (256 boundaries, 1022 packed cells, 10 KiB) are built once under
 * pthread_once, from ww_hist_init(), ww_hist_index(), ww_hist_lower()/upper(); the hot
 * path ww_hist_record() relies on ww_hist_init() having run for its histogram.
 *
 * Finite values. sum, min and max cover every finite value recorded, whatever its
 * counter: zero and negative values (min may be negative), underflow, finite overflow,
 * and a value pushed into overflow by an out-of-memory. sum saturates at +-DBL_MAX (only
 * reachable by recording absurd values), so it is always finite. min and max are NaN
 * while no finite value has been recorded, and then sum is 0.
 */
#include "ww_hist.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Allocation hooks. The PostgreSQL extension (pgext/) compiles this very file, and there
 * memory must come from palloc/repalloc (freed with its memory context, never by libc's
 * free), so it defines these before including; everything else gets libc. */
#ifndef WW_HIST_REALLOC
#define WW_HIST_REALLOC(p, n) realloc((p), (n))
#endif
#ifndef WW_HIST_FREE
#define WW_HIST_FREE(p) free(p)
#endif

#define MANT_BITS 52
#define MANT_MASK ((UINT64_C(1) << MANT_BITS) - 1)
/* Relative slack of the min/max plausibility rules of ww_hist_check(). */
#define REL_TOL 1e-9

/* s_bound[k] = 2^(k/256), k = 0..256 (s_bound[256] = 2). */
static double s_bound[(1 << WW_HIST_MAX_SCALE) + 1];
/* Scale s uses the 2^(s+1) cells starting at s_cells[(2 << s) - 2]. */
static uint64_t s_cells[(4 << WW_HIST_MAX_SCALE) - 2];
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static uint64_t s_bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static void s_build(void)
{
    const int n = 1 << WW_HIST_MAX_SCALE;
    for (int k = 0; k <= n; k++) {
        s_bound[k] = exp2((double)k / (double)n);
    }
    s_bound[0] = 1.0;
    s_bound[n] = 2.0;
    for (int s = 0; s <= WW_HIST_MAX_SCALE; s++) {
        uint64_t *cells = s_cells + (2 << s) - 2;
        int ncells = 2 << s;
        int nb = 1 << s;                 /* buckets per octave */
        int step = n >> s;               /* stride into s_bound */
        int shift = MANT_BITS - (s + 1); /* mantissa bits below the cell number */
        int k = 1; /* next boundary, 1 .. nb-1; a cell holds at most one (see above) */
        for (int c = 0; c < ncells; c++) {
            uint64_t end = (uint64_t)(c + 1) << shift;
            uint64_t below = (uint64_t)(k - 1);
            uint64_t bound = MANT_MASK;
            if (k < nb) {
                uint64_t mb = s_bits(s_bound[k * step]) & MANT_MASK;
                if (mb < end) {
                    bound = mb;
                    k++;
                }
            }
            cells[c] = (below << MANT_BITS) | bound;
        }
    }
}

static void s_tables(void)
{
    (void)pthread_once(&s_once, s_build);
}

static int32_t s_min_index(int scale)
{
    return WW_HIST_MIN_LOG2 * (1 << scale);
}

static int32_t s_max_index(int scale)
{
    return WW_HIST_MAX_LOG2 * (1 << scale) - 1;
}

/* floor(i / 2^k) without relying on the implementation-defined >> of negatives. */
static int32_t s_shr(int32_t i, int k)
{
    return i >= 0 ? i >> k : -((-(i + 1)) >> k) - 1;
}

/* The index of a positive normal v at scale (tables built). */
static inline int32_t s_index(double v, int scale)
{
    uint64_t b = s_bits(v);
    int32_t e = (int32_t)((b >> MANT_BITS) & 0x7ff) - 1023;
    uint64_t mant = b & MANT_MASK;
    uint64_t cell = s_cells[(2 << scale) - 2 + (mant >> (MANT_BITS - 1 - scale))];
    int32_t sub = (int32_t)(cell >> MANT_BITS) + (mant > (cell & MANT_MASK)) - (mant == 0);
    return e * (1 << scale) + sub;
}

int32_t ww_hist_index(double v, int scale)
{
    s_tables();
    return s_index(v, scale);
}

double ww_hist_lower(int32_t index, int scale)
{
    s_tables();
    int32_t e = s_shr(index, scale);
    int32_t j = index - e * (1 << scale);
    return ldexp(s_bound[j << (WW_HIST_MAX_SCALE - scale)], e);
}

double ww_hist_upper(int32_t index, int scale)
{
    return ww_hist_lower(index + 1, scale);
}

static void s_clear_stats(ww_hist_t *h)
{
    h->count = 0;
    h->sum = 0.0;
    h->min = NAN;
    h->max = NAN;
    h->zero_count = 0;
    h->underflow = 0;
    h->overflow = 0;
}

void ww_hist_init(ww_hist_t *h, int scale)
{
    s_tables();
    /* An out-of-range scale is a programming error; clamp rather than abort. */
    if (scale < 0) {
        scale = 0;
    }
    if (scale > WW_HIST_MAX_SCALE) {
        scale = WW_HIST_MAX_SCALE;
    }
    h->scale = scale;
    s_clear_stats(h);
    h->offset = 0;
    h->len = 0;
    h->cap = 0;
    h->counts = NULL;
}

void ww_hist_fini(ww_hist_t *h)
{
    WW_HIST_FREE(h->counts);
    h->counts = NULL;
    h->offset = 0;
    h->len = 0;
    h->cap = 0;
    s_clear_stats(h);
}

void ww_hist_reset(ww_hist_t *h)
{
    /* The range stays: the next window most likely spans the same buckets. */
    if (h->len > 0) {
        memset(h->counts, 0, (size_t)h->len * sizeof h->counts[0]);
    }
    s_clear_stats(h);
}

/* Adds a finite v to sum (saturating) and min/max. */
static void s_add_finite(ww_hist_t *h, double v)
{
    double s = h->sum + v;
    if (s > DBL_MAX) {
        s = DBL_MAX;
    } else if (s < -DBL_MAX) {
        s = -DBL_MAX;
    }
    h->sum = s;
    if (!(v >= h->min)) {
        h->min = v;
    }
    if (!(v <= h->max)) {
        h->max = v;
    }
}

/* Makes the dense range cover [lo, hi] (within the scale's range), keeping the counts.
 * Returns 0 or -ENOMEM (h unchanged). */
static int s_cover(ww_hist_t *h, int32_t lo, int32_t hi)
{
    if (h->len > 0) {
        int32_t olo = h->offset, ohi = h->offset + (int32_t)h->len - 1;
        lo = lo < olo ? lo : olo;
        hi = hi > ohi ? hi : ohi;
    }
    uint32_t need = (uint32_t)(hi - lo) + 1;
    if (need > h->cap) {
        uint32_t range = (uint32_t)(s_max_index(h->scale) - s_min_index(h->scale)) + 1;
        uint32_t grown = h->cap + h->cap / 4;
        uint32_t cap = grown > need ? grown : need;
        cap = cap < range ? cap : range;
        cap = cap > need ? cap : need;
        uint64_t *p = WW_HIST_REALLOC(h->counts, (size_t)cap * sizeof *p);
        if (!p) {
            return -ENOMEM;
        }
        h->counts = p;
        h->cap = cap;
    }
    if (h->len == 0) {
        memset(h->counts, 0, (size_t)need * sizeof h->counts[0]);
    } else {
        uint32_t shift = (uint32_t)(h->offset - lo);
        if (shift > 0) {
            memmove(h->counts + shift, h->counts, (size_t)h->len * sizeof h->counts[0]);
            memset(h->counts, 0, (size_t)shift * sizeof h->counts[0]);
        }
        uint32_t used = shift + h->len;
        memset(h->counts + used, 0, (size_t)(need - used) * sizeof h->counts[0]);
    }
    h->offset = lo;
    h->len = need;
    return 0;
}

/* Grows the range to include index i, with slack on the side it grows: a quarter of the
 * range, so a range that warms up bucket by bucket costs amortised O(1) per bucket while
 * the memory beyond what the values span stays under a quarter (an agent keeps eight
 * histograms per model, each up to ~1,000 buckets for TTFT and end-to-end latency). */
static int s_grow(ww_hist_t *h, int32_t i)
{
    int32_t imin = s_min_index(h->scale), imax = s_max_index(h->scale);
    int32_t slack = h->len > 32 ? (int32_t)(h->len / 4) : 8;
    int32_t lo = i, hi = i;
    if (h->len == 0) {
        lo = i - slack;
        hi = i + slack;
    } else if (i < h->offset) {
        int32_t want = h->offset - slack;
        lo = want < i ? want : i;
    } else {
        int32_t want = h->offset + (int32_t)h->len - 1 + slack;
        hi = want > i ? want : i;
    }
    lo = lo < imin ? imin : lo;
    hi = hi > imax ? imax : hi;
    return s_cover(h, lo, hi);
}

int ww_hist_reserve(ww_hist_t *h, int32_t lo, int32_t hi)
{
    if (lo > hi || lo < s_min_index(h->scale) || hi > s_max_index(h->scale)) {
        return -EINVAL;
    }
    return s_cover(h, lo, hi);
}

static __attribute__((noinline)) int s_record_outside(ww_hist_t *h, double v)
{
    h->count++;
    if (v <= 0) {
        h->zero_count++; /* zero, negative, -inf */
    } else if (v <= WW_HIST_MIN) {
        h->underflow++;
    } else {
        h->overflow++; /* > WW_HIST_MAX, +inf, NaN */
    }
    if (isfinite(v)) {
        s_add_finite(h, v);
    }
    return 0;
}

/* Records an in-range v whose bucket i is outside the array (the slow path). */
static __attribute__((noinline)) int s_record_grow(ww_hist_t *h, double v, int32_t i)
{
    if (s_grow(h, i) < 0) {
        h->count++;
        h->overflow++;
        s_add_finite(h, v);
        return -ENOMEM;
    }
    return ww_hist_record(h, v);
}

int ww_hist_record(ww_hist_t *h, double v)
{
    if (!(v > WW_HIST_MIN && v <= WW_HIST_MAX)) {
        return s_record_outside(h, v);
    }
    int32_t i = s_index(v, h->scale);
    uint32_t rel = (uint32_t)i - (uint32_t)h->offset;
    if (rel >= h->len) {
        return s_record_grow(h, v, i);
    }
    h->counts[rel]++;
    h->count++;
    h->sum += v; /* in range: cannot overflow */
    if (!(v >= h->min)) {
        h->min = v;
    }
    if (!(v <= h->max)) {
        h->max = v;
    }
    return 0;
}

/* In place; never allocates. */
static void s_downscale(ww_hist_t *h, int new_scale)
{
    int k = h->scale - new_scale;
    h->scale = new_scale;
    if (k <= 0 || h->len == 0) {
        if (k > 0) {
            h->offset = s_shr(h->offset, k);
        }
        return;
    }
    int32_t no = s_shr(h->offset, k);
    int32_t last = 0;
    for (uint32_t j = 0; j < h->len; j++) {
        uint64_t c = h->counts[j];
        int32_t t = s_shr(h->offset + (int32_t)j, k) - no; /* t <= j */
        h->counts[j] = 0;
        h->counts[t] += c;
        last = t;
    }
    h->offset = no;
    h->len = (uint32_t)last + 1;
}

int ww_hist_downscale(ww_hist_t *h, int new_scale)
{
    if (new_scale < 0 || new_scale > h->scale) {
        return -EINVAL;
    }
    s_downscale(h, new_scale);
    return 0;
}

/* The first and last non-empty bucket (relative); false when there is none. */
static bool s_span(const ww_hist_t *h, uint32_t *first, uint32_t *last)
{
    uint32_t a = 0;
    while (a < h->len && h->counts[a] == 0) {
        a++;
    }
    if (a == h->len) {
        return false;
    }
    uint32_t b = h->len - 1;
    while (h->counts[b] == 0) {
        b--;
    }
    *first = a;
    *last = b;
    return true;
}

/* The sum of h's bucket counts into *total; false when it passes 64 bits. */
static bool s_bucket_total(const ww_hist_t *h, uint64_t *total)
{
    uint64_t t = 0;
    for (uint32_t j = 0; j < h->len; j++) {
        if (__builtin_add_overflow(t, h->counts[j], &t)) {
            return false;
        }
    }
    *total = t;
    return true;
}

/* True when adding src's counts to dst's passes 64 bits anywhere. Checking the totals of
 * the bucket arrays covers every bucket (each merged bucket is a part of their sum), even
 * in a histogram whose count disagrees with its parts. */
static bool s_merge_overflows(const ww_hist_t *dst, const ww_hist_t *src)
{
    uint64_t x, db, sb;
    return __builtin_add_overflow(dst->count, src->count, &x) ||
           __builtin_add_overflow(dst->zero_count, src->zero_count, &x) ||
           __builtin_add_overflow(dst->underflow, src->underflow, &x) ||
           __builtin_add_overflow(dst->overflow, src->overflow, &x) || !s_bucket_total(dst, &db) ||
           !s_bucket_total(src, &sb) || __builtin_add_overflow(db, sb, &x);
}

int ww_hist_merge(ww_hist_t *dst, const ww_hist_t *src)
{
    if (s_merge_overflows(dst, src)) {
        return -EOVERFLOW;
    }
    int t = dst->scale < src->scale ? dst->scale : src->scale;
    int dk = dst->scale - t, sk = src->scale - t;
    uint32_t sa = 0, sb = 0;
    bool have_src = s_span(src, &sa, &sb);
    /* Snapshot src's scalars: src may be dst. */
    ww_hist_t s = *src;

    if (have_src) {
        int32_t lo = s_shr(src->offset + (int32_t)sa, sk);
        int32_t hi = s_shr(src->offset + (int32_t)sb, sk);
        if (dst->len > 0) {
            int32_t dlo = s_shr(dst->offset, dk);
            int32_t dhi = s_shr(dst->offset + (int32_t)dst->len - 1, dk);
            lo = lo < dlo ? lo : dlo;
            hi = hi > dhi ? hi : dhi;
        }
        /* Make room first (the only step that can fail), then downscale in place. */
        uint32_t need = (uint32_t)(hi - lo) + 1;
        if (need > dst->cap) {
            uint64_t *p = WW_HIST_REALLOC(dst->counts, (size_t)need * sizeof *p);
            if (!p) {
                return -ENOMEM;
            }
            dst->counts = p;
            dst->cap = need;
        }
        s_downscale(dst, t);
        if (s_cover(dst, lo, hi) < 0) {
            return -ENOMEM; /* unreachable: the capacity is there */
        }
        for (uint32_t j = sa; j <= sb; j++) {
            int32_t i = s_shr(s.offset + (int32_t)j, sk);
            dst->counts[i - dst->offset] += s.counts[j];
        }
    } else {
        s_downscale(dst, t);
    }
    ww_hist_merge_scalars(dst, &s);
    return 0;
}

void ww_hist_merge_scalars(ww_hist_t *dst, const ww_hist_t *src)
{
    dst->count += src->count;
    dst->zero_count += src->zero_count;
    dst->underflow += src->underflow;
    dst->overflow += src->overflow;
    double sum = dst->sum + src->sum;
    dst->sum = sum > DBL_MAX ? DBL_MAX : sum < -DBL_MAX ? -DBL_MAX : sum;
    dst->min = fmin(dst->min, src->min); /* fmin/fmax ignore a NaN side */
    dst->max = fmax(dst->max, src->max);
}

void ww_hist_clear(ww_hist_t *h)
{
    h->len = 0;
    h->offset = 0;
    s_clear_stats(h);
}

uint64_t ww_hist_rank(double q, uint64_t count)
{
    if (count == 0 || isnan(q)) {
        return 0;
    }
    q = q < 0 ? 0 : q > 1 ? 1 : q;
    /* The decimal PostgreSQL sees: at most DBL_DIG = 15 significant digits, so D < 10^15
     * and D * count < 2^50 * 2^64 fits in 128 bits. */
    char txt[40];
    snprintf(txt, sizeof txt, "%.*g", DBL_DIG, q);
    unsigned __int128 d = 0;
    int frac = 0; /* digits after the point */
    bool point = false;
    const char *p = txt;
    for (; *p && *p != 'e'; p++) {
        if (*p == '.') {
            point = true;
        } else {
            d = d * 10 + (unsigned)(*p - '0');
            frac += point;
        }
    }
    int k = frac - (*p == 'e' ? atoi(p + 1) : 0); /* q = d * 10^-k, k >= 0 as q <= 1 */
    unsigned __int128 prod = d * count;
    if (prod == 0) {
        return 1;
    }
    if (k <= 0) {
        return count; /* q = 1 */
    }
    if (k > 38) {
        return 1; /* 10^k > 2^126 > prod: 0 < q * count < 1 */
    }
    unsigned __int128 den = 1;
    for (int i = 0; i < k; i++) {
        den *= 10;
    }
    unsigned __int128 r = (prod + den - 1) / den;
    return r < 1 ? 1 : r > count ? count : (uint64_t)r;
}

double ww_hist_quantile(const ww_hist_t *h, double q)
{
    if (h->count == 0 || isnan(q)) {
        return NAN;
    }
    uint64_t r = ww_hist_rank(q, h->count);
    if (r <= h->zero_count) {
        return 0.0;
    }
    r -= h->zero_count;
    if (r <= h->underflow) {
        /* Never above max: a value that sat a rounding step below its bucket's lower bound
         * (ww_hist_index may put it either side) could otherwise make a later, clamped
         * bucket rank smaller than this one. */
        return h->max < WW_HIST_MIN ? h->max : WW_HIST_MIN;
    }
    r -= h->underflow;
    for (uint32_t j = 0; j < h->len; j++) {
        if (r <= h->counts[j]) {
            int32_t i = h->offset + (int32_t)j;
            double l = ww_hist_lower(i, h->scale), u = ww_hist_upper(i, h->scale);
            double v = 2.0 * l * u / (l + u);
            if (v < h->min) {
                v = h->min;
            }
            if (v > h->max) {
                v = h->max;
            }
            return v;
        }
        r -= h->counts[j];
    }
    /* In overflow: the largest finite value when it is beyond the range, else +inf (the
     * overflow holds only +inf/NaN, or values dropped there by an out-of-memory). */
    return h->max > WW_HIST_MAX ? h->max : INFINITY;
}

size_t ww_hist_nonempty(const ww_hist_t *h)
{
    size_t n = 0;
    for (uint32_t j = 0; j < h->len; j++) {
        n += h->counts[j] != 0;
    }
    return n;
}

static bool s_add_u64(uint64_t *acc, uint64_t v)
{
    if (*acc + v < *acc) {
        return false;
    }
    *acc += v;
    return true;
}

static int s_check(const ww_hist_t *h, bool plausible);

int ww_hist_check(const ww_hist_t *h)
{
    return s_check(h, true);
}

int ww_hist_check_form(const ww_hist_t *h)
{
    return s_check(h, false);
}

static int s_check(const ww_hist_t *h, bool plausible)
{
    if (h->scale < 0 || h->scale > WW_HIST_MAX_SCALE || h->len > h->cap ||
        (h->cap > 0 && !h->counts)) {
        return -EINVAL;
    }
    uint64_t nb = 0;
    uint32_t first = 0, last = 0;
    if (h->len > 0) {
        int64_t hi = (int64_t)h->offset + h->len - 1;
        if (h->offset < s_min_index(h->scale) || hi > s_max_index(h->scale)) {
            return -EINVAL;
        }
        for (uint32_t j = 0; j < h->len; j++) {
            if (!s_add_u64(&nb, h->counts[j])) {
                return -EINVAL;
            }
        }
        (void)s_span(h, &first, &last); /* found exactly when nb > 0 */
    }
    return ww_hist_check_parts(h, nb, h->offset + (int32_t)first, h->offset + (int32_t)last,
                               plausible);
}

int ww_hist_check_parts(const ww_hist_t *h, uint64_t nb, int32_t first, int32_t last,
                        bool plausible)
{
    if (h->scale < 0 || h->scale > WW_HIST_MAX_SCALE) {
        return -EINVAL;
    }
    bool have = nb > 0;
    if (have && (first > last || first < s_min_index(h->scale) || last > s_max_index(h->scale))) {
        return -EINVAL;
    }
    uint64_t total = 0;
    if (!s_add_u64(&total, nb) || !s_add_u64(&total, h->zero_count) ||
        !s_add_u64(&total, h->underflow) || !s_add_u64(&total, h->overflow) || total != h->count) {
        return -EINVAL;
    }
    if (!isfinite(h->sum)) {
        return -EINVAL;
    }
    if (isnan(h->min) || isnan(h->max)) {
        /* No finite value: only +-inf/NaN (in zero_count, overflow) or nothing. The form
         * alone asks only that min, max and sum say so together (SQL wrote NULL min/max
         * for "unknown" as well). */
        if (!isnan(h->min) || !isnan(h->max) || h->sum != 0 ||
            (plausible && (nb > 0 || h->underflow > 0))) {
            return -EINVAL;
        }
        return 0;
    }
    if (!isfinite(h->min) || !isfinite(h->max) || h->min > h->max || h->count == 0) {
        return -EINVAL;
    }
    if (!plausible) {
        return 0;
    }
    /* Where the finite values can be, given which counters are non-empty. */
    double lo_tol = 1 - REL_TOL, hi_tol = 1 + REL_TOL;
    if (h->zero_count == 0) {
        if (!(h->min > 0)) {
            return -EINVAL;
        }
        if (h->underflow == 0 && !(h->min > WW_HIST_MIN * lo_tol)) {
            return -EINVAL;
        }
        if (h->underflow == 0 && h->overflow == 0 && have &&
            !(h->min > ww_hist_lower(first, h->scale) * lo_tol)) {
            return -EINVAL;
        }
    }
    if (have && !(h->min <= ww_hist_upper(first, h->scale) * hi_tol)) {
        return -EINVAL;
    }
    if (h->underflow > 0 && !(h->min <= WW_HIST_MIN)) {
        return -EINVAL;
    }
    if (h->overflow == 0) {
        double top = have ? ww_hist_upper(last, h->scale) : h->underflow > 0 ? WW_HIST_MIN : 0.0;
        if (!(h->max <= top * hi_tol)) {
            return -EINVAL;
        }
    }
    if (have && !(h->max > ww_hist_lower(last, h->scale) * lo_tol)) {
        return -EINVAL;
    }
    if ((have || h->underflow > 0) && !(h->max > 0)) {
        return -EINVAL;
    }
    return 0;
}
