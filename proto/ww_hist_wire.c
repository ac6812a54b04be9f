/* ww_hist_wire: see ww_hist_wire.h. */
#include "ww_hist_wire.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Relative slack of the min/max plausibility rules (the same as ww_hist_check()'s). */
#define REL_TOL 1e-9

int ww_hist_to_pb(const ww_hist_t *h, Waferwatch__V1__Histogram *pb, int32_t *idx_buf,
                  uint64_t *cnt_buf, size_t buf_cap)
{
    waferwatch__v1__histogram__init(pb);
    pb->scale = h->scale;
    pb->count = h->count;
    pb->sum = h->sum;
    pb->min = h->min;
    pb->max = h->max;
    pb->zero_count = h->zero_count;
    pb->underflow = h->underflow;
    pb->overflow = h->overflow;
    size_t n = 0;
    int32_t prev = 0;
    for (uint32_t j = 0; j < h->len; j++) {
        if (h->counts[j] == 0) {
            continue;
        }
        if (n == buf_cap) {
            return -ENOSPC;
        }
        int32_t i = h->offset + (int32_t)j;
        idx_buf[n] = n == 0 ? i : i - prev;
        cnt_buf[n] = h->counts[j];
        prev = i;
        n++;
    }
    pb->n_index_delta = n;
    pb->index_delta = n ? idx_buf : NULL;
    pb->n_bucket_count = n;
    pb->bucket_count = n ? cnt_buf : NULL;
    return 0;
}

/* The plausibility of min and max given which counters hold values (see the header).
 * lo/hi_first/last are the bounds of the first and last non-empty bucket (have). */
static int s_check_minmax(const Waferwatch__V1__Histogram *pb, int have, double lo_first,
                          double hi_first, double lo_last, double hi_last, ww_wire_why_t *why,
                          const char *p)
{
    double mn = pb->min, mx = pb->max;
    double lo_tol = 1 - REL_TOL, hi_tol = 1 + REL_TOL;
    if (isnan(mn) != isnan(mx)) {
        return ww_wire_fail(why, -EINVAL,
                            "%s.min/max: %g and %g: both NaN (no finite value) or neither", p, mn,
                            mx);
    }
    if (isnan(mn)) {
        if (have || pb->underflow > 0) {
            return ww_wire_fail(why, -EINVAL,
                                "%s.min: NaN, but buckets or underflow hold finite values", p);
        }
        if (pb->sum != 0) {
            return ww_wire_fail(why, -EINVAL, "%s.sum: %g, but min/max are NaN (no finite value)",
                                p, pb->sum);
        }
        return 0;
    }
    if (!isfinite(mn) || !isfinite(mx)) {
        return ww_wire_fail(why, -EINVAL, "%s.min/max: %g and %g are not finite numbers", p, mn,
                            mx);
    }
    if (pb->count == 0) {
        return ww_wire_fail(
            why, -EINVAL, "%s.min/max: %g and %g in an empty histogram (NaN expected)", p, mn, mx);
    }
    if (mn > mx) {
        return ww_wire_fail(why, -EINVAL, "%s.min: %g is greater than max %g", p, mn, mx);
    }
    if (pb->zero_count == 0) {
        if (!(mn > 0)) {
            return ww_wire_fail(why, -EINVAL, "%s.min: %g, but zero_count is 0 (min > 0 expected)",
                                p, mn);
        }
        if (pb->underflow == 0 && !(mn > WW_HIST_MIN * lo_tol)) {
            return ww_wire_fail(why, -EINVAL, "%s.min: %g, but underflow is 0 (min > %g expected)",
                                p, mn, WW_HIST_MIN);
        }
        if (pb->underflow == 0 && pb->overflow == 0 && have && !(mn > lo_first * lo_tol)) {
            return ww_wire_fail(why, -EINVAL, "%s.min: %g is below the first bucket (%g, %g]", p,
                                mn, lo_first, hi_first);
        }
    }
    if (have && !(mn <= hi_first * hi_tol)) {
        return ww_wire_fail(why, -EINVAL, "%s.min: %g is above the first bucket (%g, %g]", p, mn,
                            lo_first, hi_first);
    }
    if (pb->underflow > 0 && !(mn <= WW_HIST_MIN)) {
        return ww_wire_fail(why, -EINVAL, "%s.min: %g, but underflow holds values <= %g", p, mn,
                            WW_HIST_MIN);
    }
    if (pb->overflow == 0) {
        double top = have ? hi_last : pb->underflow > 0 ? WW_HIST_MIN : 0.0;
        if (!(mx <= top * hi_tol)) {
            return ww_wire_fail(why, -EINVAL, "%s.max: %g, but overflow is 0 (max <= %g expected)",
                                p, mx, top);
        }
    }
    if (have && !(mx > lo_last * lo_tol)) {
        return ww_wire_fail(why, -EINVAL, "%s.max: %g is below the last bucket (%g, %g]", p, mx,
                            lo_last, hi_last);
    }
    if ((have || pb->underflow > 0) && !(mx > 0)) {
        return ww_wire_fail(why, -EINVAL, "%s.max: %g, but buckets or underflow hold values > 0", p,
                            mx);
    }
    return 0;
}

