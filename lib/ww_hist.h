/* ww_hist: a mergeable, log-bucketed latency histogram (the OpenTelemetry exponential
 * histogram layout), shared by the agent (recording) and the collector (decoding,
 * validation, merging before storage). The same layout is read in SQL by ww_quantile().
 *
 * Layout. At scale s (0..WW_HIST_MAX_SCALE) the base is b = 2^(2^-s) and bucket index i
 * holds values v with b^i < v <= b^(i+1) (upper bound inclusive, as in OpenTelemetry).
 * Scale 6 (b = 2^(1/64) = 1.0109) is the default: a quantile reported as the harmonic mean
 * of its bucket's bounds, 2 b^i b^(i+1) / (b^i + b^(i+1)), is within (b-1)/(b+1) <= 0.542%
 * (0.5415%) of the true value, and a half-millisecond TPOT sits in buckets 1.09% wide.
 *
 * Range. Values in (0, WW_HIST_MIN] (about 0.95 us) are counted in `underflow`, values
 * above WW_HIST_MAX (4096 s, over an hour), +inf and NaN in `overflow`; zero and negative
 * values (a duration can only be negative through a clock step) in `zero_count`. Nothing
 * recorded is lost: count = zero_count + underflow + overflow + sum of bucket counts.
 * sum, min and max are over the finite values recorded (min/max NaN when there are none).
 *
 * Buckets live in one dense array covering [offset, offset + len) that grows on demand,
 * so a histogram costs memory only for the range its values span (a TPOT window spans
 * about one octave: 64 buckets). Recording is a bit-level index computation and an
 * increment (no log(), no allocation once the range is warm).
 */
#ifndef WW_HIST_H
#define WW_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WW_HIST_MAX_SCALE 8
#define WW_HIST_DEFAULT_SCALE 6
#define WW_HIST_MIN_LOG2 (-20) /* WW_HIST_MIN = 2^-20 s */
#define WW_HIST_MAX_LOG2 12    /* WW_HIST_MAX = 2^12 s */
#define WW_HIST_MIN (1.0 / 1048576.0)
#define WW_HIST_MAX 4096.0

typedef struct {
    int32_t scale;
    uint64_t count;
    double sum, min, max;
    uint64_t zero_count, underflow, overflow;
    int32_t offset; /* bucket index of counts[0] */
    uint32_t len;   /* buckets in use in counts[] */
    uint32_t cap;   /* allocated */
    uint64_t *counts;
} ww_hist_t;

/* Initialises an empty histogram at `scale` (0..WW_HIST_MAX_SCALE). No allocation. */
void ww_hist_init(ww_hist_t *h, int scale);

/* Frees the bucket array; the histogram is empty (same scale) and reusable afterwards. */
void ww_hist_fini(ww_hist_t *h);

/* Empties the histogram, keeping its allocation (for reuse window after window). */
void ww_hist_reset(ww_hist_t *h);

/* Records one value (seconds). Never fails: if growing the bucket array is impossible
 * (out of memory) the value is counted in `overflow` and -ENOMEM returned; else 0. */
int ww_hist_record(ww_hist_t *h, double v);

/* The bucket index of a positive, finite v in range at scale s (exposed for tests). */
int32_t ww_hist_index(double v, int scale);

/* Lower and upper bound of bucket `index` at `scale`. */
double ww_hist_lower(int32_t index, int scale);
double ww_hist_upper(int32_t index, int scale);

/* Adds src into dst (src may be dst). A finer src is first reduced to dst's scale; a finer
 * dst is reduced to src's. Every count is added with overflow checks: a merge whose count,
 * zero_count, underflow, overflow or bucket counts would pass 2^64 - 1 is refused before
 * anything changes (the collector stores counts as bigint and bounds them far below that
 * on the wire, see ww_wire.h, so this only guards against wrapping). sum saturates at
 * +-DBL_MAX. Returns 0, -EOVERFLOW or -ENOMEM (dst unchanged on both errors). */
int ww_hist_merge(ww_hist_t *dst, const ww_hist_t *src);

