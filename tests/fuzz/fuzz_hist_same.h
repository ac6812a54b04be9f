/* fuzz_hist_same.h: the one "same histogram" check of the histogram fuzzers (fuzz_hist,
 * fuzz_hist_pack): the same scale and statistics (NaN equal to NaN) and the same count in
 * every bucket, whatever the dense ranges hold around them. A difference traps, with the
 * fuzzer's CHECK (defined before this header is included). */
#ifndef FUZZ_HIST_SAME_H
#define FUZZ_HIST_SAME_H

#include "ww_hist.h"

#include <math.h>
#include <stdint.h>

static inline int fuzz_same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

/* The count of bucket i of h (0 outside its dense range). */
static inline uint64_t fuzz_count_at(const ww_hist_t *h, int64_t i)
{
    int64_t r = i - h->offset;
    return r >= 0 && r < (int64_t)h->len ? h->counts[r] : 0;
}

static inline void fuzz_check_same(const ww_hist_t *a, const ww_hist_t *b)
{
    CHECK(a->scale == b->scale && a->count == b->count);
    CHECK(a->zero_count == b->zero_count && a->underflow == b->underflow &&
          a->overflow == b->overflow);
    CHECK(fuzz_same_double(a->sum, b->sum) && fuzz_same_double(a->min, b->min) &&
          fuzz_same_double(a->max, b->max));
    /* Every bucket of a is b's, and b has no other non-empty one. */
    CHECK(ww_hist_nonempty(a) == ww_hist_nonempty(b));
    for (uint32_t j = 0; j < a->len; j++) {
        CHECK(fuzz_count_at(b, a->offset + (int64_t)j) == a->counts[j]);
    }
}

#endif
