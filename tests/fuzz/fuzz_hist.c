/* fuzz_hist: libFuzzer target of ww_hist_from_pb(), the validation of a peer's
 * waferwatch.v1.Histogram (the input is an encoded Histogram), and of what the collector
 * then does with an accepted one (quantiles, merges, downscaling, re-encoding).
 *
 * Invariants checked on every input that unpacks (a violation traps):
 *  - a refusal returns -EINVAL or -ENOMEM with a reason and leaves *out empty;
 *  - an accepted histogram passes ww_hist_check(), keeps pb's scale, count and non-empty
 *    buckets, and its quantiles are never NaN and are monotone in q;
 *  - it round-trips: ww_hist_to_pb() and ww_hist_from_pb() give the same histogram;
 *  - merged into an empty histogram at another scale (chosen from the input's size), and
 *    merged into itself, it still passes ww_hist_check() with the counts added and
 *    monotone quantiles; downscaled to scale 0 likewise.
 */
#include "ww_hist.h"
#include "ww_hist_wire.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_hist: invariant violated: %s (%s:%d)\n", #cond, __FILE__,        \
                    __LINE__);                                                                     \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

#include "fuzz_hist_same.h"

#define MAX_BUCKETS 8192

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Quantiles at a grid of q and at every rank boundary of a small histogram. */
static void s_check_quantiles(const ww_hist_t *h)
{
    if (h->count == 0) {
        CHECK(isnan(ww_hist_quantile(h, 0.5)));
        return;
    }
    double prev = -INFINITY;
    for (int k = 0; k <= 64; k++) {
        double q = k / 64.0;
        double v = ww_hist_quantile(h, q);
        if (isnan(v) || v < prev) {
            fprintf(stderr, "fuzz_hist: quantile(%.17g) = %.17g after %.17g\n", q, v, prev);
        }
        CHECK(!isnan(v));
        CHECK(v >= prev);
        prev = v;
    }
    /* Clamped out-of-range q behaves as 0 and 1. */
    CHECK(ww_hist_quantile(h, -1) == ww_hist_quantile(h, 0));
    CHECK(ww_hist_quantile(h, 2) == ww_hist_quantile(h, 1));
}

static void s_check_roundtrip(const ww_hist_t *h)
{
    size_t n = ww_hist_nonempty(h);
    int32_t *idx = malloc((n ? n : 1) * sizeof *idx);
    uint64_t *cnt = malloc((n ? n : 1) * sizeof *cnt);
    if (!idx || !cnt) {
        free(idx);
        free(cnt);
        return;
    }
    Waferwatch__V1__Histogram pb;
    CHECK(ww_hist_to_pb(h, &pb, idx, cnt, n) == 0);
    CHECK(pb.n_index_delta == n && pb.n_bucket_count == n);
    ww_hist_t back;
    ww_wire_why_t why;
    int rc = ww_hist_from_pb(&pb, &back, MAX_BUCKETS, &why, "roundtrip");
    if (rc == -EINVAL) {
        fprintf(stderr, "fuzz_hist: ww_hist_to_pb output refused: %s\n", why.msg);
    }
    CHECK(rc == 0 || rc == -ENOMEM);
    if (rc == 0) {
        fuzz_check_same(h, &back);
    }
    ww_hist_fini(&back);
    free(idx);
    free(cnt);
}

static void s_check_merges(const ww_hist_t *h, int scale)
{
    ww_hist_t d;
    ww_hist_init(&d, scale);
    if (ww_hist_merge(&d, h) == 0) {
        CHECK(ww_hist_check(&d) == 0);
        CHECK(d.count == h->count && d.zero_count == h->zero_count);
        CHECK(d.scale == (scale < h->scale ? scale : h->scale));
        s_check_quantiles(&d);
        /* Into itself (src may be dst), unless the counters would wrap. */
        if (d.count <= UINT64_MAX / 2 && ww_hist_merge(&d, &d) == 0) {
            CHECK(ww_hist_check(&d) == 0);
            CHECK(d.count == 2 * h->count && d.overflow == 2 * h->overflow);
            s_check_quantiles(&d);
        }
    }
    ww_hist_fini(&d);

    /* A copy downscaled to the coarsest scale. */
    ww_hist_t c;
    ww_hist_init(&c, h->scale);
    if (ww_hist_merge(&c, h) == 0) {
        CHECK(ww_hist_downscale(&c, 0) == 0);
        CHECK(c.scale == 0 && c.count == h->count);
        CHECK(ww_hist_check(&c) == 0);
        s_check_quantiles(&c);
    }
    ww_hist_fini(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Waferwatch__V1__Histogram *pb = waferwatch__v1__histogram__unpack(NULL, size, data);
    if (!pb) {
        return 0;
    }
    ww_hist_t h;
    ww_wire_why_t why;
    why.msg[0] = '\0';
    int rc = ww_hist_from_pb(pb, &h, MAX_BUCKETS, &why, "fuzz");
    if (rc < 0) {
        CHECK(rc == -EINVAL || rc == -ENOMEM);
        CHECK(why.msg[0] != '\0' && memchr(why.msg, '\0', sizeof why.msg) != NULL);
        CHECK(h.count == 0 && h.len == 0 && h.counts == NULL);
    } else {
        CHECK(rc == 0);
        CHECK(ww_hist_check(&h) == 0);
        CHECK(h.scale == pb->scale && h.count == pb->count);
        CHECK(ww_hist_nonempty(&h) == pb->n_index_delta);
        s_check_quantiles(&h);
        s_check_roundtrip(&h);
        s_check_merges(&h, (int)(size % (WW_HIST_MAX_SCALE + 1)));
    }
    ww_hist_fini(&h);
    waferwatch__v1__histogram__free_unpacked(pb, NULL);
    return 0;
}
