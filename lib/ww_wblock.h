/* ww_wblock: the compact, canonical byte form of ONE node's latency windows of a stretch of
 * time (a "window block", typically a node-hour: ~360 windows of 10 s per model). A row of
 * latency_windows costs ~440 bytes in PostgreSQL (a 28-byte tuple header and line pointer,
 * the node and model as text, six bigints, the unique index's ~60 bytes, and the four packed
 * histograms, ~231 bytes); after a few hours the collector rewrites each node-hour as one
 * block (a bytea of ~221 bytes a window) in latency_windows_compact, read back through a
 * set-returning function with the columns of latency_windows.
 *
 * The rule that cannot bend: nothing is altered. Decoding gives back every window exactly:
 * its time, model, duration and counters bit for bit, and each histogram as the very bytes
 * of its canonical packed form (lib/ww_hist_pack.h), which are what the SQL type ww_hist
 * stores. Bytes that are not a valid block (hostile, cut short) are refused with a reason
 * naming the window and the part, never read out of bounds, and every histogram a decode
 * gives passes ww_hist_unpack() (a block cannot smuggle a non-canonical ww_hist into SQL).
 *
 * Why this form. The histograms' bucket bits are already near their entropy (Exp-Golomb,
 * ww_hist_pack.h); what repeats from window to window is around them: the head and flags
 * bytes (the same for every window of a model), the counts (the same number of requests in
 * TTFT, TPOT and e2e), and the doubles, 72 of the ~231 bytes. Latencies come from clocks
 * in nanoseconds, so a minimum or a maximum in seconds is almost always k / 1e9 exactly, and
 * a sum of such values is k / 1e9 give or take a few units in the last place: both are
 * written as k and that distance (~5 bytes instead of 8), checked to give the double back
 * bit for bit; any other double is written as its 8 bytes. Windows are taken in the
 * caller's order (the SQL aggregate sorts them by model, then time), so the time column is
 * a delta of deltas (a regular 10 s cadence costs a byte) and the model an index that is
 * only written when it changes; counters that are 0 (errors, timeouts) cost a bit, a
 * histogram's first bucket is written from the one before, and its bucket stream's length
 * is found by walking it.
 *
 * Format, version 1. varint: unsigned LEB128, minimal, at most 10 bytes, below 2^64.
 * zz(s) of an int64 s: (s << 1) ^ (s >> 63) as an unsigned varint (0, -1, 1, -2 .. as
 * 0, 1, 2, 3). Fixed-width fields are little-endian.
 *
 *   block  := u8 version (1) | varint n (1 .. WW_WBLOCK_MAX_WINDOWS) | varint m (models,
 *             1 .. WW_WBLOCK_MAX_MODELS) | m x (varint len (0 .. WW_WBLOCK_MAX_MODEL_LEN)
 *             | len bytes) | n x window
 *   window := u8 mask | [varint model index, when M_MODEL] | zz time
 *             | [dbl duration_s, when M_DUR] | [zz parts, when M_PARTS]
 *             | u8 zeros (bit c: counter c is 0 and not written; bits 6, 7 zero)
 *             | for each counter c not 0, in the order requests_ok, requests_error,
 *               requests_timeout, requests_rejected, prompt_tokens, output_tokens: zz c
 *             | hist(queue) hist(ttft) hist(tpot) hist(e2e)
 *   mask bits: 0..3 M_HEAD(k): histogram k's scale and flags differ from those of histogram
 *             k of the window before (for the first window: always set); 4 M_MODEL: the
 *             model is not the one before (first window: set); 5 M_DUR: duration_s is not
 *             the one before (first window: set); 6 M_PARTS: parts is not 1; 7 must be 0.
 *   time:     the first window's time in microseconds; then d_i = t_i - t_(i-1) and the
 *             window writes zz(d_i - d_(i-1)) (d_1 = 0), all modulo 2^64 as int64.
 *   hist(k) := [u8 scale | u8 flags, when M_HEAD(k)]   (flags: WW_HIST_PACK_F_*, saying
 *             which fields follow; the decoder rebuilds the packed form from the fields,
 *             whose flags then follow from the values, and checks it whole)
 *             | count: for k = 0 a varint, else zz(count_k - count_(k-1))
 *             | [varint count - zero_count, when F_ZERO] | [varint underflow, when F_UNDER]
 *             | [varint overflow, when F_OVER] | [u8 codes, when F_FINITE: the codes of
 *             sum, min, max in bits 0-1, 2-3, 4-5, 6-7 zero] | [dbl sum, when F_SUM]
 *             | [dbl min, when F_MIN] | [dbl max, when F_MAX] | varint nb
 *             | when nb > 0: zz(first - f) | u8 orders | the bucket bits, as many bytes as
 *               the nb codes take (ww_hist_pack_bits_len: no length is written), where f
 *               is the first index of histogram k in the last window before with buckets
 *               there (0 when none)
 *   dbl:      by its code (duration_s: a u8 code first): 0: 8 bytes, the double's bits;
 *             1: varint k and zz e, the double is the one whose bits are those of
 *             (double)k / 1e9 plus e; 2: likewise, negated; 3 refused. Code 1 and 2 only
 *             for finite non-zero doubles, and only when shorter than 8 bytes.
 * The encoder's choices are deterministic (one set of windows in one order, one block).
 */
