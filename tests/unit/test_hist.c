/* Unit tests of ww_hist (the log-bucketed latency histogram) and its wire form: bucket
 * boundaries at every scale, quantile error bounds on realistic distributions, merge and
 * downscale against recording the union, special values, and validation of bad input. */
#include "ww_hist.h"
#include "ww_hist_wire.h"
#include "ww_test.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_VALUES 100000
#define PI 3.14159265358979323846

static double rng_normal(uint64_t *s)
{
    double u = ww_test_rng_unit(s), v = ww_test_rng_unit(s);
    return sqrt(-2.0 * log(u)) * cos(2.0 * PI * v);
}

static double rng_lognormal(uint64_t *s, double median, double sigma)
{
    return median * exp(sigma * rng_normal(s));
}

/* True when a and b hold the same buckets (whatever their offsets and lengths) and the
 * same counters, min and max; sum within a relative rounding tolerance. */
static void assert_hist_equal(const ww_hist_t *a, const ww_hist_t *b, double sum_tol)
{
    assert_int_equal(a->scale, b->scale);
    assert_true(a->count == b->count);
    assert_true(a->zero_count == b->zero_count);
    assert_true(a->underflow == b->underflow);
    assert_true(a->overflow == b->overflow);
    assert_true((isnan(a->min) && isnan(b->min)) || a->min == b->min);
    assert_true((isnan(a->max) && isnan(b->max)) || a->max == b->max);
    assert_true(fabs(a->sum - b->sum) <= sum_tol * fmax(1.0, fabs(a->sum)));
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    const ww_hist_t *hs[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        if (hs[k]->len > 0) {
            lo = hs[k]->offset < lo ? hs[k]->offset : lo;
            int64_t top = (int64_t)hs[k]->offset + hs[k]->len - 1;
            hi = top > hi ? top : hi;
        }
    }
    for (int64_t i = lo; i <= hi; i++) {
        uint64_t c[2] = {0, 0};
        for (int k = 0; k < 2; k++) {
            int64_t r = i - hs[k]->offset;
            if (r >= 0 && r < (int64_t)hs[k]->len) {
                c[k] = hs[k]->counts[r];
            }
        }
        if (c[0] != c[1]) {
            fail_msg("bucket %lld: %llu != %llu", (long long)i, (unsigned long long)c[0],
                     (unsigned long long)c[1]);
        }
    }
    assert_int_equal(ww_hist_nonempty(a), ww_hist_nonempty(b));
}

/* ---- bucket index ---- */

static void test_index_powers_of_base_go_below(void **state)
{
    for (int s = 0; s <= WW_HIST_MAX_SCALE; s++) {
        int32_t per = 1 << s;
        assert_int_equal(ww_hist_index(1.0, s), -1);
        assert_int_equal(ww_hist_index(2.0, s), per - 1);
        assert_int_equal(ww_hist_index(0.5, s), -per - 1);
        assert_int_equal(ww_hist_index(WW_HIST_MAX, s), WW_HIST_MAX_LOG2 * per - 1);
        assert_int_equal(ww_hist_index(nextafter(WW_HIST_MIN, 1.0), s), WW_HIST_MIN_LOG2 * per);
        assert_int_equal(ww_hist_index(nextafter(1.0, 2.0), s), 0);
        assert_int_equal(ww_hist_index(nextafter(1.0, 0.0), s), -1);
        /* Every bucket boundary (as the double the histogram uses) belongs to the bucket
         * below; the next double up to the bucket above. */
        for (int32_t i = WW_HIST_MIN_LOG2 * per + 1; i <= WW_HIST_MAX_LOG2 * per - 1; i++) {
            double b = ww_hist_lower(i, s);
            assert_true(ww_hist_upper(i - 1, s) == b);
            assert_int_equal(ww_hist_index(b, s), i - 1);
            assert_int_equal(ww_hist_index(nextafter(b, INFINITY), s), i);
        }
    }
    /* The boundaries are 2^(i/2^s) to within an ulp or two. */
    assert_true(ww_hist_lower(64, 6) == 2.0);
    assert_true(fabs(ww_hist_lower(1, 6) / exp2(1.0 / 64) - 1) < 4 * DBL_EPSILON);
    assert_true(fabs(ww_hist_lower(-3, 8) / exp2(-3.0 / 256) - 1) < 4 * DBL_EPSILON);
}

static void test_index_brackets_random_values_every_scale(void **state)
{
    uint64_t rng = 42;
    for (int n = 0; n < 200000; n++) {
        /* log-uniform over the whole range, plus raw random mantissas */
        double v =
            exp2(WW_HIST_MIN_LOG2 + ww_test_rng_unit(&rng) * (WW_HIST_MAX_LOG2 - WW_HIST_MIN_LOG2));
        if (n & 1) {
            v = ldexp(1.0 + (double)(ww_test_rng_next(&rng) >> 12) * 0x1p-52,
                      (int)(ww_test_rng_next(&rng) % 32) - 20);
        }
        if (!(v > WW_HIST_MIN && v <= WW_HIST_MAX)) {
            continue;
        }
        for (int s = 0; s <= WW_HIST_MAX_SCALE; s++) {
            int32_t i = ww_hist_index(v, s);
            double lo = ww_hist_lower(i, s), hi = ww_hist_upper(i, s);
            if (!(lo < v && v <= hi)) {
                fail_msg("scale %d: %.17g in bucket %d = (%.17g, %.17g]", s, v, i, lo, hi);
            }
            /* The log-based definition agrees except within 1e-12 of a boundary. */
            double x = log2(v) * (double)(1 << s);
            int32_t ref = (int32_t)ceil(x) - 1;
            if (ref != i) {
                assert_true(fabs(x - nearbyint(x)) < 1e-9);
            }
        }
    }
}

