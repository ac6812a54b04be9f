/* ww_hist_pack: see ww_hist_pack.h.
 *
 * Cost of every order in one pass. EG(k) of x takes 2 L + 1 + k bits with
 * L = floor(log2((x >> k) + 1)) = bitlen(x + 2^k) - 1 - k, so its cost is
 * 2 bitlen(x + 2^k) - k - 1. With B = bitlen(x) and t the number of leading one bits of x
 * (B and t from two clz), bitlen(x + 2^k) is k + 1 when k >= B, B + 1 when B - t <= k < B
 * (the addition carries out of the top) and B below that. So over a stream of n values
 *   total(k) = n (k + 1) + 2 sum_x max(0, B_x - 1 - k) + 2 #{x : B_x - t_x <= k < B_x}
 * which a count of values by B (a suffix sum gives the middle term for all k) and a
 * difference array of the intervals [B - t, B) give for the 16 orders in O(n + 16). The
 * encoder and the decoder (which refuses orders that are not the canonical ones) share it.
 *
 * Decoding. A 64-bit cache, most significant bit first, refilled 8 bytes at a time with one
 * unaligned big-endian load (byte by byte, zeros past the end, for the last 7 bytes); a code
 * of up to 56 bits (every gap and every count below 2^27 or so) is one clz, one shift and
 * one mask. Longer codes (huge counts) take a slow path. Bits read past the end are zeros,
 * and the position is checked after every bucket, so a truncated stream is refused.
 *
 * Merging. A packed histogram of up to S_PAIRS buckets is decoded and validated onto the
 * stack, then dst is grown once to cover [first, last] and the counts added; a larger one
 * is decoded twice (validate, then add). Either way nothing of dst changes before the whole
 * input is known valid and the counters known not to overflow. Nothing here allocates:
 * ww_hist_reserve() (ww_hist.c, with its allocation hooks) grows the bucket arrays.
 */
#include "ww_hist_pack.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#define S_MAX_K 15
/* Buckets a merge or an unpack decodes onto the stack in one pass (~3 KiB). */
#define S_PAIRS 256
/* Head: 2 bytes, 4 varints, 3 doubles, nb, first, orders. */
#define S_HEAD_MAX WW_HIST_PACK_HEAD_MAX
/* Bits of one bucket at most: a gap (< 2^14: 2*13+1+15) and a count - 1 (< 2^63: 2*63+1+15). */
#define S_BUCKET_BITS (42 + 142)

static int32_t s_imin(int scale)
{
    return WW_HIST_MIN_LOG2 * (1 << scale);
}

static int32_t s_imax(int scale)
{
    return WW_HIST_MAX_LOG2 * (1 << scale) - 1;
}

/* ---- the cost of every order ------------------------------------------------------ */

/* g(B, lo, k) = max(0, B - 1 - k) + [lo <= k < B] (lo = B - t), for the 16 k at once: a
 * vector of 16 byte lanes (GCC/clang vector extension: one SSE2 add on x86-64, plain code
 * elsewhere). For a value below 64 (most gaps and most counts of a window) the whole
 * contribution is one table entry, no bit counting; a lane gains at most 6 per value, so
 * the caller moves the lanes into 64-bit sums every S_FLUSH values. Larger values (the
 * counts of merged histograms) add into the 64-bit sums directly. */
typedef uint8_t s_lanes_t __attribute__((vector_size(16)));
#define S_FLUSH 32 /* 32 * 6 < 256 */
#define S_G(b, lo, k) (((b)-1 - (k) > 0 ? (b)-1 - (k) : 0) + ((lo) <= (k) && (k) < (b)))
#define S_E(b, lo)                                                                                 \
    {                                                                                              \
        S_G(b, lo, 0), S_G(b, lo, 1), S_G(b, lo, 2), S_G(b, lo, 3), S_G(b, lo, 4), S_G(b, lo, 5),  \
            S_G(b, lo, 6), S_G(b, lo, 7), S_G(b, lo, 8), S_G(b, lo, 9), S_G(b, lo, 10),            \
            S_G(b, lo, 11), S_G(b, lo, 12), S_G(b, lo, 13), S_G(b, lo, 14), S_G(b, lo, 15)         \
    }
/* B(x) and lo(x) = bitlen(x xor (2^B - 1)) as constant expressions. */
#define S_BL(x)                                                                                    \
    ((x) >= 32 ? 6 : (x) >= 16 ? 5 : (x) >= 8 ? 4 : (x) >= 4 ? 3 : (x) >= 2 ? 2 : (x) >= 1 ? 1 : 0)
