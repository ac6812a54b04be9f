/* Unit tests of ww_hist_pack (the canonical byte form of a histogram) and ww_hist_text (its
 * JSON form): round trips of random histograms at every scale with every kind of counter,
 * canonical bytes (against an encoder written here from the header alone, with the orders
 * chosen by brute force), every refusal of the decoder, ww_hist_merge_packed against
 * ww_hist_merge, and the text form's output and refusals with their messages. */
#include "ww_hist.h"
#include "ww_hist_pack.h"
#include "ww_hist_text.h"
#include "ww_test.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846
#define BUF 65536

static double rng_normal(uint64_t *s)
{
    double u = ww_test_rng_unit(s), v = ww_test_rng_unit(s);
    return sqrt(-2.0 * log(u)) * cos(2.0 * PI * v);
}

static int32_t idx_min(int scale)
{
    return WW_HIST_MIN_LOG2 * (1 << scale);
}

static int32_t idx_max(int scale)
{
    return WW_HIST_MAX_LOG2 * (1 << scale) - 1;
}

static uint64_t bucket_at(const ww_hist_t *h, int64_t i)
{
    int64_t r = i - h->offset;
    return r >= 0 && r < (int64_t)h->len ? h->counts[r] : 0;
}

static bool same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || (a == b && signbit(a) == signbit(b)) ||
           (a == 0 && b == 0); /* +-0: the packed form keeps no sign of a zero */
}

/* Same scale, counters, sum/min/max and buckets (whatever the dense ranges). */
static void assert_same(const ww_hist_t *a, const ww_hist_t *b)
{
    assert_int_equal(a->scale, b->scale);
    assert_true(a->count == b->count);
    assert_true(a->zero_count == b->zero_count);
    assert_true(a->underflow == b->underflow);
    assert_true(a->overflow == b->overflow);
    assert_true(same_double(a->sum, b->sum));
    assert_true(same_double(a->min, b->min));
    assert_true(same_double(a->max, b->max));
    for (int64_t i = idx_min(a->scale); i <= idx_max(a->scale); i++) {
        assert_true(bucket_at(a, i) == bucket_at(b, i));
    }
}

/* A random histogram: lognormal values around a random median at a random spread, some
 * zeros, negatives, underflows, overflows, +inf and NaN; sometimes huge counts added to
 * the buckets (up to INT64_MAX in all). */
static void random_hist(uint64_t *s, ww_hist_t *h, int scale)
{
    ww_hist_init(h, scale);
    int kind = (int)(ww_test_rng_next(s) % 10);
    int n = kind == 0 ? 0 : (int)(ww_test_rng_next(s) % (kind < 5 ? 40 : 400));
    double med = exp(ww_test_rng_unit(s) * 18 - 12), sigma = ww_test_rng_unit(s) * 2.5;
    for (int i = 0; i < n; i++) {
        double u = ww_test_rng_unit(s), v;
        if (kind == 1 && u < 0.5) {
            v = (u < 0.25) ? INFINITY : NAN; /* no finite value at all, sometimes */
        } else if (u < 0.02) {
            v = 0.0;
        } else if (u < 0.03) {
            v = -0.25;
        } else if (u < 0.05) {
            v = 1e-7;
        } else if (u < 0.06) {
            v = 5000.0;
        } else if (u < 0.065) {
            v = INFINITY;
        } else if (u < 0.07) {
            v = WW_HIST_MAX; /* the last bucket */
        } else if (u < 0.075) {
            v = WW_HIST_MIN * 1.0000001; /* the first bucket */
        } else {
            v = med * exp(sigma * rng_normal(s));
        }
        if (kind == 1 && isfinite(v)) {
            continue;
        }
        ww_hist_record(h, v);
    }
    if (kind >= 8 && h->len > 0) {
        /* Heavy counts: up to INT64_MAX in all, once exactly. */
        uint64_t room = (uint64_t)INT64_MAX - h->count;
        for (uint32_t j = 0; j < h->len && room > 0; j++) {
            if (h->counts[j] == 0) {
                continue;
            }
            uint64_t add = kind == 9 ? room : ww_test_rng_next(s) % (room / 4 + 1);
            h->counts[j] += add;
            h->count += add;
            room -= add;
        }
    }
}

/* ---- a reference encoder, written from the header alone ----------------------------- */

typedef struct {
    uint8_t b[BUF];
    size_t n;
    uint64_t bits; /* bits in the stream */
} ref_t;

static void ref_byte(ref_t *r, unsigned v)
{
    assert_true(r->n < BUF);
    r->b[r->n++] = (uint8_t)v;
}