static void test_downscale_equals_recording_coarser(void **state)
{
    uint64_t rng = 7;
    double *v = malloc(20000 * sizeof *v);
    assert_non_null(v);
    for (int k = 0; k < 20000; k++) {
        v[k] = exp2(-19.5 + ww_test_rng_unit(&rng) * 31);
        if (k % 97 == 0) {
            v[k] = ldexp(1.0, (int)(ww_test_rng_next(&rng) % 30) - 19); /* exact powers of two */
        }
    }
    for (int to = WW_HIST_MAX_SCALE; to >= 0; to--) {
        ww_hist_t fine, coarse;
        ww_hist_init(&fine, WW_HIST_MAX_SCALE);
        ww_hist_init(&coarse, to);
        for (int k = 0; k < 20000; k++) {
            assert_int_equal(ww_hist_record(&fine, v[k]), 0);
            assert_int_equal(ww_hist_record(&coarse, v[k]), 0);
        }
        assert_int_equal(ww_hist_downscale(&fine, to), 0);
        assert_int_equal(ww_hist_check(&fine), 0);
        assert_hist_equal(&fine, &coarse, 0);
        if (to > 0) {
            assert_int_equal(ww_hist_downscale(&coarse, to + 1), -EINVAL); /* finer: refused */
        }
        ww_hist_fini(&fine);
        ww_hist_fini(&coarse);
    }
    free(v);
}

/* ---- quantiles ---- */

typedef double (*gen_fn)(uint64_t *rng);

static double gen_lognormal_ttft(uint64_t *rng)
{
    return rng_lognormal(rng, 0.2, 0.7);
}

static double gen_bimodal_tpot(uint64_t *rng)
{
    return ww_test_rng_unit(rng) < 0.8 ? rng_lognormal(rng, 0.0007, 0.15)
                                       : rng_lognormal(rng, 0.02, 0.3);
}

static double gen_loguniform_6_decades(uint64_t *rng)
{
    return pow(10.0, -6.0 + 6.0 * ww_test_rng_unit(rng));
}

static double gen_point_half(uint64_t *rng)
{
    return 0.5; /* exactly on a bucket boundary */
}

static double gen_point_tpot(uint64_t *rng)
{
    return 0.0007;
}

/* Records N_VALUES values at scale s and checks p50, p90, p99, p99.9 against the exact
 * nearest-rank quantile of the same values: within (b-1)/(b+1) (<= 0.542% at scale 6: 0.5415%). */
static void check_quantiles(gen_fn gen, uint64_t seed, int s)
{
    double *v = malloc(N_VALUES * sizeof *v);
    assert_non_null(v);
    uint64_t rng = seed;
    ww_hist_t h;
    ww_hist_init(&h, s);
    for (int k = 0; k < N_VALUES; k++) {
        v[k] = gen(&rng);
        assert_true(v[k] > WW_HIST_MIN && v[k] <= WW_HIST_MAX);
        assert_int_equal(ww_hist_record(&h, v[k]), 0);
    }
    assert_int_equal(ww_hist_check(&h), 0);
    assert_true(h.count == N_VALUES);
    qsort(v, N_VALUES, sizeof *v, ww_test_cmp_double);
    double b = exp2(exp2(-s));
    double bound = (b - 1) / (b + 1) * (1 + 1e-9);
    assert_true(s < 6 || bound < 0.01);
    const double qs[] = {0.5, 0.9, 0.99, 0.999, 0.0, 1.0, 0.25};
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        double r = ceil(qs[k] * N_VALUES);
        size_t rank = r < 1 ? 1 : (size_t)r;
        double exact = v[rank - 1];
        double est = ww_hist_quantile(&h, qs[k]);
        double err = fabs(est - exact) / exact;
        if (!(err <= bound)) {
            fail_msg("scale %d q=%g: estimate %.9g vs exact %.9g: error %.3g%% > %.3g%%", s, qs[k],
                     est, exact, err * 100, bound * 100);
        }
    }
    assert_true(ww_hist_quantile(&h, 0.0) >= v[0]);
    assert_true(ww_hist_quantile(&h, 1.0) <= v[N_VALUES - 1]);
    assert_true(h.min == v[0] && h.max == v[N_VALUES - 1]);
    ww_hist_fini(&h);
    free(v);
}

static void test_quantile_lognormal_ttft(void **state)
{
    check_quantiles(gen_lognormal_ttft, 1, WW_HIST_DEFAULT_SCALE);
    for (int s = 0; s <= WW_HIST_MAX_SCALE; s++) {
        check_quantiles(gen_lognormal_ttft, 100 + (uint64_t)s, s);
    }
}

static void test_quantile_bimodal_tpot(void **state)
{
    check_quantiles(gen_bimodal_tpot, 2, WW_HIST_DEFAULT_SCALE);
    check_quantiles(gen_bimodal_tpot, 3, WW_HIST_MAX_SCALE);
}

static void test_quantile_loguniform_six_decades(void **state)
{
    check_quantiles(gen_loguniform_6_decades, 4, WW_HIST_DEFAULT_SCALE);
    check_quantiles(gen_loguniform_6_decades, 5, 3);
}

