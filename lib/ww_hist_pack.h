/* ww_hist_pack: the compact, canonical byte form of a ww_hist histogram. One encoding for
 * every place a histogram is stored: the bytes of the PostgreSQL type ww_hist (the
 * extension in pgext/, after its varlena header), its binary send/recv form (what the
 * collector writes with binary COPY) and, encoded in C, nothing else to keep in step.
 *
 * Why this form. The first ww_hist was a composite with a dense bigint[] from the lowest to
 * the highest non-empty bucket: a 10 s TTFT window of ~94 requests spans ~430 buckets of 8
 * bytes, ~76 of them non-empty (measured on the default simulator). Here only the non-empty
 * buckets are written, as gaps between their indexes and their counts, each an Exp-Golomb
 * code of an order chosen per histogram (the one that makes the stream shortest): a gap of
 * 5 costs 3-4 bits, a count of 1 one bit, and a merged hour of millions of values still
 * codes each count in about 2 log2(count / 2^k) + 1 + k bits. Measured on the simulator's
 * windows: ~48 bytes of buckets per TTFT window, against an information floor (the
 * number of ways to place its values in its span) of ~42.
 *
 * Format, version 1 (all multi-byte fixed fields little-endian):
 *   u8      head      version << 4 | scale        version 1; scale 0..WW_HIST_MAX_SCALE
 *   u8      flags     WW_HIST_PACK_F_* below; bit 7 must be 0
 *   varint  count     every value recorded (= zero + underflow + overflow + the buckets')
 *   varint  zero_count   only with F_ZERO   (absent: 0; present: never 0)
 *   varint  underflow    only with F_UNDER  (likewise)
 *   varint  overflow     only with F_OVER   (likewise)
 *   f64     sum       only with F_SUM  (absent: 0.0; present: never +-0.0)
 *   f64     min       only with F_MIN  (absent: 0.0 when F_FINITE, else NaN; present: never
 *                     +-0.0, so a min of -0.0 is written as absent and reads back as +0.0)
 *   f64     max       only with F_MAX  (likewise)
 *   varint  nb        non-empty buckets
 *   when nb > 0:
 *     varint  first   the first (lowest) index, zigzag-coded (0, -1, 1, -2 .. as 0, 1, 2, 3)
 *     u8      orders  k_gap << 4 | k_count, each 0..15
 *     bits    for each bucket in index order: (but the first) EG(k_gap) of index - previous
 *             index - 1, then EG(k_count) of its count - 1; most significant bit first,
 *             the last byte padded with zero bits. With one bucket there is no gap and
 *             k_gap is 0 (every order costs nothing: the smallest wins).
 * varint: unsigned LEB128, at most 10 bytes, minimal (no trailing 0x80 0x00 groups).
 * EG(k) of x >= 0: with v = (x >> k) + 1 and L = floor(log2 v): L zero bits, v in L + 1
 * bits, then the low k bits of x.
 *
 * Canonical: one histogram has one encoding (only non-empty buckets; presence flags set
 * exactly when the field is non-zero; the orders the smallest among those of least total
 * bits), so equal histograms have equal bytes and byte comparison is equality (sum is the
 * float sum in the order values were added). The decoder accepts only canonical input and
 * checks everything: scale, flags, varint form, count = its parts (no overflow), every
 * bucket count >= 1, every index within the range a value can reach at the scale
 * ([-20 * 2^scale, 12 * 2^scale - 1]), doubles finite, min <= max, F_MIN/F_MAX/F_SUM only
 * with F_FINITE, no F_FINITE on an empty histogram (count 0), the orders the canonical
 * ones, padding bits zero, no byte left over: the result passes ww_hist_check_form(), what
 * ww_hist_pack() demands of its input, so every accepted input packs back to itself. Not
 * checked: the plausibility of min and max (ww_hist_check(), which the wire demands), and
 * F_FINITE may be clear with values in buckets or underflow (min/max unknown): the
 * composites of schema versions 12-14, which SQL wrote by hand, convert as they were.
 * Counts are bounded by INT64_MAX (they are bigint in SQL).
 */
#ifndef WW_HIST_PACK_H
#define WW_HIST_PACK_H

#include "ww_hist.h"

#include <stddef.h>
#include <stdint.h>

#define WW_HIST_PACK_VERSION 1

#define WW_HIST_PACK_F_FINITE 0x01u /* some finite value recorded: min/max are numbers */
#define WW_HIST_PACK_F_ZERO 0x02u
#define WW_HIST_PACK_F_UNDER 0x04u
#define WW_HIST_PACK_F_OVER 0x08u
#define WW_HIST_PACK_F_SUM 0x10u
#define WW_HIST_PACK_F_MIN 0x20u
#define WW_HIST_PACK_F_MAX 0x40u