static void ref_varint(ref_t *r, uint64_t v)
{
    do {
        ref_byte(r, (unsigned)(v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

static void ref_f64(ref_t *r, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    for (int i = 0; i < 8; i++) {
        ref_byte(r, (unsigned)(u >> (8 * i)) & 0xff);
    }
}

static void ref_bit(ref_t *r, int bit, size_t start)
{
    size_t at = start + r->bits / 8;
    if (at == r->n) {
        ref_byte(r, 0);
    }
    if (bit) {
        r->b[at] |= (uint8_t)(0x80 >> (r->bits % 8));
    }
    r->bits++;
}

/* Bit lengths from the definition: v = (x >> k) + 1, L = floor(log2 v). */
static void ref_eg(ref_t *r, uint64_t x, int k, size_t start)
{
    uint64_t v = (x >> k) + 1;
    int l = 0;
    while ((v >> l) > 1) {
        l++;
    }
    for (int i = 0; i < l; i++) {
        ref_bit(r, 0, start);
    }
    for (int i = l; i >= 0; i--) {
        ref_bit(r, (int)((v >> i) & 1), start);
    }
    for (int i = k - 1; i >= 0; i--) {
        ref_bit(r, (int)((x >> i) & 1), start);
    }
}

static uint64_t ref_eg_bits(uint64_t x, int k)
{
    uint64_t v = (x >> k) + 1;
    int l = 0;
    while ((v >> l) > 1) {
        l++;
    }
    return (uint64_t)(2 * l + 1 + k);
}

/* The canonical orders of h by brute force. */
static void ref_orders(const ww_hist_t *h, int *kg, int *kc)
{
    uint64_t bg[16] = {0}, bc[16] = {0};
    int64_t prev = INT64_MIN;
    for (uint32_t j = 0; j < h->len; j++) {
        if (!h->counts[j]) {
            continue;
        }
        int64_t i = h->offset + (int64_t)j;
        for (int k = 0; k < 16; k++) {
            if (prev != INT64_MIN) {
                bg[k] += ref_eg_bits((uint64_t)(i - prev - 1), k);
            }
            bc[k] += ref_eg_bits(h->counts[j] - 1, k);
        }
        prev = i;
    }
    *kg = *kc = 0;
    for (int k = 1; k < 16; k++) {
        *kg = bg[k] < bg[*kg] ? k : *kg;
        *kc = bc[k] < bc[*kc] ? k : *kc;
    }
}

/* The header's format, with the orders given (-1: the canonical ones). */
static void ref_pack(const ww_hist_t *h, int kg, int kc, ref_t *r)
{
    memset(r, 0, sizeof *r);
    bool fin = !isnan(h->min);
    unsigned fl = (fin ? 1u : 0) | (h->zero_count ? 2u : 0) | (h->underflow ? 4u : 0) |
                  (h->overflow ? 8u : 0) | (fin && h->sum != 0 ? 0x10u : 0) |
                  (fin && h->min != 0 ? 0x20u : 0) | (fin && h->max != 0 ? 0x40u : 0);
    ref_byte(r, 0x10u | (unsigned)h->scale);
    ref_byte(r, fl);
    ref_varint(r, h->count);
    if (fl & 2) {
        ref_varint(r, h->zero_count);
    }
    if (fl & 4) {
        ref_varint(r, h->underflow);
    }
    if (fl & 8) {
        ref_varint(r, h->overflow);
    }
    if (fl & 0x10) {
        ref_f64(r, h->sum);
    }
    if (fl & 0x20) {
        ref_f64(r, h->min);
    }
    if (fl & 0x40) {
        ref_f64(r, h->max);
    }
    size_t nb = ww_hist_nonempty(h);
    ref_varint(r, nb);
    if (nb == 0) {
        return;
    }
    int ckg, ckc;
    ref_orders(h, &ckg, &ckc);
    kg = kg < 0 ? ckg : kg;
    kc = kc < 0 ? ckc : kc;
    int64_t prev = INT64_MIN;
    size_t start = 0;
    for (uint32_t j = 0; j < h->len; j++) {
        if (!h->counts[j]) {
            continue;
        }
        int64_t i = h->offset + (int64_t)j;
        if (prev == INT64_MIN) {
            ref_varint(r, i >= 0 ? (uint64_t)i << 1 : ((uint64_t)(-(i + 1)) << 1) | 1);
            ref_byte(r, (unsigned)(kg << 4 | kc));
            start = r->n;
        } else {
            ref_eg(r, (uint64_t)(i - prev - 1), kg, start);
        }
        ref_eg(r, h->counts[j] - 1, kc, start);
        prev = i;
    }
}

static long pack(const ww_hist_t *h, uint8_t *out)
{
    long n = ww_hist_pack(h, out, BUF);
    assert_true(n > 0);
    return n;
}

/* ---- pack / unpack ------------------------------------------------------------------ */

static void test_pack_roundtrip_random(void **state)
{
    (void)state;
    uint64_t s = 7;
    static uint8_t b[BUF], b2[BUF];
    static ref_t ref;
    for (int it = 0; it < 3000; it++) {
        ww_hist_t h, back;
        random_hist(&s, &h, it % (WW_HIST_MAX_SCALE + 1));
        assert_int_equal(ww_hist_check(&h), 0);
        long n = pack(&h, b);
        assert_true((size_t)n <= ww_hist_pack_bound(&h));
        /* The bytes are the header's format, orders canonical by brute force. */
        ref_pack(&h, -1, -1, &ref);
        assert_int_equal((size_t)n, ref.n);
        assert_memory_equal(b, ref.b, (size_t)n);
        /* Too small a buffer: -ENOBUFS. */
        assert_int_equal(ww_hist_pack(&h, b2, (size_t)n - 1), -ENOBUFS);

        ww_hist_init(&back, 0);
        const char *why = NULL;
        assert_int_equal(ww_hist_unpack(b, (size_t)n, &back, &why), 0);
        assert_int_equal(ww_hist_check(&back), 0);
        assert_same(&h, &back);
        /* Canonical: pack(unpack(b)) == b. */
        long n2 = pack(&back, b2);
        assert_int_equal(n2, n);
        assert_memory_equal(b, b2, (size_t)n);
        /* The head alone. */
        ww_hist_pack_head_t hd;
        assert_int_equal(ww_hist_pack_head(b, (size_t)n, &hd, &why), 0);
        assert_true(hd.count == h.count && hd.nb == ww_hist_nonempty(&h));
        ww_hist_fini(&h);
        ww_hist_fini(&back);
    }
}

static void test_pack_special_shapes(void **state)
{
    (void)state;
    static uint8_t b[BUF];
    const char *why;
    for (int scale = 0; scale <= WW_HIST_MAX_SCALE; scale++) {
        ww_hist_t h, back;
        ww_hist_init(&h, scale);
        ww_hist_init(&back, 3);
        /* Empty: head byte, flags, count 0, nb 0. */
        long n = pack(&h, b);
        assert_int_equal(n, 4);
        assert_int_equal(b[0], 0x10 | scale);
        assert_int_equal(ww_hist_unpack(b, 4, &back, &why), 0);
        assert_same(&h, &back);
        /* The two extreme buckets, single and together. */
        ww_hist_record(&h, WW_HIST_MAX);
        assert_int_equal(ww_hist_unpack(b, (size_t)pack(&h, b), &back, &why), 0);
        assert_same(&h, &back);
        ww_hist_reset(&h);
        ww_hist_record(&h, nextafter(WW_HIST_MIN, 1.0));
        assert_int_equal(ww_hist_unpack(b, (size_t)pack(&h, b), &back, &why), 0);
        assert_same(&h, &back);
        assert_int_equal(back.offset, idx_min(scale));
        ww_hist_record(&h, WW_HIST_MAX);
        assert_int_equal(ww_hist_unpack(b, (size_t)pack(&h, b), &back, &why), 0);
        assert_same(&h, &back);
        /* NaN min/max: only +inf and NaN recorded. */
        ww_hist_reset(&h);
        ww_hist_record(&h, INFINITY);
        ww_hist_record(&h, NAN);
        n = pack(&h, b);
        assert_int_equal(b[1], WW_HIST_PACK_F_OVER);
        assert_int_equal(ww_hist_unpack(b, (size_t)n, &back, &why), 0);
        assert_true(isnan(back.min) && isnan(back.max) && back.overflow == 2);
        /* A single bucket holding INT64_MAX. */
        ww_hist_reset(&h);
        ww_hist_record(&h, 0.5);
        h.counts[0.5 > 0 ? ww_hist_index(0.5, scale) - h.offset : 0] = INT64_MAX;
        h.count = INT64_MAX;
        n = pack(&h, b);
        assert_int_equal(ww_hist_unpack(b, (size_t)n, &back, &why), 0);
        assert_same(&h, &back);
        /* One more is refused by the encoder (bigint in SQL). */
        h.counts[ww_hist_index(0.5, scale) - h.offset] = (uint64_t)INT64_MAX + 1;
        h.count = (uint64_t)INT64_MAX + 1;
        assert_int_equal(ww_hist_pack(&h, b, BUF), -EINVAL);
        ww_hist_fini(&h);
        ww_hist_fini(&back);
    }
}

/* Equal histograms recorded in different orders (values whose sums are exact) have
 * equal bytes. */
static void test_pack_equal_bytes_any_order(void **state)
{
    (void)state;
    uint64_t s = 11;
    static uint8_t a[BUF], b[BUF];
    for (int it = 0; it < 200; it++) {
        double v[300];
        int n = 1 + (int)(ww_test_rng_next(&s) % 300);
        for (int i = 0; i < n; i++) {
            v[i] = (double)(1 + ww_test_rng_next(&s) % 100000) / 1024.0; /* dyadic: exact sums */
        }
        ww_hist_t x, y;
        ww_hist_init(&x, it % 9);
        ww_hist_init(&y, it % 9);
        for (int i = 0; i < n; i++) {
            ww_hist_record(&x, v[i]);
            ww_hist_record(&y, v[n - 1 - i]);
        }
        long nx = pack(&x, a), ny = pack(&y, b);
        assert_int_equal(nx, ny);
        assert_memory_equal(a, b, (size_t)nx);
        ww_hist_fini(&x);
        ww_hist_fini(&y);
    }
}

/* A small valid histogram with padding in its last byte: 0.5 x2, 0.75, 2.0 at scale 0. */
static void small_hist(ww_hist_t *h)
{
    ww_hist_init(h, 0);
    ww_hist_record(h, 0.5);
    ww_hist_record(h, 0.5);
    ww_hist_record(h, 0.75);
    ww_hist_record(h, 2.0);
}

static void expect_reject(const uint8_t *p, size_t n, const char *needle)
{
    ww_hist_t h;
    ww_hist_init(&h, 2);
    const char *why = NULL;
    int rc = ww_hist_unpack(p, n, &h, &why);
    if (rc != -EINVAL || !why || (needle && !strstr(why, needle))) {
        fprintf(stderr, "expected a refusal naming \"%s\", got %d: %s\n", needle ? needle : "", rc,
                why ? why : "(no reason)");
    }
    assert_int_equal(rc, -EINVAL);
    assert_non_null(why);
    if (needle) {
        assert_non_null(strstr(why, needle));
    }
    assert_true(h.count == 0 && h.len == 0 && isnan(h.min));
    assert_int_equal(ww_hist_check(&h), 0);
    /* merge_packed refuses it too, dst unchanged. */
    ww_hist_t d;
    ww_hist_init(&d, 0);
    ww_hist_record(&d, 0.3);
    why = NULL;
    assert_int_equal(ww_hist_merge_packed(&d, p, n, &why), -EINVAL);
    assert_non_null(why);
    assert_true(d.count == 1);
    ww_hist_fini(&d);
    ww_hist_fini(&h);
}

/* Builds a packed form field by field (no checks), for the refusals. */
typedef struct {
    unsigned head, flags;
    uint64_t count, zero, under, over;
    double sum, min, max;
    uint64_t nb, zz_first;
    unsigned orders;
    const uint8_t *bits;
    size_t n_bits;
} raw_t;

static size_t raw_pack(const raw_t *w, uint8_t *out)
{
    static ref_t r;
    memset(&r, 0, sizeof r);
    ref_byte(&r, w->head);
    ref_byte(&r, w->flags);
    ref_varint(&r, w->count);
    if (w->flags & 2) {
        ref_varint(&r, w->zero);
    }
    if (w->flags & 4) {
        ref_varint(&r, w->under);
    }
    if (w->flags & 8) {
        ref_varint(&r, w->over);
    }
    if (w->flags & 0x10) {
        ref_f64(&r, w->sum);
    }
    if (w->flags & 0x20) {
        ref_f64(&r, w->min);
    }
    if (w->flags & 0x40) {
        ref_f64(&r, w->max);
    }
    ref_varint(&r, w->nb);
    if (w->nb) {
        ref_varint(&r, w->zz_first);
        ref_byte(&r, w->orders);
        for (size_t i = 0; i < w->n_bits; i++) {
            ref_byte(&r, w->bits[i]);
        }
    }
    memcpy(out, r.b, r.n);
    return r.n;
}

static void test_unpack_rejects(void **state)
{
    (void)state;
    static uint8_t b[BUF], c[BUF];
    ww_hist_t h;
    small_hist(&h);
    size_t n = (size_t)pack(&h, b);
    const char *why;
    ww_hist_t back;
    ww_hist_init(&back, 0);
    assert_int_equal(ww_hist_unpack(b, n, &back, &why), 0);
    assert_true(n > 4 && (b[n - 1] & 1) == 0); /* there is padding to spoil */

    /* Bad version, scale 9, reserved flag. */
    memcpy(c, b, n);
    c[0] = 0x20;
    expect_reject(c, n, "version");
    c[0] = 0x19;
    expect_reject(c, n, "scale");
    memcpy(c, b, n);
    c[1] |= 0x80;
    expect_reject(c, n, "reserved");
    /* Truncated at every byte, one byte left over. */
    for (size_t k = 0; k < n; k++) {
        expect_reject(b, k, NULL);
    }
    memcpy(c, b, n);
    c[n] = 0;
    expect_reject(c, n + 1, "left over");
    /* Non-zero padding. */
    c[n - 1] |= 1;
    expect_reject(c, n, "padding");

    /* Field by field. The stream of small_hist at scale 0: buckets -1 (2), 0 (1), 1 (1)... as
     * packed above; reuse its bits. */
    ww_hist_pack_head_t hd;
    assert_int_equal(ww_hist_pack_head(b, n, &hd, &why), 0);
    raw_t ok = {0x10,    b[1],           4,     0,     0, 0,
                h.sum,   h.min,          h.max, hd.nb, 0, b[hd.bits - b - 1],
                hd.bits, hd.n_bits_bytes};
    ok.zz_first = hd.first >= 0 ? (uint64_t)hd.first << 1 : ((uint64_t)(-(hd.first + 1)) << 1) | 1;
    size_t m = raw_pack(&ok, c);
    assert_int_equal(m, n);
    assert_memory_equal(c, b, n); /* the builder agrees */

    raw_t w = ok;
    w.count = 5;
    expect_reject(c, raw_pack(&w, c), "count");
    w.count = 3;
    expect_reject(c, raw_pack(&w, c), "count");
    w = ok;
    w.count = (uint64_t)INT64_MAX + 1;
    expect_reject(c, raw_pack(&w, c), "INT64_MAX");
    w = ok;
    w.zz_first = 2 * (uint64_t)(idx_max(0) + 1);
    expect_reject(c, raw_pack(&w, c), "range");
    w.zz_first = 2 * (uint64_t)(-idx_min(0)); /* imin - 1 */
    w.zz_first |= 1;
    expect_reject(c, raw_pack(&w, c), "range");
    w = ok;
    w.flags &= ~WW_HIST_PACK_F_FINITE;
    expect_reject(c, raw_pack(&w, c), "F_FINITE");
    w = ok;
    w.sum = NAN;
    expect_reject(c, raw_pack(&w, c), "finite");
    w.sum = INFINITY;
    expect_reject(c, raw_pack(&w, c), "finite");
    w = ok;
    w.min = 3.0;
    expect_reject(c, raw_pack(&w, c), "min above max");
    w = ok;
    w.min = 0.0;
    expect_reject(c, raw_pack(&w, c), "present but 0");
    w = ok;
    w.flags |= WW_HIST_PACK_F_ZERO;
    w.zero = 0;
    expect_reject(c, raw_pack(&w, c), "present but 0");
    w = ok;
    w.nb = 5;
    expect_reject(c, raw_pack(&w, c), "nb");
    /* zero_count, underflow and overflow, each <= INT64_MAX, whose sum passes 2^64 and,
     * wrapped, would fall below count: the head alone must refuse it. */
    w = ok;
    w.flags |= WW_HIST_PACK_F_ZERO | WW_HIST_PACK_F_UNDER | WW_HIST_PACK_F_OVER;
    w.zero = w.under = w.over = (uint64_t)INT64_MAX;
    w.count = (uint64_t)INT64_MAX - 1;
    {
        size_t wn = raw_pack(&w, c);
        ww_hist_pack_head_t whd;
        const char *wwhy = NULL;
        assert_int_equal(ww_hist_pack_head(c, wn, &whd, &wwhy), -EINVAL);
        assert_non_null(strstr(wwhy, "count below"));
    }
    /* min above max: not a form a histogram has. */
    w = ok;
    w.min = w.max * 2;
    expect_reject(c, raw_pack(&w, c), "min above max");
    /* min outside its bucket's bounds is refused by ww_hist_check's plausibility (the wire),
     * not by the stored form (ww_hist_check_form): the composite of schema versions 12-14
     * held what SQL wrote by hand, and an upgrade keeps it. */
    w = ok;
    w.min = w.min / 16;
    {
        ww_hist_t loose;
        ww_hist_init(&loose, 2);
        const char *loose_why = NULL;
        assert_int_equal(ww_hist_unpack(c, raw_pack(&w, c), &loose, &loose_why), 0);
        assert_int_equal(ww_hist_check_form(&loose), 0);
        assert_int_equal(ww_hist_check(&loose), -EINVAL);
        ww_hist_fini(&loose);
    }

    /* Varints: non-minimal (count 4 as 0x84 0x00), longer than 10 bytes, past 64 bits. */
    m = raw_pack(&ok, c);
    uint8_t v[BUF];
    size_t at = 2; /* count */
    memcpy(v, c, at);
    v[at] = 0x84;
    v[at + 1] = 0x00;
    memcpy(v + at + 2, c + at + 1, m - at - 1);
    expect_reject(v, m + 1, "not minimal");
    memcpy(v, c, at);
    for (int i = 0; i < 11; i++) {
        v[at + i] = 0x80;
    }
    v[at + 11] = 0x01;
    expect_reject(v, at + 12, "varint");
    for (int i = 0; i < 9; i++) {
        v[at + i] = 0xff;
    }
    v[at + 9] = 0x02;
    expect_reject(v, at + 10, "varint");

    /* A count past count's share, through an order not the canonical one, a code of 64
     * zeros. */
    ref_t r;
    ref_pack(&h, (b[hd.bits - b - 1] >> 4) + 1, -1, &r);
    expect_reject(r.b, r.n, "canonical");
    ref_pack(&h, -1, (b[hd.bits - b - 1] & 15) + 1, &r);
    expect_reject(r.b, r.n, "canonical");
    /* ww_hist_merge_stored (bytes checked once already) takes the non-canonical orders,
     * and gives the same histogram; it still refuses a stream cut short. */
    {
        ww_hist_t st;
        ww_hist_init(&st, h.scale);
        const char *st_why = NULL;
        assert_int_equal(ww_hist_merge_stored(&st, r.b, r.n, &st_why), 0);
        assert_same(&h, &st);
        ww_hist_fini(&st);
        ww_hist_init(&st, h.scale);
        assert_int_equal(ww_hist_merge_stored(&st, r.b, r.n - 1, &st_why), -EINVAL);
        assert_int_equal(st.count, 0);
        ww_hist_fini(&st);
    }
    uint8_t zeros[16] = {0};
    w = ok;
    w.bits = zeros;
    w.n_bits = sizeof zeros;
    expect_reject(c, raw_pack(&w, c), "longer than 64 bits");
    ww_hist_fini(&h);
    ww_hist_fini(&back);
}

/* ---- merge_packed ------------------------------------------------------------------- */

static void test_merge_packed_equals_merge(void **state)
{
    (void)state;
    uint64_t s = 23;
    static uint8_t b[BUF];
    for (int it = 0; it < 2000; it++) {
        ww_hist_t a, src, via_merge, via_packed, dec;
        random_hist(&s, &a, (int)(ww_test_rng_next(&s) % 9));
        int sscale = it % 3 == 0 ? (int)(ww_test_rng_next(&s) % 9) : a.scale;
        random_hist(&s, &src, sscale);
        long n = pack(&src, b);
        ww_hist_init(&dec, 0);
        const char *why;
        assert_int_equal(ww_hist_unpack(b, (size_t)n, &dec, &why), 0);
        ww_hist_init(&via_merge, a.scale);
        ww_hist_init(&via_packed, a.scale);
        assert_int_equal(ww_hist_merge(&via_merge, &a), 0);
        assert_int_equal(ww_hist_merge(&via_packed, &a), 0);
        ww_hist_t via_stored;
        ww_hist_init(&via_stored, a.scale);
        assert_int_equal(ww_hist_merge(&via_stored, &a), 0);
        int r1 = ww_hist_merge(&via_merge, &dec);
        int r2 = ww_hist_merge_packed(&via_packed, b, (size_t)n, &why);
        int r3 = ww_hist_merge_stored(&via_stored, b, (size_t)n, &why);
        assert_int_equal(r1, r2);
        assert_int_equal(r1, r3);
        if (r1 == 0) {
            assert_int_equal(ww_hist_check(&via_packed), 0);
        }
        assert_same(&via_merge, &via_packed);
        assert_same(&via_merge, &via_stored);
        ww_hist_fini(&via_stored);
        ww_hist_fini(&a);
        ww_hist_fini(&src);
        ww_hist_fini(&dec);
        ww_hist_fini(&via_merge);
        ww_hist_fini(&via_packed);
    }
}

static void snapshot(const ww_hist_t *h, ww_hist_t *copy, uint64_t *counts)
{
    *copy = *h;
    memcpy(counts, h->counts, h->len * sizeof *counts);
}

static void assert_unchanged(const ww_hist_t *h, const ww_hist_t *copy, const uint64_t *counts)
{
    assert_int_equal(h->scale, copy->scale);
    assert_true(h->count == copy->count && h->zero_count == copy->zero_count &&
                h->underflow == copy->underflow && h->overflow == copy->overflow);
    assert_true(same_double(h->sum, copy->sum) && same_double(h->min, copy->min) &&
                same_double(h->max, copy->max));
    assert_int_equal(h->offset, copy->offset);
    assert_int_equal(h->len, copy->len);
    assert_memory_equal(h->counts, counts, h->len * sizeof *counts);
}

static void test_merge_packed_unchanged_on_error(void **state)
{
    (void)state;
    static uint8_t b[BUF], c[BUF];
    static uint64_t counts[BUF];
    ww_hist_t src, dst, copy;
    small_hist(&src);
    size_t n = (size_t)pack(&src, b);
    const char *why;

    /* -EOVERFLOW: dst's count (in its buckets) would pass 2^64 - 1. */
    ww_hist_init(&dst, 0);
    ww_hist_record(&dst, 0.75);
    ww_hist_record(&dst, 8.0);
    dst.counts[ww_hist_index(0.75, 0) - dst.offset] = UINT64_MAX - 2;
    dst.count = UINT64_MAX - 1;
    assert_int_equal(ww_hist_check(&dst), 0);
    snapshot(&dst, &copy, counts);
    assert_int_equal(ww_hist_merge_packed(&dst, b, n, &why), -EOVERFLOW);
    assert_unchanged(&dst, &copy, counts);
    /* the zero counter alone */
    ww_hist_reset(&dst);
    ww_hist_record(&dst, 0.0);
    dst.zero_count = dst.count = UINT64_MAX;
    ww_hist_t z;
    ww_hist_init(&z, 0);
    ww_hist_record(&z, 0.0);
    size_t nz = (size_t)pack(&z, c);
    snapshot(&dst, &copy, counts);
    assert_int_equal(ww_hist_merge_packed(&dst, c, nz, &why), -EOVERFLOW);
    assert_unchanged(&dst, &copy, counts);

    /* -EINVAL found at the very end (a byte left over), and in the middle of the stream. */
    ww_hist_reset(&dst);
    ww_hist_record(&dst, 3.0);
    snapshot(&dst, &copy, counts);
    memcpy(c, b, n);
    c[n] = 0;
    assert_int_equal(ww_hist_merge_packed(&dst, c, n + 1, &why), -EINVAL);
    assert_unchanged(&dst, &copy, counts);
    assert_int_equal(ww_hist_merge_packed(&dst, b, n - 1, &why), -EINVAL);
    assert_unchanged(&dst, &copy, counts);
    /* Different scales: the same. */
    ww_hist_t fine;
    ww_hist_init(&fine, 5);
    ww_hist_record(&fine, 3.0);
    snapshot(&fine, &copy, counts);
    assert_int_equal(ww_hist_merge_packed(&fine, c, n + 1, &why), -EINVAL);
    assert_unchanged(&fine, &copy, counts);
    ww_hist_fini(&fine);
    ww_hist_fini(&z);
    ww_hist_fini(&src);
    ww_hist_fini(&dst);
}

/* ---- text --------------------------------------------------------------------------- */

/* min/max unknown (NaN) with values in buckets and underflow: a form the stored type keeps
 * (ww_hist_check_form; the composites SQL wrote by hand), through both forms. */
static void test_unknown_min_max_kept(void **state)
{
    (void)state;
    static uint8_t b[BUF];
    char txt[512], err[256];
    ww_hist_t h, back;
    ww_hist_init(&h, 6);
    ww_hist_record(&h, 0.5);
    ww_hist_record(&h, 1e-7);
    h.min = h.max = NAN;
    h.sum = 0;
    assert_int_equal(ww_hist_check_form(&h), 0);
    long n = pack(&h, b);
    assert_int_equal(b[1] & WW_HIST_PACK_F_FINITE, 0);
    ww_hist_init(&back, 0);
    const char *why;
    assert_int_equal(ww_hist_unpack(b, (size_t)n, &back, &why), 0);
    assert_same(&h, &back);
    assert_true(ww_hist_text_format(&h, txt, sizeof txt) > 0);
    assert_non_null(strstr(txt, "\"min\":null,\"max\":null"));
    assert_int_equal(ww_hist_text_parse(txt, &back, err, sizeof err), 0);
    assert_same(&h, &back);
    ww_hist_fini(&h);
    ww_hist_fini(&back);
}

static void test_text_known_output(void **state)
{
    (void)state;
    ww_hist_t h;
    ww_hist_init(&h, 6);
    ww_hist_record(&h, 0.0008);
    ww_hist_record(&h, 0.35);
    ww_hist_record(&h, 0.351);
    ww_hist_record(&h, 0.0);
    ww_hist_record(&h, 5000.0);
    char out[512];
    long n = ww_hist_text_format(&h, out, sizeof out);
    const char *want =
        "{\"scale\":6,\"count\":5,\"sum\":5000.7018,\"min\":0,\"max\":5000,\"zero\":1,"
        "\"underflow\":0,\"overflow\":1,\"buckets\":[[-659,1],[-97,2]]}";
    assert_string_equal(out, want);
    assert_int_equal(n, (long)strlen(want));
    /* snprintf's contract: the length it needs when it does not fit, truncated text. */
    char small[10];
    assert_int_equal(ww_hist_text_format(&h, small, sizeof small), n);
    assert_int_equal(strlen(small), 9);
    assert_int_equal(ww_hist_text_format(&h, NULL, 0), n);
    /* Empty: null min/max. */
    ww_hist_t e;
    ww_hist_init(&e, 3);
    ww_hist_text_format(&e, out, sizeof out);
    assert_string_equal(out, "{\"scale\":3,\"count\":0,\"sum\":0,\"min\":null,\"max\":null,"
                             "\"zero\":0,\"underflow\":0,\"overflow\":0,\"buckets\":[]}");
    ww_hist_fini(&e);
    ww_hist_fini(&h);
}

static void test_text_roundtrip_random(void **state)
{
    (void)state;
    uint64_t s = 31;
    static char txt[1 << 20];
    char err[256];
    for (int it = 0; it < 1500; it++) {
        ww_hist_t h, back;
        random_hist(&s, &h, it % 9);
        long n = ww_hist_text_format(&h, txt, sizeof txt);
        assert_true(n > 0 && (size_t)n < sizeof txt);
        ww_hist_init(&back, 0);
        int rc = ww_hist_text_parse(txt, &back, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "%s\n%s\n", txt, err);
        }
        assert_int_equal(rc, 0);
        assert_same(&h, &back);
        /* The packed forms agree too. */
        static uint8_t a[BUF], b[BUF];
        long na = pack(&h, a), nb = pack(&back, b);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, (size_t)na);
        ww_hist_fini(&h);
        ww_hist_fini(&back);
    }
}

static void test_text_parse_any_order_and_defaults(void **state)
{
    (void)state;
    char err[256];
    ww_hist_t h;
    ww_hist_init(&h, 0);
    const char *t = " {\n\t\"buckets\" : [ [ -97 , 2 ] ] , \"max\":0.351,\"count\" : 3,"
                    "\"min\": 0.35, \"zero\":1, \"sum\":0.701, \"scale\":6 }\r\n";
    assert_int_equal(ww_hist_text_parse(t, &h, err, sizeof err), 0);
    assert_int_equal(h.scale, 6);
    assert_true(h.count == 3 && h.zero_count == 1 && bucket_at(&h, -97) == 2);
    assert_true(h.min == 0.35 && h.max == 0.351 && h.sum == 0.701);
    assert_int_equal(
        ww_hist_text_parse("{\"scale\":2,\"count\":0,\"buckets\":[]}", &h, err, sizeof err), 0);
    assert_true(h.count == 0 && isnan(h.min) && h.sum == 0);
    ww_hist_fini(&h);
}

static void expect_text_reject(const char *t, const char *needle)
{
    char err[256] = "";
    ww_hist_t h;
    ww_hist_init(&h, 0);
    int rc = ww_hist_text_parse(t, &h, err, sizeof err);
    if (rc != -EINVAL || !strstr(err, needle)) {
        fprintf(stderr, "%s\n -> %d \"%s\", expected \"%s\"\n", t, rc, err, needle);
    }
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(err, needle));
    assert_true(h.count == 0 && h.len == 0 && isnan(h.min));
    ww_hist_fini(&h);
}

static void test_text_rejects(void **state)
{
    (void)state;
#define H "\"scale\":6,\"count\":3,\"min\":0.35,\"max\":0.351,\"sum\":0.701,"
    expect_text_reject("{" H "\"buckets\":[[-97,2],[-97,1]]}",
                       "\"buckets\"[1]: index -97 not above the previous -97");
    expect_text_reject("{" H "\"buckets\":[[-97,3],[-98,0]]}", "\"buckets\"[1]: index -98");
    expect_text_reject("{" H "\"buckets\":[[-97,3],[-90,0]]}", "\"buckets\"[1]: count 0");
    expect_text_reject("{" H "\"buckets\":[[-97,3]],\"foo\":1}", "unknown key \"foo\"");
    expect_text_reject("{" H "\"buckets\":[[-97,3]],\"count\":3}", "key \"count\" repeated");
    expect_text_reject("{\"scale\":6,\"count\":3.0,\"buckets\":[]}",
                       "\"count\": expected an integer at byte 19, not a fraction");
    expect_text_reject("{\"scale\":6,\"count\":1e2,\"buckets\":[]}", "not a fraction or exponent");
    expect_text_reject("{\"scale\":6,\"count\":0}", "missing \"buckets\"");
    expect_text_reject("{\"count\":0,\"buckets\":[]}", "missing \"scale\"");
    expect_text_reject("{\"scale\":0,\"count\":9223372036854775807,\"zero\":9223372036854775807,"
                       "\"underflow\":9223372036854775807,\"overflow\":9223372036854775807,"
                       "\"buckets\":[]}",
                       "pass 2^64");
    expect_text_reject("{\"scale\":9,\"count\":0,\"buckets\":[]}", "\"scale\": 9 out of range");
    expect_text_reject("{\"scale\":6,\"count\":-1,\"buckets\":[]}", "\"count\": -1 out of range");
    expect_text_reject("{\"scale\":6,\"count\":9223372036854775808,\"buckets\":[]}",
                       "out of range");
    expect_text_reject("{" H "\"buckets\":[[-97,2]]}", "\"count\" 3 is not zero + underflow");
    expect_text_reject("{\"scale\":6,\"count\":1,\"min\":1e999,\"max\":1,\"buckets\":[[0,1]]}",
                       "\"min\": 1e999 is not a finite double");
    expect_text_reject("{\"scale\":6,\"count\":1,\"min\":2,\"max\":1,\"buckets\":[[0,1]]}",
                       "\"min\" above \"max\"");
    expect_text_reject("{\"scale\":6,\"count\":1,\"min\":1,\"buckets\":[[0,1]]}",
                       "must both be numbers or both null");
    expect_text_reject("{\"scale\":6,\"count\":1,\"sum\":1,\"buckets\":[[0,1]]}",
                       "\"sum\" not 0 with no finite value");
    expect_text_reject("{\"scale\":0,\"count\":1,\"min\":1,\"max\":1,\"buckets\":[[12,1]]}",
                       "out of range");
    expect_text_reject("{" H "\"buckets\":[[-97,3]]} x", "text after the object at byte");
    expect_text_reject("{" H "\"buckets\":[[-97,3]]", "expected ',' or '}'");
    expect_text_reject("[]", "histogram: expected '{' at byte 0");
    expect_text_reject("{}", "empty object");
    expect_text_reject("{" H "\"buckets\":[[-97,3]],}", "expected a key");
    expect_text_reject("{\"scale\":6,\"count\":0,\"sum\":NaN,\"buckets\":[]}",
                       "\"sum\": expected a number");
#undef H
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_roundtrip_random),
        cmocka_unit_test(test_pack_special_shapes),
        cmocka_unit_test(test_pack_equal_bytes_any_order),
        cmocka_unit_test(test_unpack_rejects),
        cmocka_unit_test(test_merge_packed_equals_merge),
        cmocka_unit_test(test_merge_packed_unchanged_on_error),
        cmocka_unit_test(test_unknown_min_max_kept),
        cmocka_unit_test(test_text_known_output),
        cmocka_unit_test(test_text_roundtrip_random),
        cmocka_unit_test(test_text_parse_any_order_and_defaults),
        cmocka_unit_test(test_text_rejects),
    };
    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