static void test_quantile_point_mass(void **state)
{
    check_quantiles(gen_point_half, 6, WW_HIST_DEFAULT_SCALE);
    check_quantiles(gen_point_tpot, 6, WW_HIST_DEFAULT_SCALE);
    /* min = max clamps the estimate to the value itself. */
    ww_hist_t h;
    ww_hist_init(&h, WW_HIST_DEFAULT_SCALE);
    for (int k = 0; k < 1000; k++) {
        ww_hist_record(&h, 0.5);
    }
    assert_int_equal(ww_hist_nonempty(&h), 1);
    assert_int_equal(ww_hist_index(0.5, 6), -65);
    assert_true(h.len > 0 && h.counts[-65 - h.offset] == 1000);
    assert_true(ww_hist_quantile(&h, 0.5) == 0.5);
    assert_true(ww_hist_quantile(&h, 0.999) == 0.5);
    ww_hist_fini(&h);
}

static void test_quantile_special_ranks(void **state)
{
    ww_hist_t h;
    ww_hist_init(&h, WW_HIST_DEFAULT_SCALE);
    assert_true(isnan(ww_hist_quantile(&h, 0.5))); /* empty */
    /* 10 zeros, 10 underflows, 60 in buckets, 20 overflows: ranks 1..10, 11..20, ... */
    for (int k = 0; k < 10; k++) {
        ww_hist_record(&h, 0.0);
        ww_hist_record(&h, 1e-7);
    }
    for (int k = 0; k < 60; k++) {
        ww_hist_record(&h, 0.010);
    }
    for (int k = 0; k < 20; k++) {
        ww_hist_record(&h, INFINITY);
    }
    assert_true(ww_hist_quantile(&h, 0.05) == 0.0);
    assert_true(ww_hist_quantile(&h, 0.0) == 0.0);
    assert_true(ww_hist_quantile(&h, 0.15) == WW_HIST_MIN);
    /* in the bucket of 0.010: its harmonic-mean point, clamped to max = 0.010 */
    double q50 = ww_hist_quantile(&h, 0.5);
    assert_true(q50 <= 0.010 && fabs(q50 - 0.010) / 0.010 < 0.0055);
    assert_true(ww_hist_quantile(&h, 0.8) == q50);
    assert_true(isinf(ww_hist_quantile(&h, 0.81))); /* overflow holds only +inf */
    assert_true(isinf(ww_hist_quantile(&h, 2.0)));  /* q clamped to 1 */
    assert_true(ww_hist_quantile(&h, -1.0) == 0.0); /* q clamped to 0 */
    assert_true(isnan(ww_hist_quantile(&h, NAN)));
    ww_hist_record(&h, 9000.0); /* a finite overflow: reported as max */
    assert_true(ww_hist_quantile(&h, 1.0) == 9000.0);
    assert_int_equal(ww_hist_check(&h), 0);
    ww_hist_fini(&h);
}

/* ---- merge ---- */

static void fill(ww_hist_t *h, ww_hist_t *uni, uint64_t *rng, int n, double median, double sigma)
{
    for (int k = 0; k < n; k++) {
        double v = rng_lognormal(rng, median, sigma);
        assert_int_equal(ww_hist_record(h, v), 0);
        assert_int_equal(ww_hist_record(uni, v), 0);
    }
}

static void test_merge_equals_union_same_scale(void **state)
{
    uint64_t rng = 11;
    ww_hist_t a, b, u;
    ww_hist_init(&a, 6);
    ww_hist_init(&b, 6);
    ww_hist_init(&u, 6);
    fill(&a, &u, &rng, 5000, 0.0007, 0.2); /* TPOT range */
    fill(&b, &u, &rng, 3000, 2.0, 0.5);    /* far away: different offsets, a gap between */
    const double specials[] = {0.0, -1.0, 1e-8, INFINITY, NAN, 1e5};
    for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++) {
        ww_hist_record(k % 2 ? &a : &b, specials[k]);
        ww_hist_record(&u, specials[k]);
    }
    assert_int_equal(ww_hist_merge(&a, &b), 0);
    assert_int_equal(ww_hist_check(&a), 0);
    assert_hist_equal(&a, &u, 1e-12);
    /* b into an empty histogram, and b below/above a's range in the other order */
    ww_hist_t e;
    ww_hist_init(&e, 6);
    assert_int_equal(ww_hist_merge(&e, &b), 0);
    assert_hist_equal(&e, &b, 0);
    ww_hist_t empty;
    ww_hist_init(&empty, 6);
    assert_int_equal(ww_hist_merge(&e, &empty), 0); /* merging nothing changes nothing */
    assert_hist_equal(&e, &b, 0);
    ww_hist_fini(&a);
    ww_hist_fini(&b);
    ww_hist_fini(&u);
    ww_hist_fini(&e);
}

static void test_merge_different_scales_equals_coarser_union(void **state)
{
    for (int fine_into_coarse = 0; fine_into_coarse < 2; fine_into_coarse++) {
        uint64_t rng = 21 + (uint64_t)fine_into_coarse;
        ww_hist_t a, b, u;
        ww_hist_init(&a, fine_into_coarse ? 4 : 8); /* dst */
        ww_hist_init(&b, fine_into_coarse ? 8 : 4); /* src */
        ww_hist_init(&u, 4);
        fill(&a, &u, &rng, 4000, 0.2, 0.9);
        fill(&b, &u, &rng, 4000, 0.01, 1.5);
        ww_hist_record(&a, 0.0);
        ww_hist_record(&u, 0.0);
        assert_int_equal(ww_hist_merge(&a, &b), 0);
        assert_int_equal(a.scale, 4);
        assert_int_equal(ww_hist_check(&a), 0);
        assert_hist_equal(&a, &u, 1e-12);
        ww_hist_fini(&a);
        ww_hist_fini(&b);
        ww_hist_fini(&u);
    }
}