/* The part of ww_hist_merge beside the buckets: dst's count, zero_count, underflow and
 * overflow plus src's, sum added (saturating at +-DBL_MAX), min/max the least/greatest
 * (a NaN side ignored). src's buckets are not read. For decoders that add the buckets
 * themselves (ww_hist_pack.c); the caller has checked that no count wraps. */
void ww_hist_merge_scalars(ww_hist_t *dst, const ww_hist_t *src);

/* Empties h and forgets its range (len and offset 0), keeping its allocation: what a
 * decoder that then grows it to the range it reads (ww_hist_reserve) starts from. */
void ww_hist_clear(ww_hist_t *h);

/* Reduces h to a coarser scale (new_scale <= h->scale): bucket i becomes i >> (old-new). */
int ww_hist_downscale(ww_hist_t *h, int new_scale);

/* The nearest rank of the q-quantile of count values: max(1, ceil(q * count)), computed
 * exactly for q as PostgreSQL's float8 -> numeric cast reads it (SQL ww_quantile() computes
 * ceil(q::numeric * count) and must agree): q printed with 15 significant digits ("%.15g",
 * DBL_DIG, as float8_numeric does) is the decimal D * 10^-k, and the rank is
 * ceil(D * count / 10^k) in 128-bit integers, so q = 0.07 of 100 values is rank 7 (in
 * double, ceil(0.07 * 100) = 8). q is clamped to [0, 1]. Returns a rank in 1..count, or 0
 * when count is 0 or q is NaN. */
uint64_t ww_hist_rank(double q, uint64_t count);

/* The q-quantile (0 <= q <= 1) by nearest rank: the value of rank ww_hist_rank(q, count),
 * reported as its bucket's harmonic-mean point clamped to [min, max]; 0 for a rank in
 * zero_count, WW_HIST_MIN in underflow, max (or +inf when none) in overflow. NaN when
 * the histogram is empty or q is NaN. */
double ww_hist_quantile(const ww_hist_t *h, double q);

/* Number of non-empty buckets. */
size_t ww_hist_nonempty(const ww_hist_t *h);

/* Checks internal consistency (count equals the parts, scale and offsets in range, sum
 * and min/max finite or NaN only when no finite values) and plausibility (min and max
 * where the non-empty counters and buckets say values are, within rounding): what a
 * histogram recorded by ww_hist_record and merged by ww_hist_merge always passes, and the
 * wire demands (ww_hist_wire.h). 0 or -EINVAL. */
int ww_hist_check(const ww_hist_t *h);

/* The form only, without the plausibility of min and max: scale and indexes in range, count
 * equal to its parts, sum finite, min and max both NaN (then sum 0) or both finite with
 * min <= max and count > 0. What a stored ww_hist must be (ww_hist_pack.h, the SQL type):
 * the composite type of schema versions 12-14 held min/max that SQL wrote by hand, and
 * an upgrade keeps them as they were rather than refuse them. 0 or -EINVAL. */
int ww_hist_check_form(const ww_hist_t *h);

/* Makes h's dense array cover the indexes [lo, hi] (lo <= hi, both within the range of
 * h's scale, see ww_hist_pack.h), keeping its counts: the buckets it adds are zeros. One
 * allocation at most, so a decoder that knows the span of what it adds grows h once.
 * Returns 0, -EINVAL (bad range) or -ENOMEM (h unchanged on both). */
int ww_hist_reserve(ww_hist_t *h, int32_t lo, int32_t hi);

/* The checks of ww_hist_check() (plausible) or ww_hist_check_form() (not) on a histogram
 * known by its parts: h's scale and scalars (count, sum, min, max, zero_count, underflow,
 * overflow; its bucket array is not read), `bucket_total` the sum of its bucket counts and,
 * when that is not 0, `first` and `last` its lowest and highest non-empty index. For
 * decoders that validate what they read before (or without) building the histogram
 * (ww_hist_pack.c). 0 or -EINVAL. */
int ww_hist_check_parts(const ww_hist_t *h, uint64_t bucket_total, int32_t first, int32_t last,
                        bool plausible);

#endif