#define S_X(x) S_E(S_BL(x), S_BL((x) ^ ((1 << S_BL(x)) - 1)))
#define S_X8(x)                                                                                    \
    S_X(x), S_X(x + 1), S_X(x + 2), S_X(x + 3), S_X(x + 4), S_X(x + 5), S_X(x + 6), S_X(x + 7)
static const s_lanes_t s_gx[64] = {S_X8(0),  S_X8(8),  S_X8(16), S_X8(24),
                                   S_X8(32), S_X8(40), S_X8(48), S_X8(56)};

/* The running sums of one stream. */
typedef struct {
    s_lanes_t lanes;         /* pending part of sum_x g_x(k) */
    uint64_t n;              /* values */
    uint64_t g[S_MAX_K + 1]; /* sum_x g_x(k), flushed */
} s_cost_t;

static void s_cost_init(s_cost_t *c)
{
    memset(c, 0, sizeof *c);
}

static inline void s_cost_flush(s_cost_t *c)
{
    for (int k = 0; k <= S_MAX_K; k++) {
        c->g[k] += c->lanes[k];
    }
    c->lanes ^= c->lanes;
}

/* Adds x (< 2^64 - 1) to the sums; the caller flushes every S_FLUSH values and counts n.
 * No branch on a value below 64: whether a count is 1 or a gap is 0 is data, and a
 * mispredicted branch per value would cost more than the whole update. */
static inline __attribute__((always_inline)) void s_cost_add(s_cost_t *c, uint64_t x)
{
    if (__builtin_expect(x < 64, 1)) {
        c->lanes += s_gx[x];
        return;
    }
    int lz = __builtin_clzll(x);
    int b = 64 - lz;
    int lo = b - __builtin_clzll(~(x << lz) | 1); /* B - t */
    for (int k = 0; k <= S_MAX_K; k++) {
        c->g[k] += (uint64_t)(b - 1 - k > 0 ? b - 1 - k : 0) + (lo <= k && k < b);
    }
}

/* The order of least total bits (n (k + 1) + 2 sum_x g_x(k)), the smallest on ties. */
static int s_cost_best(s_cost_t *c)
{
    s_cost_flush(c);
    int best = 0;
    uint64_t best_bits = UINT64_MAX;
    for (int k = 0; k <= S_MAX_K; k++) {
        uint64_t total = (uint64_t)c->n * (uint64_t)(k + 1) + 2 * c->g[k];
        if (total < best_bits) {
            best_bits = total;
            best = k;
        }
    }
    return best;
}

/* ---- encoding ---------------------------------------------------------------------- */

typedef struct {
    uint8_t *out;
    size_t cap, pos;
    uint64_t acc;
    int nacc; /* bits in acc not yet written, < 8 between calls */
} s_bw_t;

static void s_byte(s_bw_t *w, uint8_t b)
{
    if (w->pos < w->cap) {
        w->out[w->pos] = b;
    }
    w->pos++; /* past cap: only counted, the caller refuses */
}