static void test_merge_self_doubles(void **state)
{
    uint64_t rng = 5;
    ww_hist_t a, twice;
    ww_hist_init(&a, 6);
    ww_hist_init(&twice, 6);
    for (int k = 0; k < 1000; k++) {
        double v = rng_lognormal(&rng, 0.05, 1.0);
        ww_hist_record(&a, v);
        ww_hist_record(&twice, v);
        ww_hist_record(&twice, v);
    }
    assert_int_equal(ww_hist_merge(&a, &a), 0);
    assert_int_equal(ww_hist_check(&a), 0);
    assert_hist_equal(&a, &twice, 1e-12);
    ww_hist_fini(&a);
    ww_hist_fini(&twice);
}

/* ---- special values ---- */

static void test_special_values_counted_never_lost(void **state)
{
    ww_hist_t h;
    ww_hist_init(&h, WW_HIST_DEFAULT_SCALE);
    assert_int_equal(ww_hist_check(&h), 0);
    assert_true(isnan(h.min) && isnan(h.max) && h.sum == 0);
    const double zeros[] = {0.0, -0.0, -1e-3, -INFINITY};
    const double unders[] = {1e-300, DBL_MIN / 4 /* subnormal */, 1e-9, WW_HIST_MIN};
    const double overs[] = {INFINITY, NAN, nextafter(WW_HIST_MAX, INFINITY), 1e300};
    const double ins[] = {nextafter(WW_HIST_MIN, 1), WW_HIST_MAX, 1.0, 0.0007};
    for (int k = 0; k < 4; k++) {
        assert_int_equal(ww_hist_record(&h, zeros[k]), 0);
        assert_int_equal(ww_hist_record(&h, unders[k]), 0);
        assert_int_equal(ww_hist_record(&h, overs[k]), 0);
        assert_int_equal(ww_hist_record(&h, ins[k]), 0);
    }
    assert_true(h.count == 16);
    assert_true(h.zero_count == 4);
    assert_true(h.underflow == 4);
    assert_true(h.overflow == 4);
    size_t nb = 0;
    for (uint32_t j = 0; j < h.len; j++) {
        nb += h.counts[j];
    }
    assert_int_equal(nb, 4);
    assert_int_equal(ww_hist_nonempty(&h), 4);
    /* min/max over finite values (negatives included), sum always finite */
    assert_true(h.min == -1e-3);
    assert_true(h.max == 1e300);
    assert_true(isfinite(h.sum));
    assert_int_equal(ww_hist_check(&h), 0);
    /* sum saturates rather than becoming infinite */
    ww_hist_record(&h, DBL_MAX);
    ww_hist_record(&h, DBL_MAX);
    assert_true(h.sum == DBL_MAX);
    assert_int_equal(ww_hist_check(&h), 0);

    /* Only non-finite values: min/max stay NaN, sum 0. */
    ww_hist_t g;
    ww_hist_init(&g, 3);
    ww_hist_record(&g, NAN);
    ww_hist_record(&g, -INFINITY);
    ww_hist_record(&g, INFINITY);
    assert_true(g.count == 3 && g.overflow == 2 && g.zero_count == 1);
    assert_true(isnan(g.min) && isnan(g.max) && g.sum == 0);
    assert_int_equal(ww_hist_check(&g), 0);
    ww_hist_fini(&g);
    ww_hist_fini(&h);
}

static void test_range_growth_both_ways(void **state)
{
    for (int s = 0; s <= WW_HIST_MAX_SCALE; s++) {
        ww_hist_t h;
        ww_hist_init(&h, s);
        int32_t imin = WW_HIST_MIN_LOG2 * (1 << s), imax = WW_HIST_MAX_LOG2 * (1 << s) - 1;
        /* one value per bucket, from the middle down to the bottom then up to the top */
        int32_t mid = (imin + imax) / 2;
        for (int32_t i = mid; i >= imin; i--) {
            assert_int_equal(ww_hist_record(&h, ww_hist_upper(i, s)), 0);
        }
        for (int32_t i = mid + 1; i <= imax; i++) {
            assert_int_equal(ww_hist_record(&h, ww_hist_upper(i, s)), 0);
        }
        assert_int_equal(ww_hist_check(&h), 0);
        assert_true(h.offset == imin && h.len == (uint32_t)(imax - imin + 1));
        assert_true(h.cap <= (uint32_t)(imax - imin + 1));
        for (uint32_t j = 0; j < h.len; j++) {
            assert_true(h.counts[j] == 1);
        }
        assert_true(h.overflow == 0 && h.underflow == 0);
        ww_hist_fini(&h);
    }
}