#ifndef WW_WBLOCK_H
#define WW_WBLOCK_H

#include "ww_buf.h"

#include <stddef.h>
#include <stdint.h>

#define WW_WBLOCK_VERSION 1
#define WW_WBLOCK_NHIST 4 /* queue, ttft, tpot, e2e: latency_windows' order */
#define WW_WBLOCK_MAX_WINDOWS (1 << 20)
#define WW_WBLOCK_MAX_MODELS 4096
#define WW_WBLOCK_MAX_MODEL_LEN 1024

/* One window. hist[k] points at the canonical packed bytes of histogram k (what a SQL
 * ww_hist holds after its varlena header). */
typedef struct {
    int64_t time_us; /* the window's start, microseconds since 2000-01-01 (PostgreSQL's) */
    uint32_t model;  /* index into the block's models */
    int32_t parts;
    double duration_s;
    int64_t requests_ok, requests_error, requests_timeout, requests_rejected;
    int64_t prompt_tokens, output_tokens;
    const uint8_t *hist[WW_WBLOCK_NHIST];
    size_t hist_len[WW_WBLOCK_NHIST];
} ww_wblock_window_t;

/* The block of w[0 .. n) (n >= 1) with the models models[0 .. m) (model_len[i] bytes each;
 * every w[i].model < m), appended to out. Every histogram must be a valid packed one
 * (checked whole with ww_hist_unpack, so that no block is written that its decoder would
 * refuse). Returns 0, -EINVAL with why (naming the window and the part) or -ENOMEM. */
int ww_wblock_encode(const char *const *models, const size_t *model_len, size_t m,
                     const ww_wblock_window_t *w, size_t n, ww_buf_t *out, char *why,
                     size_t why_len);

/* The head of a block: its windows and models. 0 or -EINVAL. */
int ww_wblock_count(const uint8_t *p, size_t len, size_t *n, size_t *m);

/* The bytes a decode of a block of len bytes holding n windows may need in its arena: the
 * models' bytes and the histograms' packed forms (each at most its bits and a head). */
size_t ww_wblock_arena_bound(size_t len, size_t n);

/* Decodes p[0 .. len) into w[0 .. n) and models[0 .. m) / model_len (n and m as
 * ww_wblock_count gives them), the model names and the histograms' bytes written into
 * arena[0 .. arena_cap) (ww_wblock_arena_bound(len, n) is enough), which the pointers of w
 * and models point into. Returns 0, or -EINVAL with why, or -ENOMEM (the check of a
 * histogram could not allocate). */
int ww_wblock_decode(const uint8_t *p, size_t len, ww_wblock_window_t *w, size_t n,
                     const char **models, size_t *model_len, size_t m, uint8_t *arena,
                     size_t arena_cap, char *why, size_t why_len);

#endif