static void s_varint_put(s_bw_t *w, uint64_t v)
{
    while (v >= 0x80) {
        s_byte(w, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    s_byte(w, (uint8_t)v);
}

static void s_f64_put(s_bw_t *w, double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    for (int i = 0; i < 8; i++) {
        s_byte(w, (uint8_t)(b >> (8 * i)));
    }
}

/* n = 0 .. 32 bits of v, most significant first. */
static void s_bits_put(s_bw_t *w, uint64_t v, int n)
{
    w->acc = (w->acc << n) | v;
    w->nacc += n;
    while (w->nacc >= 8) {
        w->nacc -= 8;
        s_byte(w, (uint8_t)(w->acc >> w->nacc));
    }
}

static void s_eg_put(s_bw_t *w, uint64_t x, int k)
{
    uint64_t v = (x >> k) + 1;
    int l = 63 - __builtin_clzll(v);
    for (int z = l; z > 0; z -= 32) {
        s_bits_put(w, 0, z < 32 ? z : 32);
    }
    if (l + 1 > 32) {
        s_bits_put(w, v >> 32, l + 1 - 32);
        s_bits_put(w, v & 0xffffffffu, 32);
    } else {
        s_bits_put(w, v, l + 1);
    }
    s_bits_put(w, x & ((UINT64_C(1) << k) - 1), k);
}

/* The head of the canonical form of hd's fields (flags follow from them), up to and with
 * the orders byte. */
static void s_head_put(s_bw_t *w, const ww_hist_pack_head_t *hd)
{
    bool finite = !isnan(hd->min);
    unsigned flags = finite ? WW_HIST_PACK_F_FINITE : 0;
    flags |= hd->zero_count ? WW_HIST_PACK_F_ZERO : 0;
    flags |= hd->underflow ? WW_HIST_PACK_F_UNDER : 0;
    flags |= hd->overflow ? WW_HIST_PACK_F_OVER : 0;
    flags |= finite && hd->sum != 0 ? WW_HIST_PACK_F_SUM : 0;
    flags |= finite && hd->min != 0 ? WW_HIST_PACK_F_MIN : 0;
    flags |= finite && hd->max != 0 ? WW_HIST_PACK_F_MAX : 0;
    s_byte(w, (uint8_t)(WW_HIST_PACK_VERSION << 4 | hd->scale));
    s_byte(w, (uint8_t)flags);
    s_varint_put(w, hd->count);
    if (flags & WW_HIST_PACK_F_ZERO) {
        s_varint_put(w, hd->zero_count);
    }
    if (flags & WW_HIST_PACK_F_UNDER) {
        s_varint_put(w, hd->underflow);
    }
    if (flags & WW_HIST_PACK_F_OVER) {
        s_varint_put(w, hd->overflow);
    }
    if (flags & WW_HIST_PACK_F_SUM) {
        s_f64_put(w, hd->sum);
    }
    if (flags & WW_HIST_PACK_F_MIN) {
        s_f64_put(w, hd->min);
    }
    if (flags & WW_HIST_PACK_F_MAX) {
        s_f64_put(w, hd->max);
    }
    s_varint_put(w, hd->nb);
    if (hd->nb > 0) {
        int32_t first = hd->first;
        uint32_t zz = first >= 0 ? (uint32_t)first << 1 : ((uint32_t)(-(first + 1)) << 1) | 1;
        s_varint_put(w, zz);
        s_byte(w, (uint8_t)(hd->k_gap << 4 | hd->k_count));
    }
}

size_t ww_hist_pack_bound(const ww_hist_t *h)
{
    return S_HEAD_MAX + ((size_t)h->len * S_BUCKET_BITS + 7) / 8;
}

long ww_hist_pack(const ww_hist_t *h, uint8_t *out, size_t cap)
{
    if (ww_hist_check_form(h) != 0 || h->count > INT64_MAX) {
        return -EINVAL;
    }
    /* One pass over the buckets: how many, the first, and the cost of every order. */
    s_cost_t cg, cc;
    s_cost_init(&cg);
    s_cost_init(&cc);
    uint64_t nb = 0;
    int32_t first = 0, prev = 0;
    for (uint32_t j = 0; j < h->len; j++) {
        if (h->counts[j] == 0) {
            continue;
        }
        int32_t i = h->offset + (int32_t)j;
        if (nb == 0) {
            first = i;
        } else {
            s_cost_add(&cg, (uint64_t)(i - prev - 1));
            cg.n++;
        }
        s_cost_add(&cc, h->counts[j] - 1);
        cc.n++;
        if (nb % S_FLUSH == S_FLUSH - 1) {
            s_cost_flush(&cg);
            s_cost_flush(&cc);
        }
        prev = i;
        nb++;
    }

    s_bw_t w = {out, cap, 0, 0, 0};
    ww_hist_pack_head_t hd = {.scale = h->scale,
                              .count = h->count,
                              .zero_count = h->zero_count,
                              .underflow = h->underflow,
                              .overflow = h->overflow,
                              .sum = h->sum,
                              .min = h->min,
                              .max = h->max,
                              .nb = nb,
                              .first = first};
    if (nb > 0) {
        hd.k_gap = s_cost_best(&cg);
        hd.k_count = s_cost_best(&cc);
    }
    s_head_put(&w, &hd);
    if (nb > 0) {
        int kg = hd.k_gap, kc = hd.k_count;
        bool any = false;
        for (uint32_t j = 0; j < h->len; j++) {
            if (h->counts[j] == 0) {
                continue;
            }
            int32_t i = h->offset + (int32_t)j;
            if (any) {
                s_eg_put(&w, (uint64_t)(i - prev - 1), kg);
            }
            s_eg_put(&w, h->counts[j] - 1, kc);
            prev = i;
            any = true;
        }
        if (w.nacc > 0) {
            s_byte(&w, (uint8_t)(w.acc << (8 - w.nacc)));
        }
    }
    if (w.pos > cap) {
        return -ENOBUFS;
    }
    return (long)w.pos;
}

long ww_hist_pack_join(const ww_hist_pack_head_t *hd, uint8_t *out, size_t cap)
{
    if (hd->scale < 0 || hd->scale > WW_HIST_MAX_SCALE || hd->k_gap < 0 || hd->k_gap > S_MAX_K ||
        hd->k_count < 0 || hd->k_count > S_MAX_K || (hd->nb == 0 && hd->n_bits_bytes > 0)) {
        return -EINVAL;
    }
    s_bw_t w = {out, cap, 0, 0, 0};
    s_head_put(&w, hd);
    if (w.pos > cap || cap - w.pos < hd->n_bits_bytes) {
        return -ENOBUFS;
    }
    if (hd->n_bits_bytes > 0) {
        memcpy(out + w.pos, hd->bits, hd->n_bits_bytes);
    }
    return (long)(w.pos + hd->n_bits_bytes);
}

/* ---- the head ---------------------------------------------------------------------- */

/* 0, or 1 truncated, 2 longer than 10 bytes or past 64 bits, 3 not minimal. */
static int s_varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *v)
{
    uint64_t r = 0;
    for (int i = 0; i < 10; i++) {
        if (*pos >= n) {
            return 1;
        }
        uint8_t b = p[(*pos)++];
        if (i == 9 && b > 1) {
            return 2;
        }
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (b == 0 && i > 0) {
                return 3;
            }
            *v = r;
            return 0;
        }
    }
    return 2; /* unreachable: the 10th byte is 0 or 1 */
}