static void test_reset_keeps_allocation_fini_twice(void **state)
{
    ww_hist_t h;
    ww_hist_init(&h, WW_HIST_DEFAULT_SCALE);
    ww_hist_fini(&h); /* fini of a never-used histogram */
    uint64_t rng = 3;
    for (int k = 0; k < 1000; k++) {
        ww_hist_record(&h, rng_lognormal(&rng, 0.2, 0.5));
    }
    uint64_t *counts = h.counts;
    uint32_t cap = h.cap;
    ww_hist_reset(&h);
    assert_true(h.counts == counts && h.cap == cap);
    assert_true(h.count == 0 && h.sum == 0 && h.zero_count == 0 && h.underflow == 0 &&
                h.overflow == 0);
    assert_true(isnan(h.min) && isnan(h.max));
    assert_int_equal(ww_hist_nonempty(&h), 0);
    assert_int_equal(ww_hist_check(&h), 0);
    assert_true(isnan(ww_hist_quantile(&h, 0.5)));
    /* the next window reuses the range without reallocating */
    rng = 3;
    for (int k = 0; k < 1000; k++) {
        ww_hist_record(&h, rng_lognormal(&rng, 0.2, 0.5));
    }
    assert_true(h.counts == counts);
    assert_true(h.count == 1000);
    ww_hist_fini(&h);
    assert_null(h.counts);
    assert_true(h.count == 0 && h.len == 0 && h.cap == 0);
    assert_int_equal(h.scale, WW_HIST_DEFAULT_SCALE);
    ww_hist_fini(&h);                             /* twice is safe */
    assert_int_equal(ww_hist_record(&h, 0.3), 0); /* and reusable */
    assert_int_equal(ww_hist_check(&h), 0);
    ww_hist_fini(&h);
}

static void test_check_detects_inconsistency(void **state)
{
    ww_hist_t h;
    ww_hist_init(&h, 6);
    for (int k = 1; k <= 100; k++) {
        ww_hist_record(&h, 0.001 * k);
    }
    assert_int_equal(ww_hist_check(&h), 0);
    ww_hist_t bad = h;
    bad.count++;
    assert_int_equal(ww_hist_check(&bad), -EINVAL);
    bad = h;
    bad.min = NAN;
    assert_int_equal(ww_hist_check(&bad), -EINVAL);
    bad = h;
    bad.min = bad.max + 1;
    assert_int_equal(ww_hist_check(&bad), -EINVAL);
    bad = h;
    bad.max = 1.0; /* above the last bucket with no overflow */
    assert_int_equal(ww_hist_check(&bad), -EINVAL);
    bad = h;
    bad.sum = INFINITY;
    assert_int_equal(ww_hist_check(&bad), -EINVAL);
    bad = h;
    bad.scale = 9;
    assert_int_equal(ww_hist_check(&bad), -EINVAL);
    bad = h;
    bad.len = bad.cap + 1;
    assert_int_equal(ww_hist_check(&bad), -EINVAL);
    ww_hist_fini(&h);
}

/* ---- wire ---- */

typedef struct {
    int32_t idx[WW_HIST_WIRE_MAX_BUCKETS];
    uint64_t cnt[WW_HIST_WIRE_MAX_BUCKETS];
} scratch_t;

/* to_pb -> pack -> unpack -> from_pb; returns from_pb's result, *out filled. */
static int wire_roundtrip(const ww_hist_t *h, ww_hist_t *out, size_t *bytes, ww_wire_why_t *why)
{
    scratch_t *sc = malloc(sizeof *sc);
    assert_non_null(sc);
    Waferwatch__V1__Histogram pb;
    assert_int_equal(ww_hist_to_pb(h, &pb, sc->idx, sc->cnt, WW_HIST_WIRE_MAX_BUCKETS), 0);
    assert_int_equal(pb.n_index_delta, ww_hist_nonempty(h));
    size_t n = waferwatch__v1__histogram__get_packed_size(&pb);
    uint8_t *buf = malloc(n + 1);
    assert_non_null(buf);
    assert_int_equal(waferwatch__v1__histogram__pack(&pb, buf), n);
    Waferwatch__V1__Histogram *un = waferwatch__v1__histogram__unpack(NULL, n, buf);
    assert_non_null(un);
    int rc =
        ww_hist_from_pb(un, out, WW_HIST_WIRE_MAX_BUCKETS, why, "batch.latency_windows[0].ttft");
    waferwatch__v1__histogram__free_unpacked(un, NULL);
    free(buf);
    free(sc);
    if (bytes) {
        *bytes = n;
    }
    return rc;
}

static void test_wire_roundtrip_equals_original(void **state)
{
    uint64_t rng = 99;
    for (int round = 0; round < 40; round++) {
        int s = round % (WW_HIST_MAX_SCALE + 1);
        ww_hist_t h;
        ww_hist_init(&h, s);
        int n = (int)(ww_test_rng_next(&rng) % 3000);
        for (int k = 0; k < n; k++) {
            ww_hist_record(&h, rng_lognormal(&rng, 0.05, 1.5));
        }
        /* a mix of special counters, differing per round */
        static const double sp[] = {0.0, -2.0, 1e-9, 1e4, INFINITY, NAN, -INFINITY};
        for (int k = 0; k < 7; k++) {
            if (ww_test_rng_next(&rng) % 3 == 0) {
                ww_hist_record(&h, sp[k]);
            }
        }
        ww_hist_t out;
        ww_wire_why_t why = {0};
        int rc = wire_roundtrip(&h, &out, NULL, &why);
        if (rc != 0) {
            fail_msg("round %d: %s", round, why.msg);
        }
        assert_int_equal(ww_hist_check(&out), 0);
        assert_true(out.sum == h.sum);
        assert_hist_equal(&out, &h, 0);
        ww_hist_fini(&h);
        ww_hist_fini(&out);
    }
    /* Histograms with only non-finite or only zero values, or only a finite overflow. */
    const double only[][2] = {{0.0, 0.0}, {-INFINITY, NAN}, {INFINITY, INFINITY}, {5000, 6000}};
    for (int k = 0; k < 4; k++) {
        ww_hist_t h, out;
        ww_hist_init(&h, 6);
        ww_hist_record(&h, only[k][0]);
        ww_hist_record(&h, only[k][1]);
        ww_wire_why_t why = {0};
        if (wire_roundtrip(&h, &out, NULL, &why) != 0) {
            fail_msg("only {%g, %g}: %s", only[k][0], only[k][1], why.msg);
        }
        assert_hist_equal(&out, &h, 0);
        ww_hist_fini(&h);
        ww_hist_fini(&out);
    }
}