int ww_hist_from_pb(const Waferwatch__V1__Histogram *pb, ww_hist_t *out, size_t max_buckets,
                    ww_wire_why_t *why, const char *path)
{
    const char *p = path ? path : "histogram";
    ww_hist_init(out, WW_HIST_DEFAULT_SCALE);
    if (pb->scale < 0 || pb->scale > WW_HIST_MAX_SCALE) {
        return ww_wire_fail(why, -EINVAL, "%s.scale: %d is outside 0..%d", p, (int)pb->scale,
                            WW_HIST_MAX_SCALE);
    }
    int scale = pb->scale;
    size_t n = pb->n_index_delta;
    if (n != pb->n_bucket_count) {
        return ww_wire_fail(why, -EINVAL, "%s.index_delta: %zu entries but bucket_count has %zu", p,
                            n, pb->n_bucket_count);
    }
    if (n > max_buckets) {
        return ww_wire_fail(why, -EINVAL, "%s.index_delta: %zu buckets, more than the limit %zu", p,
                            n, max_buckets);
    }
    if (n > 0 && (!pb->index_delta || !pb->bucket_count)) {
        return ww_wire_fail(why, -EINVAL, "%s.index_delta: %zu entries but no array", p, n);
    }
    int64_t imin = (int64_t)WW_HIST_MIN_LOG2 * (1 << scale);
    int64_t imax = (int64_t)WW_HIST_MAX_LOG2 * (1 << scale) - 1;
    int64_t idx = 0, first = 0;
    uint64_t total = 0;
    for (size_t k = 0; k < n; k++) {
        int64_t d = pb->index_delta[k];
        if (k > 0 && d < 1) {
            return ww_wire_fail(why, -EINVAL,
                                "%s.index_delta[%zu]: %lld, a later delta must be >= 1 (ascending, "
                                "non-empty buckets only)",
                                p, k, (long long)d);
        }
        idx = k == 0 ? d : idx + d;
        if (idx < imin || idx > imax) {
            return ww_wire_fail(
                why, -EINVAL,
                "%s.index_delta[%zu]: bucket index %lld is outside %lld..%lld at scale "
                "%d",
                p, k, (long long)idx, (long long)imin, (long long)imax, scale);
        }
        if (k == 0) {
            first = idx;
        }
        uint64_t c = pb->bucket_count[k];
        if (c == 0) {
            return ww_wire_fail(why, -EINVAL, "%s.bucket_count[%zu]: 0, empty buckets are not sent",
                                p, k);
        }
        if (__builtin_add_overflow(total, c, &total)) {
            return ww_wire_fail(why, -EINVAL, "%s.bucket_count[%zu]: the counts overflow 64 bits",
                                p, k);
        }
    }
    const uint64_t parts[] = {pb->zero_count, pb->underflow, pb->overflow};
    for (size_t k = 0; k < 3; k++) {
        if (__builtin_add_overflow(total, parts[k], &total)) {
            return ww_wire_fail(why, -EINVAL, "%s.count: the parts overflow 64 bits", p);
        }
    }
    if (total != pb->count) {
        return ww_wire_fail(
            why, -EINVAL,
            "%s.count: %llu, but zero_count + underflow + overflow + bucket counts = "
            "%llu",
            p, (unsigned long long)pb->count, (unsigned long long)total);
    }
    if (!isfinite(pb->sum)) {
        return ww_wire_fail(why, -EINVAL, "%s.sum: %g is not a finite number", p, pb->sum);
    }
    /* count * 2^40 is exact in double (a power-of-two scaling of a 64-bit count, rounded
     * to 53 bits the same way on both sides of the comparison). */
    if (fabs(pb->sum) > (double)pb->count * WW_HIST_WIRE_MAX_ABS_S) {
        return ww_wire_fail(why, -EINVAL,
                            "%s.sum: %g is more than count %llu times the largest value %g s in "
                            "magnitude",
                            p, pb->sum, (unsigned long long)pb->count, WW_HIST_WIRE_MAX_ABS_S);
    }
    int have = n > 0;
    int32_t last = (int32_t)idx;
    /* proto3 drops zero doubles: min = max = 0 where no counter can hold a finite value
     * was never set, i.e. NaN (0 itself would be in zero_count). */
    Waferwatch__V1__Histogram h = *pb;
    if (!have && pb->underflow == 0 && pb->zero_count == 0 && h.min == 0 && h.max == 0) {
        h.min = NAN;
        h.max = NAN;
    }
    int rc = s_check_minmax(&h, have, have ? ww_hist_lower((int32_t)first, scale) : 0,
                            have ? ww_hist_upper((int32_t)first, scale) : 0,
                            have ? ww_hist_lower(last, scale) : 0,
                            have ? ww_hist_upper(last, scale) : 0, why, p);
    if (rc < 0) {
        return rc;
    }
    const double ends[] = {h.min, h.max}; /* finite, or both NaN */
    for (int k = 0; k < 2; k++) {
        if (fabs(ends[k]) > WW_HIST_WIRE_MAX_ABS_S) {
            return ww_wire_fail(why, -EINVAL, "%s.%s: %g is beyond +-%g s", p, k ? "max" : "min",
                                ends[k], WW_HIST_WIRE_MAX_ABS_S);
        }
    }

    out->scale = scale;
    if (have) {
        uint32_t len = (uint32_t)(last - first) + 1; /* <= WW_HIST_WIRE_MAX_BUCKETS */
        uint64_t *counts = calloc(len, sizeof *counts);
        if (!counts) {
            return ww_wire_fail(why, -ENOMEM, "%s: out of memory for %u buckets", p, (unsigned)len);
        }
        int64_t i = 0;
        for (size_t k = 0; k < n; k++) {
            i = k == 0 ? pb->index_delta[0] : i + pb->index_delta[k];
            counts[i - first] = pb->bucket_count[k];
        }
        out->counts = counts;
        out->offset = (int32_t)first;
        out->len = len;
        out->cap = len;
    }
    out->count = pb->count;
    out->sum = pb->sum;
    out->min = h.min;
    out->max = h.max;
    out->zero_count = pb->zero_count;
    out->underflow = pb->underflow;
    out->overflow = pb->overflow;
    return 0;
}