#define S_FAIL(msg)                                                                                \
    do {                                                                                           \
        *why = (msg);                                                                              \
        return -EINVAL;                                                                            \
    } while (0)

#define S_VARINT(name, var)                                                                        \
    do {                                                                                           \
        int vr_ = s_varint(p, n, &pos, &(var));                                                    \
        if (vr_ == 1) {                                                                            \
            S_FAIL(name ": truncated");                                                            \
        } else if (vr_ == 2) {                                                                     \
            S_FAIL(name ": varint longer than 10 bytes or past 64 bits");                          \
        } else if (vr_ == 3) {                                                                     \
            S_FAIL(name ": varint not minimal (ends in a 0x00 group)");                            \
        }                                                                                          \
    } while (0)

#define S_COUNTER(flag, name, var)                                                                 \
    do {                                                                                           \
        (var) = 0;                                                                                 \
        if (flags & (flag)) {                                                                      \
            S_VARINT(name, var);                                                                   \
            if ((var) == 0) {                                                                      \
                S_FAIL(name ": present but 0 (its flag must then be clear)");                      \
            }                                                                                      \
            if ((var) > INT64_MAX) {                                                               \
                S_FAIL(name ": past INT64_MAX");                                                   \
            }                                                                                      \
        }                                                                                          \
    } while (0)