static void test_wire_empty_roundtrip(void **state)
{
    ww_hist_t h, out;
    ww_hist_init(&h, 6);
    ww_wire_why_t why = {0};
    size_t bytes = 0;
    assert_int_equal(wire_roundtrip(&h, &out, &bytes, &why), 0);
    assert_true(bytes <= 24);
    assert_hist_equal(&out, &h, 0);
    assert_null(out.counts);
    ww_hist_fini(&out);
    /* proto3 drops zero fields: an all-default message is an empty histogram too */
    Waferwatch__V1__Histogram pb = WAFERWATCH__V1__HISTOGRAM__INIT;
    assert_int_equal(ww_hist_from_pb(&pb, &out, 10, &why, "h"), 0);
    assert_true(out.count == 0 && isnan(out.min) && isnan(out.max));
    assert_int_equal(out.scale, 0);
    assert_int_equal(ww_hist_check(&out), 0);
    ww_hist_fini(&out);
    ww_hist_fini(&h);
}

static void test_wire_scratch_too_small(void **state)
{
    ww_hist_t h;
    ww_hist_init(&h, 6);
    for (int k = 1; k <= 10; k++) {
        ww_hist_record(&h, 0.1 * k);
    }
    int32_t idx[4];
    uint64_t cnt[4];
    Waferwatch__V1__Histogram pb;
    assert_int_equal(ww_hist_to_pb(&h, &pb, idx, cnt, 4), -ENOSPC);
    int32_t idx10[10];
    uint64_t cnt10[10];
    assert_int_equal(ww_hist_to_pb(&h, &pb, idx10, cnt10, 10), 0);
    assert_int_equal(pb.n_index_delta, 10);
    assert_int_equal(pb.index_delta[0], ww_hist_index(0.1, 6));
    for (size_t k = 1; k < 10; k++) {
        assert_true(pb.index_delta[k] >= 1);
    }
    ww_hist_fini(&h);
}

/* A valid pb with 8 buckets whose arrays the test may corrupt. */
typedef struct {
    ww_hist_t h;
    Waferwatch__V1__Histogram pb;
    int32_t idx[64];
    uint64_t cnt[64];
} bad_t;

static void bad_init(bad_t *b)
{
    ww_hist_init(&b->h, 6);
    for (int k = 0; k < 8; k++) {
        for (int r = 0; r <= k; r++) {
            ww_hist_record(&b->h, 0.01 * exp2(k * 0.1));
        }
    }
    assert_int_equal(ww_hist_to_pb(&b->h, &b->pb, b->idx, b->cnt, 64), 0);
    assert_int_equal(b->pb.n_index_delta, 8);
    ww_hist_fini(&b->h);
}

static void expect_reject(const bad_t *b, const char *field, size_t max_buckets)
{
    ww_hist_t out;
    ww_wire_why_t why = {0};
    int rc = ww_hist_from_pb(&b->pb, &out, max_buckets, &why, "batch.latency_windows[2].ttft");
    if (rc != -EINVAL) {
        fail_msg("expected a rejection naming %s, got %d (%s)", field, rc, why.msg);
    }
    char want[128];
    snprintf(want, sizeof want, "batch.latency_windows[2].ttft.%s", field);
    if (!strstr(why.msg, want)) {
        fail_msg("reason \"%s\" does not name %s", why.msg, want);
    }
    assert_true(out.count == 0 && out.counts == NULL && out.len == 0);
    ww_hist_fini(&out);
    ww_hist_fini(&out);
}

