/* ww_hist_wire: a ww_hist_t to and from the protobuf waferwatch.v1.Histogram.
 *
 * The wire form is sparse: only non-empty buckets, as (index_delta, bucket_count) pairs,
 * the first index_delta absolute and each later one the distance (>= 1) from the
 * previous non-empty bucket. A TPOT or TTFT window costs a few bytes per non-empty bucket.
 *
 * Decoding validates untrusted input and explains the first failure with the field's
 * path, e.g. "batch.latency_windows[2].ttft.index_delta[5]: ...".
 */
#ifndef WW_HIST_WIRE_H
#define WW_HIST_WIRE_H

#include "ww_hist.h"
#include "ww_wire.h"

#include <stddef.h>
#include <stdint.h>

/* The most buckets a histogram can have at scale s (its whole index range). */
#define WW_HIST_WIRE_BUCKETS(s) ((size_t)(WW_HIST_MAX_LOG2 - WW_HIST_MIN_LOG2) << (s))
/* ... at any scale: a scratch of this many entries always suffices. */
#define WW_HIST_WIRE_MAX_BUCKETS WW_HIST_WIRE_BUCKETS(WW_HIST_MAX_SCALE)

/* The largest magnitude of a value (seconds) a histogram on the wire may hold: 2^40 s
 * (34,800 years; an agent's durations come from int64 nanoseconds, at most 292 years).
 * With count <= 3.6e9 per window (ww_wire.h) a window's sum is below 4e21, so sums of
 * windows merged in C or SQL stay finite (SQL float8 addition refuses to overflow). */
#define WW_HIST_WIRE_MAX_ABS_S 0x1p40

/* Fills pb (initialised here; any previous content is overwritten, not freed) with h in
 * the sparse form. pb->index_delta and pb->bucket_count point into the caller's scratch
 * idx_buf and cnt_buf (buf_cap entries each), so nothing is allocated: pb borrows them
 * and is valid while they are and until they are reused. ww_hist_nonempty(h) entries
 * are needed (WW_HIST_WIRE_BUCKETS(h->scale) always suffice). Returns 0, or -ENOSPC
 * when the scratch is too small (pb then holds no buckets and must not be sent). */
int ww_hist_to_pb(const ww_hist_t *h, Waferwatch__V1__Histogram *pb, int32_t *idx_buf,
                  uint64_t *cnt_buf, size_t buf_cap);

/* Validates pb (untrusted: a peer's message) and decodes it into *out, which is
 * initialised here (at pb's scale when valid) and owns its bucket array: the caller
 * ww_hist_fini()s it whatever the result. At most max_buckets non-empty buckets are
 * accepted. `path` names pb in messages (e.g. "batch.latency_windows[2].ttft"); `why`
 * may be NULL. Returns 0, -EINVAL (why->msg says which field and why; *out is empty) or
 * -ENOMEM (*out is empty).
 *
 * Rules: scale in 0..WW_HIST_MAX_SCALE; as many index_delta as bucket_count, at most
 * max_buckets; later deltas >= 1; every index inside the scale's range (buckets covering
 * (WW_HIST_MIN, WW_HIST_MAX]); no zero bucket_count; count equals zero_count + underflow
 * + overflow + the bucket counts exactly, added with uint64 overflow checks; sum finite and
 * |sum| <= count * WW_HIST_WIRE_MAX_ABS_S; |min|, |max| <= WW_HIST_WIRE_MAX_ABS_S; min and
 * max both NaN (no finite value recorded: no buckets, no underflow, sum 0) or both finite
 * with min <= max and where the non-empty counters say values are (e.g. min > 0 without
 * zero_count, max <= the upper bound of the last bucket without overflow). min = max = 0
 * with nothing that could hold a finite value is the proto3 default: read as NaN. */
int ww_hist_from_pb(const Waferwatch__V1__Histogram *pb, ww_hist_t *out, size_t max_buckets,
                    ww_wire_why_t *why, const char *path);

#endif