/* Everything of a packed histogram but its buckets (read without decoding them). */
typedef struct {
    int scale;
    uint64_t count, zero_count, underflow, overflow;
    double sum, min, max; /* min/max NaN when no finite value */
    uint64_t nb;          /* non-empty buckets */
    int32_t first;        /* index of the first, when nb > 0 */
    int k_gap, k_count;
    const uint8_t *bits; /* the bucket bit stream and its length in bytes */
    size_t n_bits_bytes;
} ww_hist_pack_head_t;

/* The most bytes of a packed histogram's head: 2 bytes, 4 varints, 3 doubles, nb, first,
 * orders (everything before the bucket bits). */
#define WW_HIST_PACK_HEAD_MAX (2 + 4 * 10 + 3 * 8 + 10 + 5 + 1)

/* The most bytes ww_hist_pack() can write for h. */
size_t ww_hist_pack_bound(const ww_hist_t *h);

/* Writes the canonical form of h (which must pass ww_hist_check_form and hold counts <=
 * INT64_MAX) into out[0 .. cap). Returns the number of bytes (> 0), -EINVAL (h invalid,
 * or a count past INT64_MAX) or -ENOBUFS (cap too small: ww_hist_pack_bound() is enough). */
long ww_hist_pack(const ww_hist_t *h, uint8_t *out, size_t cap);

/* Reads the head of p[0 .. n) and checks it (not the bucket stream). 0, or -EINVAL with
 * *why (when why is not NULL) set to a static sentence naming what is wrong. */
int ww_hist_pack_head(const uint8_t *p, size_t n, ww_hist_pack_head_t *head, const char **why);

/* The inverse of ww_hist_pack_head: writes into out[0 .. cap) the head that hd's fields
 * make in the canonical form (the flags follow from them: F_FINITE when min is not NaN, the
 * others when their field is non-zero), then hd->bits[0 .. n_bits_bytes). For the head of a
 * valid packed histogram this gives back its bytes exactly; for any other fields the result
 * is only what ww_hist_unpack() says it is (a codec that stores the fields apart, such as
 * ww_wblock, checks it so). Returns the number of bytes, -EINVAL (scale or an order out of
 * range, bits without buckets) or -ENOBUFS (cap < WW_HIST_PACK_HEAD_MAX + n_bits_bytes may
 * be too small). */
long ww_hist_pack_join(const ww_hist_pack_head_t *hd, uint8_t *out, size_t cap);

/* The length in bytes of the bucket stream that starts at hd->bits, of the nb buckets hd's
 * head says, reading no further than hd->n_bits_bytes (a codec that stores the head's
 * fields apart, such as ww_wblock, finds where a stream ends without storing its length).
 * Only what the walk needs is checked (each index within the scale's range, the counts
 * within count, the stream within the bytes given); ww_hist_unpack checks the rest. Returns
 * the bytes (0 without buckets) or -EINVAL with *why. */
long ww_hist_pack_bits_len(const ww_hist_pack_head_t *hd, const char **why);

/* Decodes p[0 .. n) into h, which is (re)initialised: pass an initialised histogram (its
 * allocation is reused) or one fresh from ww_hist_init. Checks everything listed above.
 * Returns 0, -EINVAL (with *why) or -ENOMEM. On error h is empty and valid. */
int ww_hist_unpack(const uint8_t *p, size_t n, ww_hist_t *h, const char **why);

/* dst += the histogram packed in p[0 .. n), as ww_hist_merge(dst, decoded) would, without
 * building the decoded histogram when the scales are equal (the SQL aggregate's path: the
 * input is decoded and checked once, then dst grows at most once to cover its buckets).
 * dst must be consistent (its count equal to its parts, as ww_hist_check_form() requires), so
 * that no bucket can pass 2^64 - 1 unless the counts' sum does. Returns 0, -EINVAL (with
 * *why; the input is invalid, whatever dst holds), -EOVERFLOW (count, zero_count,
 * underflow or overflow would pass 2^64 - 1) or -ENOMEM; dst is unchanged on every error. */
int ww_hist_merge_packed(ww_hist_t *dst, const uint8_t *p, size_t n, const char **why);

/* ww_hist_merge_packed for bytes that were checked whole once already (a value stored by
 * the SQL type, whose input functions check everything): the same result, without checking
 * again that the bucket codes' orders are the canonical ones, which costs as much as the
 * decoding (the SQL aggregate reads every row this way). Everything that keeps memory and
 * counts safe is still checked (each index within the scale's range and the range reserved,
 * the counts within count, the stream's length), so corrupt bytes give -EINVAL, never a
 * wrong write. */
int ww_hist_merge_stored(ww_hist_t *dst, const uint8_t *p, size_t n, const char **why);

#endif