static void test_wire_rejects_malformed_with_field(void **state)
{
    bad_t b;
    bad_init(&b);
    ww_hist_t ok;
    ww_wire_why_t why;
    assert_int_equal(ww_hist_from_pb(&b.pb, &ok, 64, &why, "x"), 0);
    ww_hist_fini(&ok);

    b.pb.scale = 9;
    expect_reject(&b, "scale", 64);
    b.pb.scale = -1;
    expect_reject(&b, "scale", 64);
    bad_init(&b);
    b.pb.n_bucket_count = 7;
    expect_reject(&b, "index_delta", 64);
    bad_init(&b);
    expect_reject(&b, "index_delta", 7); /* more buckets than the limit */
    bad_init(&b);
    b.idx[5] = 0;
    expect_reject(&b, "index_delta[5]", 64);
    bad_init(&b);
    b.idx[5] = -3;
    expect_reject(&b, "index_delta[5]", 64);
    bad_init(&b);
    b.idx[0] = WW_HIST_MIN_LOG2 * 64 - 1; /* below the range */
    expect_reject(&b, "index_delta[0]", 64);
    bad_init(&b);
    b.idx[7] = INT32_MAX; /* beyond the range (no int overflow either) */
    expect_reject(&b, "index_delta[7]", 64);
    bad_init(&b);
    b.pb.scale = 0; /* index -420 is outside -20..11 at scale 0 */
    expect_reject(&b, "index_delta[0]", 64);
    bad_init(&b);
    b.cnt[3] = 0;
    expect_reject(&b, "bucket_count[3]", 64);
    bad_init(&b);
    b.cnt[0] = UINT64_MAX;
    expect_reject(&b, "bucket_count[1]", 64);
    bad_init(&b);
    b.pb.zero_count = UINT64_MAX;
    expect_reject(&b, "count", 64);
    bad_init(&b);
    b.pb.count++;
    expect_reject(&b, "count", 64);
    bad_init(&b);
    b.pb.sum = NAN;
    expect_reject(&b, "sum", 64);
    bad_init(&b);
    b.pb.sum = INFINITY;
    expect_reject(&b, "sum", 64);
    bad_init(&b);
    b.pb.min = NAN;
    expect_reject(&b, "min", 64);
    bad_init(&b);
    b.pb.min = NAN;
    b.pb.max = NAN;
    expect_reject(&b, "min", 64);
    bad_init(&b);
    b.pb.max = INFINITY;
    expect_reject(&b, "min/max", 64);
    bad_init(&b);
    b.pb.min = b.pb.max * 1.01;
    expect_reject(&b, "min", 64);
    bad_init(&b);
    b.pb.min = -0.5; /* negative without zero_count */
    expect_reject(&b, "min", 64);
    bad_init(&b);
    b.pb.min = 0.001; /* below the first bucket */
    expect_reject(&b, "min", 64);
    bad_init(&b);
    b.pb.max = 1.0; /* above the last bucket, no overflow */
    expect_reject(&b, "max", 64);
    bad_init(&b);
    b.pb.max = b.pb.min; /* below the last bucket */
    expect_reject(&b, "max", 64);

    /* an empty histogram claiming finite values, or a sum */
    Waferwatch__V1__Histogram e = WAFERWATCH__V1__HISTOGRAM__INIT;
    b.pb = e;
    b.pb.min = 1.0;
    b.pb.max = 1.0;
    expect_reject(&b, "min/max", 64);
    b.pb = e;
    b.pb.min = NAN;
    b.pb.max = NAN;
    b.pb.sum = 3.0;
    expect_reject(&b, "sum", 64);
    /* only underflow: max must be <= WW_HIST_MIN */
    b.pb = e;
    b.pb.count = b.pb.underflow = 2;
    b.pb.min = 1e-9;
    b.pb.max = 1e-3;
    expect_reject(&b, "max", 64);
    /* why may be NULL */
    ww_hist_t out;
    assert_int_equal(ww_hist_from_pb(&b.pb, &out, 64, NULL, NULL), -EINVAL);
    ww_hist_fini(&out);
}

/* Found by fuzz_hist: max a rounding step below its bucket and a value in underflow made
 * quantile(0.5) (underflow: 2^-20) larger than quantile(1) (the bucket, clamped to max). */
static void test_quantile_monotone_when_max_below_bucket(void **state)
{
    static const uint8_t msg[] = {0x10, 0x02, 0x21, 0x48, 0xaf, 0xbc, 0x9a, 0xf2, 0xd7, 0x7a,
                                  0x3e, 0x29, 0x90, 0x41, 0xf2, 0xff, 0xff, 0xff, 0xaf, 0x3e,
                                  0x38, 0x01, 0x4a, 0x01, 0x27, 0x52, 0x01, 0x01};
    Waferwatch__V1__Histogram *pb = waferwatch__v1__histogram__unpack(NULL, sizeof msg, msg);
    assert_non_null(pb);
    ww_hist_t hist;
    ww_wire_why_t why;
    assert_int_equal(ww_hist_from_pb(pb, &hist, 8192, &why, "h"), 0);
    double prev = -INFINITY;
    for (int k = 0; k <= 64; k++) {
        double v = ww_hist_quantile(&hist, k / 64.0);
        assert_false(isnan(v));
        assert_true(v >= prev);
        prev = v;
    }
    assert_true(ww_hist_quantile(&hist, 0.5) <= hist.max);
    ww_hist_fini(&hist);
    waferwatch__v1__histogram__free_unpacked(pb, NULL);
}

/* ---- issue 14: exact nearest rank, checked merges, storable sums ---- */

/* The rank of ww_hist_quantile is the exact ceil(q * count) of q as PostgreSQL's float8 ->
 * numeric cast reads it (15 significant digits): for q = k/1000 that is k/1000 exactly, so
 * the rank is the smallest r >= 1 with r * 1000 >= k * count. In double, ceil(0.07 * 100)
 * is 8 (0.07 is a little above 7/100 in binary): 1,407 such pairs below. */
static void test_rank_exact_for_decimal_q(void **state)
{
    for (uint64_t k = 1; k <= 1000; k++) {
        double q = (double)k / 1000.0;
        for (uint64_t n = 1; n <= 1000; n++) {
            uint64_t want = (k * n + 999) / 1000;
            want = want < 1 ? 1 : want;
            uint64_t got = ww_hist_rank(q, n);
            if (got != want) {
                fail_msg("ww_hist_rank(%g, %llu) = %llu, want %llu", q, (unsigned long long)n,
                         (unsigned long long)got, (unsigned long long)want);
            }
        }
    }
    assert_true(ww_hist_rank(0.0, 10) == 1);
    assert_true(ww_hist_rank(-1.0, 10) == 1);
    assert_true(ww_hist_rank(1.0, 10) == 10);
    assert_true(ww_hist_rank(2.0, 10) == 10);
    assert_true(ww_hist_rank(0.5, 0) == 0);
    assert_true(ww_hist_rank(NAN, 10) == 0);
    assert_true(ww_hist_rank(1e-300, UINT64_MAX) == 1);               /* 10^k past 128 bits */
    assert_true(ww_hist_rank(0.5, UINT64_MAX) == UINT64_MAX / 2 + 1); /* no overflow */
    assert_true(ww_hist_rank(0.999999999999999, UINT64_MAX) == UINT64_MAX - 18446);
    /* 17 significant digits of q are cut to 15, as PostgreSQL does. */
    assert_true(ww_hist_rank(0.99999999999999989, 1000) == 1000);
}