#define S_DOUBLE(flag, name, var)                                                                  \
    do {                                                                                           \
        if (flags & (flag)) {                                                                      \
            if (n - pos < 8) {                                                                     \
                S_FAIL(name ": truncated");                                                        \
            }                                                                                      \
            uint64_t b_ = 0;                                                                       \
            for (int i_ = 7; i_ >= 0; i_--) {                                                      \
                b_ = b_ << 8 | p[pos + (size_t)i_];                                                \
            }                                                                                      \
            pos += 8;                                                                              \
            memcpy(&(var), &b_, sizeof(var));                                                      \
            if (!isfinite(var)) {                                                                  \
                S_FAIL(name ": not a finite number");                                              \
            }                                                                                      \
            if ((var) == 0) {                                                                      \
                S_FAIL(name ": present but 0 (its flag must then be clear)");                      \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* The head's fields as a histogram without buckets, for ww_hist_check_parts(). */
static void s_head_scalars(const ww_hist_pack_head_t *hd, ww_hist_t *s)
{
    memset(s, 0, sizeof *s);
    s->scale = hd->scale;
    s->count = hd->count;
    s->zero_count = hd->zero_count;
    s->underflow = hd->underflow;
    s->overflow = hd->overflow;
    s->sum = hd->sum;
    s->min = hd->min;
    s->max = hd->max;
}

static uint64_t s_bucket_total(const ww_hist_pack_head_t *hd)
{
    return hd->count - hd->zero_count - hd->underflow - hd->overflow; /* checked by the head */
}

static int s_check_whole(const ww_hist_pack_head_t *hd, int32_t last, const char **why)
{
    ww_hist_t s;
    s_head_scalars(hd, &s);
    if (ww_hist_check_parts(&s, s_bucket_total(hd), hd->first, last, false) != 0) {
        S_FAIL("min, max or sum inconsistent with the counters (see ww_hist_check_form)");
    }
    return 0;
}

int ww_hist_pack_head(const uint8_t *p, size_t n, ww_hist_pack_head_t *hd, const char **why)
{
    const char *dummy;
    if (!why) {
        why = &dummy;
    }
    memset(hd, 0, sizeof *hd);
    if (n < 2) {
        S_FAIL("truncated before the flags byte");
    }
    if (p[0] >> 4 != WW_HIST_PACK_VERSION) {
        S_FAIL("unknown format version (head byte's high nibble is not 1)");
    }
    hd->scale = p[0] & 0x0f;
    if (hd->scale > WW_HIST_MAX_SCALE) {
        S_FAIL("scale past WW_HIST_MAX_SCALE (8)");
    }
    unsigned flags = p[1];
    if (flags & 0x80) {
        S_FAIL("reserved flag bit 7 set");
    }
    size_t pos = 2;
    S_VARINT("count", hd->count);
    if (hd->count > INT64_MAX) {
        S_FAIL("count: past INT64_MAX");
    }
    S_COUNTER(WW_HIST_PACK_F_ZERO, "zero_count", hd->zero_count);
    S_COUNTER(WW_HIST_PACK_F_UNDER, "underflow", hd->underflow);
    S_COUNTER(WW_HIST_PACK_F_OVER, "overflow", hd->overflow);
    bool finite = flags & WW_HIST_PACK_F_FINITE;
    if (!finite && (flags & (WW_HIST_PACK_F_SUM | WW_HIST_PACK_F_MIN | WW_HIST_PACK_F_MAX))) {
        S_FAIL("sum, min or max present without F_FINITE");
    }
    hd->sum = 0.0;
    hd->min = finite ? 0.0 : NAN;
    hd->max = finite ? 0.0 : NAN;
    S_DOUBLE(WW_HIST_PACK_F_SUM, "sum", hd->sum);
    S_DOUBLE(WW_HIST_PACK_F_MIN, "min", hd->min);
    S_DOUBLE(WW_HIST_PACK_F_MAX, "max", hd->max);
    if (finite && hd->min > hd->max) {
        S_FAIL("min above max");
    }
    /* Each counter is <= INT64_MAX, but three of them can pass 2^64: checked adds. */
    uint64_t outside;
    if (__builtin_add_overflow(hd->zero_count, hd->underflow, &outside) ||
        __builtin_add_overflow(outside, hd->overflow, &outside) || outside > hd->count) {
        S_FAIL("count below zero_count + underflow + overflow");
    }
    uint64_t in_buckets = hd->count - outside;
    if (finite && hd->count == 0) {
        S_FAIL("F_FINITE set on an empty histogram");
    }
    /* F_FINITE clear with values in buckets or underflow is a form ww_hist_check_form()
     * allows (min/max unknown: NULL in the composites SQL wrote by hand), so it is stored. */
    S_VARINT("nb", hd->nb);
    if (hd->nb > in_buckets) {
        S_FAIL("nb: more non-empty buckets than values left for them by count");
    }
    if (hd->nb == 0 && in_buckets > 0) {
        S_FAIL("count above zero_count + underflow + overflow with no bucket");
    }
    if (hd->nb > (uint64_t)(s_imax(hd->scale) - s_imin(hd->scale)) + 1) {
        S_FAIL("nb: more buckets than indexes at this scale");
    }
    if (hd->nb == 0) {
        if (pos != n) {
            S_FAIL("bytes left over after the head of a histogram without buckets");
        }
        hd->bits = p + pos;
        return s_check_whole(hd, 0, why);
    }
    uint64_t zz;
    S_VARINT("first", zz);
    if (zz > UINT32_MAX) {
        S_FAIL("first: index out of the scale's range");
    }
    int64_t first = (zz & 1) ? -(int64_t)(zz >> 1) - 1 : (int64_t)(zz >> 1);
    if (first < s_imin(hd->scale) || first > s_imax(hd->scale)) {
        S_FAIL("first: index out of the scale's range");
    }
    hd->first = (int32_t)first;
    if (pos >= n) {
        S_FAIL("orders: truncated");
    }
    hd->k_gap = p[pos] >> 4;
    hd->k_count = p[pos] & 0x0f;
    pos++;
    hd->bits = p + pos;
    hd->n_bits_bytes = n - pos;
    return 0;
}

/* ---- the bucket stream ------------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t n, pos;  /* pos: the next byte to load (may pass n: zeros) */
    uint64_t cache; /* the next bits at the top */
    int avail;      /* valid bits in cache; invariant: pos * 8 - avail = bits consumed */
} s_br_t;

static inline void s_refill(s_br_t *r)
{
    if (r->pos <= r->n && r->n - r->pos >= 8) {
        uint64_t w;
        memcpy(&w, r->p + r->pos, 8);
        w = __builtin_bswap64(w);
        /* Bits below avail already hold these same bytes (or zeros): OR is exact. */
        r->cache |= w >> r->avail;
        r->pos += (size_t)(63 - r->avail) >> 3;
        r->avail |= 56;
    } else {
        while (r->avail < 56) { /* ends in 56 .. 63: a shift by avail stays below 64 */
            uint64_t b = r->pos < r->n ? r->p[r->pos] : 0;
            r->cache |= b << (56 - r->avail);
            r->pos++;
            r->avail += 8;
        }
    }
}

/* n = 1 .. 32 bits. */
static uint64_t s_get(s_br_t *r, int n)
{
    s_refill(r);
    uint64_t v = r->cache >> (64 - n);
    r->cache <<= n;
    r->avail -= n;
    return v;
}

/* The slow path of s_eg(): a code of more than the cache's bits. UINT64_MAX when it is
 * longer than 64 bits or its value does not fit. */
static __attribute__((noinline)) uint64_t s_eg_slow(s_br_t *r, int k)
{
    int l = 0;
    for (;;) {
        s_refill(r);
        int z = r->cache ? __builtin_clzll(r->cache) : 64;
        if (z < r->avail) {
            l += z;
            r->cache <<= z;
            r->avail -= z;
            break;
        }
        l += r->avail;
        r->cache = 0;
        r->avail = 0;
        if (l > 63) {
            return UINT64_MAX;
        }
    }
    if (l > 63) {
        return UINT64_MAX;
    }
    uint64_t v;
    if (l + 1 > 32) {
        v = s_get(r, l + 1 - 32) << 32;
        v |= s_get(r, 32);
    } else {
        v = s_get(r, l + 1);
    }
    uint64_t low = k ? s_get(r, k) : 0;
    if (v - 1 >= (UINT64_MAX >> k)) {
        return UINT64_MAX;
    }
    return ((v - 1) << k) | low;
}

/* One Exp-Golomb code of order k: its value, or UINT64_MAX (no valid value is that large:
 * the caller's bounds refuse it) for a code longer than 64 bits. */
static inline uint64_t s_eg(s_br_t *r, int k)
{
    int l = __builtin_clzll(r->cache | 1);
    int len = 2 * l + 1 + k;
    if (len > r->avail) {
        s_refill(r);
        l = __builtin_clzll(r->cache | 1);
        len = 2 * l + 1 + k;
        if (len > r->avail) {
            s_br_t t = *r;
            uint64_t x = s_eg_slow(&t, k);
            *r = t;
            return x;
        }
    }
    uint64_t w = r->cache >> (64 - len); /* v << k | low: the l zeros above are zeros */
    r->cache <<= len;
    r->avail -= len;
    return w - (UINT64_C(1) << k);
}

/* Decodes and checks the bucket stream of hd: indexes in range, counts adding up to the
 * buckets' share of count, canonical orders, padding, length. Stores bucket b's index and
 * count in idx[b], cnt[b] when idx is not NULL (nb <= their size), adds it into
 * dense[index - dense_off] when dense is not NULL. The last index in *last. */
static int s_walk(const ww_hist_pack_head_t *hd, int32_t *idx, uint64_t *cnt, uint64_t *dense,
                  int32_t dense_off, bool canonical, int32_t *last, const char **why,
                  uint64_t *used_bits)
{
    s_br_t r = {hd->bits, hd->n_bits_bytes, 0, 0, 0};
    s_cost_t cg, cc;
    s_cost_init(&cg);
    s_cost_init(&cc);
    const uint64_t nbits = (uint64_t)hd->n_bits_bytes * 8;
    const int32_t imax = s_imax(hd->scale);
    int32_t i = hd->first;
    uint64_t left = s_bucket_total(hd);
    for (uint64_t b = 0; b < hd->nb; b++) {
        uint64_t x;
        if (b > 0) {
            x = s_eg(&r, hd->k_gap);
            if (x >= (uint64_t)(imax - i)) { /* i + x + 1 > imax, or no code */
                S_FAIL(x == UINT64_MAX ? "bucket stream: a gap code longer than 64 bits"
                                       : "bucket stream: an index past the scale's range");
            }
            i += (int32_t)x + 1;
            if (canonical) {
                s_cost_add(&cg, x);
            }
        }
        x = s_eg(&r, hd->k_count);
        if (x >= left) { /* x + 1 > left, or no code */
            S_FAIL(x == UINT64_MAX ? "bucket stream: a count code longer than 64 bits"
                                   : "bucket stream: bucket counts add up past count's share");
        }
        if (canonical) {
            s_cost_add(&cc, x);
        }
        left -= x + 1;
        if (idx) {
            idx[b] = i;
            cnt[b] = x + 1;
        }
        if (dense) {
            dense[i - dense_off] += x + 1;
        }
        if (canonical && b % S_FLUSH == S_FLUSH - 1) {
            s_cost_flush(&cg);
            s_cost_flush(&cc);
        }
        /* Reading past the end reads zeros: a code there is at worst a long run of them
         * (refused above), and the position is checked once, below. */
    }
    cg.n = hd->nb - 1;
    cc.n = hd->nb;
    if (left != 0) {
        S_FAIL("bucket counts add up to less than count's share (count above its parts)");
    }
    uint64_t used = r.pos * 8 - (uint64_t)r.avail;
    if (used > nbits) {
        S_FAIL("bucket stream: truncated");
    }
    if (used_bits) { /* only its length asked for: the bytes after it are not its own */
        *used_bits = used;
        *last = i;
        return 0;
    }
    if ((used + 7) / 8 != hd->n_bits_bytes) {
        S_FAIL("bytes left over after the bucket stream");
    }
    unsigned pad = (unsigned)(nbits - used);
    if (pad > 0 && (hd->bits[hd->n_bits_bytes - 1] & ((1u << pad) - 1)) != 0) {
        S_FAIL("bucket stream: padding bits not zero");
    }
    if (canonical && (s_cost_best(&cg) != hd->k_gap || s_cost_best(&cc) != hd->k_count)) {
        S_FAIL("orders: not the canonical ones (least bits, the smallest k on ties)");
    }
    *last = i;
    return 0;
}

long ww_hist_pack_bits_len(const ww_hist_pack_head_t *hd, const char **why)
{
    const char *dummy;
    if (!why) {
        why = &dummy;
    }
    if (hd->nb == 0) {
        return 0;
    }
    uint64_t used;
    int32_t last;
    int rc = s_walk(hd, NULL, NULL, NULL, 0, false, &last, why, &used);
    return rc < 0 ? rc : (long)((used + 7) / 8);
}

/* ---- unpack and merge -------------------------------------------------------------- */

static void s_set_scalars(ww_hist_t *h, const ww_hist_pack_head_t *hd)
{
    h->count = hd->count;
    h->zero_count = hd->zero_count;
    h->underflow = hd->underflow;
    h->overflow = hd->overflow;
    h->sum = hd->sum;
    h->min = hd->min;
    h->max = hd->max;
}

/* Validates the stream of hd, makes h cover [first, last] and adds the counts into it; h
 * changes only when everything is valid (then only by the counts, and by the growth). */
static int s_add_stream(const ww_hist_pack_head_t *hd, ww_hist_t *h, bool canonical,
                        const char **why)
{
    if (hd->nb == 0) {
        return 0;
    }
    int32_t last;
    int rc;
    if (hd->nb <= S_PAIRS) {
        int32_t idx[S_PAIRS];
        uint64_t cnt[S_PAIRS];
        if ((rc = s_walk(hd, idx, cnt, NULL, 0, canonical, &last, why, NULL)) != 0 ||
            (rc = s_check_whole(hd, last, why)) != 0) {
            return rc;
        }
        if (ww_hist_reserve(h, hd->first, last) != 0) {
            return -ENOMEM;
        }
        for (size_t b = 0; b < hd->nb; b++) {
            h->counts[idx[b] - h->offset] += cnt[b];
        }
        return 0;
    }
    if ((rc = s_walk(hd, NULL, NULL, NULL, 0, canonical, &last, why, NULL)) != 0 ||
        (rc = s_check_whole(hd, last, why)) != 0) {
        return rc;
    }
    if (ww_hist_reserve(h, hd->first, last) != 0) {
        return -ENOMEM;
    }
    return s_walk(hd, NULL, NULL, h->counts, h->offset, false, &last, why,
                  NULL); /* cannot fail now */
}

int ww_hist_unpack(const uint8_t *p, size_t n, ww_hist_t *h, const char **why)
{
    const char *dummy;
    if (!why) {
        why = &dummy;
    }
    ww_hist_clear(h);
    ww_hist_pack_head_t hd;
    int rc = ww_hist_pack_head(p, n, &hd, why);
    if (rc != 0) {
        return rc;
    }
    h->scale = hd.scale;
    rc = s_add_stream(&hd, h, true, why);
    if (rc != 0) {
        if (rc == -ENOMEM) {
            *why = "out of memory";
        }
        ww_hist_clear(h);
        return rc;
    }
    s_set_scalars(h, &hd);
    return 0;
}

static int s_merge_packed(ww_hist_t *dst, const uint8_t *p, size_t n, bool canonical,
                          const char **why)
{
    const char *dummy;
    if (!why) {
        why = &dummy;
    }
    ww_hist_pack_head_t hd;
    int rc = ww_hist_pack_head(p, n, &hd, why);
    if (rc != 0) {
        return rc;
    }
    if (hd.scale < dst->scale && dst->count == 0 && dst->len == 0) {
        /* An empty dst (an aggregate's first row: its state starts at the finest scale)
         * merged with a coarser histogram is that histogram at its own scale: adopt the
         * scale and add the buckets straight in, instead of unpacking a copy and merging
         * it (twice the decoding, and an allocation, per group of ww_merge). */
        int scale = dst->scale;
        dst->scale = hd.scale;
        rc = s_merge_packed(dst, p, n, canonical, why);
        if (rc != 0) {
            dst->scale = scale; /* unchanged on error */
        }
        return rc;
    }
    if (hd.scale != dst->scale) {
        /* One side is reduced to the other's scale: ww_hist_merge knows how. */
        ww_hist_t tmp;
        ww_hist_init(&tmp, hd.scale);
        rc = ww_hist_unpack(p, n, &tmp, why);
        if (rc == 0) {
            rc = ww_hist_merge(dst, &tmp);
        }
        ww_hist_fini(&tmp);
        return rc;
    }
    /* dst is consistent (count = its parts), so each of its buckets is at most its count
     * and each incoming one at most hd.count: no sum wraps unless the counts' sum does. */
    uint64_t x;
    if (__builtin_add_overflow(dst->count, hd.count, &x) ||
        __builtin_add_overflow(dst->zero_count, hd.zero_count, &x) ||
        __builtin_add_overflow(dst->underflow, hd.underflow, &x) ||
        __builtin_add_overflow(dst->overflow, hd.overflow, &x)) {
        /* Validate first all the same: invalid input is -EINVAL whatever dst holds. */
        int32_t last;
        rc = hd.nb ? s_walk(&hd, NULL, NULL, NULL, 0, canonical, &last, why, NULL) : 0;
        if (rc == 0 && hd.nb) {
            rc = s_check_whole(&hd, last, why);
        }
        return rc != 0 ? rc : -EOVERFLOW;
    }
    rc = s_add_stream(&hd, dst, canonical, why);
    if (rc != 0) {
        if (rc == -ENOMEM) {
            *why = "out of memory";
        }
        return rc;
    }
    ww_hist_t s;
    s_head_scalars(&hd, &s);
    ww_hist_merge_scalars(dst, &s);
    return 0;
}

int ww_hist_merge_packed(ww_hist_t *dst, const uint8_t *p, size_t n, const char **why)
{
    return s_merge_packed(dst, p, n, true, why);
}

int ww_hist_merge_stored(ww_hist_t *dst, const uint8_t *p, size_t n, const char **why)
{
    return s_merge_packed(dst, p, n, false, why);
}
