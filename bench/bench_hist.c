/* bench_hist: the cost of the latency histogram, measured side by side in one run.
 *
 * Prints ns per ww_hist_record() on realistic TPOT-like values (pre-generated, so the
 * random number generator is not measured) beside ns per clock_gettime(CLOCK_MONOTONIC),
 * the floor: recording a latency needs at least one clock read, so the ratio says what
 * the histogram adds to timing a token. Also ns per ww_hist_quantile() and the sparse wire
 * bytes of a typical 10 s window. Ratios, not absolute times, are what compare across
 * the shared, noisy machines this runs on.
 *
 *   build/bench/bench_hist [values] [rounds]
 */
#include "ww_hist.h"
#include "ww_hist_wire.h"
#include "ww_time.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define PI 3.14159265358979323846

static uint64_t s_rng_next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static double s_rng_unit(uint64_t *s)
{
    return ((double)(s_rng_next(s) >> 11) + 0.5) * 0x1p-53;
}

static double s_lognormal(uint64_t *s, double median, double sigma)
{
    double u = s_rng_unit(s), v = s_rng_unit(s);
    return median * exp(sigma * sqrt(-2.0 * log(u)) * cos(2.0 * PI * v));
}

static double s_per_ns(int64_t t0, int64_t t1, double n)
{
    return (double)(t1 - t0) / n;
}

/* Sparse wire bytes of one histogram of n values. */
static size_t s_window_bytes(uint64_t *rng, size_t n, double median, double sigma, size_t *nonempty)
{
    static int32_t idx[WW_HIST_WIRE_MAX_BUCKETS];
    static uint64_t cnt[WW_HIST_WIRE_MAX_BUCKETS];
    ww_hist_t h;
    ww_hist_init(&h, WW_HIST_DEFAULT_SCALE);
    for (size_t k = 0; k < n; k++) {
        ww_hist_record(&h, s_lognormal(rng, median, sigma));
    }
    Waferwatch__V1__Histogram pb;
    size_t bytes = 0;
    if (ww_hist_to_pb(&h, &pb, idx, cnt, WW_HIST_WIRE_MAX_BUCKETS) == 0) {
        bytes = waferwatch__v1__histogram__get_packed_size(&pb);
    }
    *nonempty = ww_hist_nonempty(&h);
    ww_hist_fini(&h);
    return bytes;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 1000000;
    long rounds = argc > 2 ? atol(argv[2]) : 20;
    if (n == 0 || rounds <= 0) {
        fprintf(stderr, "usage: bench_hist [values>0] [rounds>0]\n");
        return 2;
    }
    double *v = malloc(n * sizeof *v);
    if (!v) {
        return 1;
    }
    /* TPOT-like: mostly ~0.7 ms, a slower tail mode at ~20 ms. */
    uint64_t rng = 0x5eed;
    for (size_t k = 0; k < n; k++) {
        v[k] =
            s_rng_unit(&rng) < 0.9 ? s_lognormal(&rng, 0.0007, 0.2) : s_lognormal(&rng, 0.020, 0.4);
    }
    ww_hist_t h;
    ww_hist_init(&h, WW_HIST_DEFAULT_SCALE);
    for (size_t k = 0; k < n; k++) {
        ww_hist_record(&h, v[k]); /* warm the range and the caches */
    }

    /* Floor: one monotonic clock read per value. */
    size_t nclock = n < 2000000 ? n : 2000000;
    volatile int64_t sink = 0;
    struct timespec ts;
    int64_t t0 = ww_time_mono_ns();
    for (size_t k = 0; k < nclock; k++) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        sink += ts.tv_nsec;
    }
    int64_t t1 = ww_time_mono_ns();
    double clock_ns = s_per_ns(t0, t1, (double)nclock);

    /* Record: the best of several rounds (the least disturbed by neighbours). */
    double rec_ns = INFINITY;
    for (long r = 0; r < rounds; r++) {
        ww_hist_reset(&h);
        int64_t a = ww_time_mono_ns();
        for (size_t k = 0; k < n; k++) {
            ww_hist_record(&h, v[k]);
        }
        int64_t b = ww_time_mono_ns();
        __asm__ volatile("" ::"r"(h.counts) : "memory");
        double ns = s_per_ns(a, b, (double)n);
        rec_ns = ns < rec_ns ? ns : rec_ns;
    }

    /* Quantile of the full histogram (a window's p50/p90/p99 each cost one). */
    long nq = 100000;
    double qsum = 0;
    int64_t q0 = ww_time_mono_ns();
    for (long k = 0; k < nq; k++) {
        qsum += ww_hist_quantile(&h, 0.5 + 0.499 * (double)(k % 100) / 100.0);
    }
    int64_t q1 = ww_time_mono_ns();
    double q_ns = s_per_ns(q0, q1, (double)nq);

    /* A typical 10 s window of one model on one node: ~300 requests. */
    uint64_t wrng = 7;
    size_t ne_ttft = 0, ne_tpot = 0;
    size_t ttft_b = s_window_bytes(&wrng, 300, 0.2, 0.6, &ne_ttft);
    size_t tpot_b = s_window_bytes(&wrng, 300, 0.0007, 0.2, &ne_tpot);

    printf("bench_hist: %zu TPOT-like values, %ld rounds, scale %d (%zu non-empty buckets, "
           "p99 %.3f ms)\n",
           n, rounds, h.scale, ww_hist_nonempty(&h), ww_hist_quantile(&h, 0.99) * 1e3);
    printf("%-44s %10s %10s\n", "measure", "value", "x floor");
    printf("%-44s %10.2f %10.1f\n", "clock_gettime(MONOTONIC), ns (floor)", clock_ns, 1.0);
    printf("%-44s %10.2f %10.2f\n", "ww_hist_record, ns/value (best round)", rec_ns,
           rec_ns / clock_ns);
    printf("%-44s %10.1f %10.1f\n", "ww_hist_quantile, ns/call", q_ns, q_ns / clock_ns);
    printf("%-44s %10zu %10s\n", "wire bytes, TTFT window (300 values)", ttft_b, "");
    printf("%-44s %10zu %10s\n", "  non-empty buckets", ne_ttft, "");
    printf("%-44s %10zu %10s\n", "wire bytes, TPOT window (300 values)", tpot_b, "");
    printf("%-44s %10zu %10s\n", "  non-empty buckets", ne_tpot, "");
    if (qsum != qsum || sink == 42) {
        printf("(unreachable: keeps the loops)\n");
    }
    ww_hist_fini(&h);
    free(v);
    return 0;
}