static void test_quantile_rank_of_hundred_values(void **state)
{
    ww_hist_t h;
    ww_hist_init(&h, WW_HIST_DEFAULT_SCALE);
    for (int v = 1; v <= 100; v++) {
        assert_int_equal(ww_hist_record(&h, v / 1000.0), 0);
    }
    static const double qs[] = {0.07, 0.14, 0.28, 0.56, 0.5, 0.99};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        double want = qs[i] * 100 / 1000.0; /* the value of rank q * 100 */
        double got = ww_hist_quantile(&h, qs[i]);
        if (fabs(got - want) > want * 0.00542) {
            fail_msg("q=%g: %.6f ms, want %.6f ms within 0.542%%", qs[i], got * 1e3, want * 1e3);
        }
    }
    ww_hist_fini(&h);
}

/* A merge whose counts would pass 2^64 - 1 fails with -EOVERFLOW and leaves dst as it
 * was, for every counter (a bucket, zero_count, underflow, overflow). */
static void test_merge_refuses_overflow(void **state)
{
    static const double vals[] = {0.01, 0.0, 1e-9, 1e9};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        ww_hist_t a, b, before;
        ww_hist_init(&a, 6);
        ww_hist_init(&b, 4);
        ww_hist_record(&a, 0.5);
        ww_hist_record(&a, vals[i]);
        ww_hist_record(&b, vals[i]);
        /* b holds UINT64_MAX - 1 of vals[i]: consistent, only the sum passes 64 bits. */
        uint64_t *c = vals[i] == 0.0   ? &b.zero_count
                      : vals[i] < 1e-6 ? &b.underflow
                      : vals[i] > 4096 ? &b.overflow
                                       : &b.counts[ww_hist_index(vals[i], 4) - b.offset];
        *c = UINT64_MAX - 1;
        b.count = UINT64_MAX - 1;
        assert_int_equal(ww_hist_check(&b), 0);
        ww_hist_init(&before, 6);
        assert_int_equal(ww_hist_merge(&before, &a), 0);
        assert_int_equal(ww_hist_merge(&a, &b), -EOVERFLOW);
        assert_hist_equal(&a, &before, 0);
        assert_int_equal(a.scale, 6);
        assert_int_equal(ww_hist_merge(&b, &b), -EOVERFLOW);
        assert_int_equal(ww_hist_check(&b), 0);
        ww_hist_fini(&a);
        ww_hist_fini(&b);
        ww_hist_fini(&before);
    }
}

/* Sums that merges could push past DBL_MAX (and SQL float8 addition then refuses) and
 * values no clock can produce are refused on the wire: |min|, |max| <= 2^40 s and
 * |sum| <= count * 2^40 s. */
static void test_wire_rejects_unstorable_sum(void **state)
{
    bad_t b;
    bad_init(&b);
    b.pb.sum = 1e300;
    expect_reject(&b, "sum", 64);
    bad_init(&b);
    b.pb.sum = -(double)b.pb.count * 0x1p40 * 1.5;
    expect_reject(&b, "sum", 64);
    bad_init(&b);
    b.pb.overflow = 1;
    b.pb.count++;
    b.pb.max = 0x1p41;
    expect_reject(&b, "max", 64);
    bad_init(&b);
    b.pb.overflow = 1;
    b.pb.count++;
    b.pb.max = 0x1p39;
    ww_hist_t ok;
    assert_int_equal(ww_hist_from_pb(&b.pb, &ok, 64, NULL, "x"), 0);
    ww_hist_fini(&ok);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_quantile_monotone_when_max_below_bucket),
    cmocka_unit_test(test_index_powers_of_base_go_below),
    cmocka_unit_test(test_index_brackets_random_values_every_scale),
    cmocka_unit_test(test_downscale_equals_recording_coarser),
    cmocka_unit_test(test_quantile_lognormal_ttft),
    cmocka_unit_test(test_quantile_bimodal_tpot),
    cmocka_unit_test(test_quantile_loguniform_six_decades),
    cmocka_unit_test(test_quantile_point_mass),
    cmocka_unit_test(test_quantile_special_ranks),
    cmocka_unit_test(test_merge_equals_union_same_scale),
    cmocka_unit_test(test_merge_different_scales_equals_coarser_union),
    cmocka_unit_test(test_merge_self_doubles),
    cmocka_unit_test(test_special_values_counted_never_lost),
    cmocka_unit_test(test_range_growth_both_ways),
    cmocka_unit_test(test_reset_keeps_allocation_fini_twice),
    cmocka_unit_test(test_check_detects_inconsistency),
    cmocka_unit_test(test_wire_roundtrip_equals_original),
    cmocka_unit_test(test_wire_empty_roundtrip),
    cmocka_unit_test(test_wire_scratch_too_small),
    cmocka_unit_test(test_wire_rejects_malformed_with_field),
    cmocka_unit_test(test_rank_exact_for_decimal_q),
    cmocka_unit_test(test_quantile_rank_of_hundred_values),
    cmocka_unit_test(test_merge_refuses_overflow),
    cmocka_unit_test(test_wire_rejects_unstorable_sum),
};

WW_TEST_MAIN(tests, NULL, NULL)
