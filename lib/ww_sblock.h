/* ww_sblock: the compact, canonical byte form of a time-ordered run of ONE node's samples (a
 * "sample block", typically a node-hour: ~3,600 samples at 1 Hz). Raw node_samples rows cost
 * ~152 bytes each in PostgreSQL; after a few hours they are rewritten as one block per node
 * per hour, a varlena type of the waferwatch extension (pgext/: these bytes after its varlena
 * header), read back through a set-returning function with the columns of node_samples.
 *
 * The rule that cannot bend: nothing is altered. Decoding gives back exactly the bits that
 * were encoded: every float bit pattern (-0.0, denormals, NaN payloads, +-inf, values off any
 * grid), every integer, every time, every NULL. Bytes that are not a valid block (hostile,
 * cut short) are refused with a reason naming the column and the sample, never read out of
 * bounds; a bit changed inside a section may still be a valid block, of other samples (there
 * is no checksum: storage damage is for PostgreSQL's page checksums to find).
 *
 * Why this form. The block is column-wise (one section per column: the times, then each
 * reading field of proto/ww_fields.h in its order), so each column's regularity is visible
 * to its coder. A reading on its field's grid (WW_FIELD_RES_<name>: 1 W, 0.1 C, ...) is
 * stored as its grid index k, by zigzag deltas from the previous sample's k; times by
 * delta-of-delta (a regular 1 s cadence is all zeros). The deltas are Exp-Golomb codes (as in
 * ww_hist_pack: a 0 costs 1 bit at order 0) of an order chosen per column and block, either
 * one code per delta (PLAIN) or, when shorter, runs of zero deltas with a code per non-zero
 * one (RUNS: a column that does not move costs a couple of bytes per block). A value off the
 * grid is an escape, marked by runs of a per-sample flag that is absent, and costs nothing,
 * when a column has none; NULLs likewise. Escaped values keep their 32 bits, coded as deltas
 * of their order-preserving integer images: unquantized readings (an older agent, another
 * producer) cost the bits in which consecutive floats differ rather than 32 each.
 * bench/bench_sblock.c measures it on the simulator's readings against the entropy of their
 * deltas.
 *
 * Format, version 1. varint: unsigned LEB128, minimal (no trailing 0x80 0x00 groups), at most
 * 10 bytes, below 2^64. zigzag(s) of an int64 s: 0, -1, 1, -2, 2 .. as 0, 1, 2, 3, 4 ..
 * (s << 1 ^ s >> 63). Bit parts are written most significant bit first, each padded with zero
 * bits to a byte. EG(k) of x >= 0, k = 0 .. 63: with v = (x >> k) + 1 (below 2^64) and
 * L = floor(log2 v): L zero bits, v in L + 1 bits, then the low k bits of x (2 L + 1 + k bits;
 * so k = 0 cannot code 2^64 - 1).
 *
 *   block   := u8 version (1) | u8 nf (field columns: WW_READING_NFIELDS, 13 in this list)
 *              | varint n (samples, 0 .. WW_SBLOCK_MAX_SAMPLES)
 *              | when n > 0: section(time) section(field 1) .. section(field nf)
 *   section := varint len | body: exactly len bytes
 *
 * Two codings recur:
 *   RUNS over m > 0 bools: a head byte b_1 << 7 | k (b_1 the first bool, bit 6 zero, k the
 *     order), and a bit part: EG(k) of (length - 1) of each maximal run of equal bools, in
 *     order (they alternate, starting with b_1), covering exactly m.
 *   DELTAS over m > 0 values z_1 .. z_m (zigzag deltas): a head byte mode << 6 | k (mode 0
 *     PLAIN, 1 RUNS; 2 and 3 refused), for RUNS a second byte k_val (bits 6, 7 zero); and a
 *     bit part. PLAIN: EG(k) of each z. RUNS: pos = 0; while pos < m: EG(k) of r, the count of
 *     zeros that follow (pos + r <= m), pos += r; if pos == m stop; EG(k_val) of z - 1 for the
 *     non-zero z that follows, pos += 1. (A run is read before every non-zero value, 0 when
 *     two are adjacent; none after a last non-zero value.)
 *
 * time body (n >= 1; times non-decreasing):
 *   varint zigzag(t_1); n >= 2: varint d_2 = t_2 - t_1; n >= 3: DELTAS head over
 *   z_i = zigzag(d_i - d_(i-1)), i = 3 .. n, the difference taken modulo 2^64 as an int64 (so
 *   any non-decreasing int64 times code; a time past INT64_MAX is refused); its bit part.
 * field body (in WW_READING_FIELDS order):
 *   u8 head:  bit 0 NULLS (some sample is NULL: a reading not measured), bit 1 ESC (some value
 *             is off the grid: F32 only), bits 2-7 zero
 *   F32:      i8 e, the grid 10^e (WW_FIELD_RES_<name>; a block of another grid is refused)
 *   NULLS:    RUNS head over the n samples' "is NULL"
 *   ESC:      RUNS head over the non-NULL samples' "is off the grid"
 *   runs part (when NULLS or ESC): the RUNS bit part of NULLS, then that of ESC; padded
 *   ESC:      varint esc_len; a DELTAS head over the h escaped values' images y_1 .. y_h in
 *             sample order: z_j = zigzag(y_j - y_(j-1)), y_0 = 0, where the image of a float
 *             of bits u (binary32 as an unsigned integer) is u when u < 2^31, else
 *             2^31 - 1 - u (-0.0 is -1, the NaN of bits 0xffffffff is -2^31: a bijection of
 *             the 2^32 patterns onto [-2^31, 2^31) in the order of the numbers)
 *   the g values left (non-NULL and, for F32, on the grid), x_1 .. x_g:
 *     F32:  g >= 1: varint zigzag(k_1); g >= 2: DELTAS head over zigzag(k_j - k_(j-1))
 *     U32:  g >= 1: varint x_1;         g >= 2: DELTAS head over zigzag(x_j - x_(j-1))
 *     BOOL: g >= 1: RUNS head over x_1 .. x_g
 *   ESC:      escape part: exactly esc_len bytes, the escaped values' DELTAS bit part, padded
 *   value part: the values' DELTAS (F32, U32) or RUNS (BOOL) bit part, padded (no byte when
 *             it holds no bit).
 * An F32 value v is on the grid of exponent e when k = llround((double)v * 10^-e) has
 * |k| <= 2^50 and (float)((double)k * 10^e), the double product cast to float, is v bit for
 * bit (10^e, 10^-e: the double literals 1e<e>, 1e<-e>). Every other value is off the grid.
 * A NULL sample's value decodes as 0 (+0.0, false); the encoder ignores it.
 *
 * Canonical: one run of samples has one encoding, and the decoder accepts only it: minimal
 * varints; NULLS and ESC set exactly when some sample is NULL or off the grid; unused bits
 * zero (head bytes, padding); every order the one of least bits of its stream (the smallest
 * on ties; 0 for a stream without values; k = 0 not where a value is 2^64 - 1); RUNS mode
 * exactly when its bits (runs and values) plus 8 (its k_val byte) are fewer than PLAIN's; an
 * escaped value off the grid and a grid index the k of its value; esc_len and every section
 * length exact; nothing left over. Checked too: U32 in [0, INT32_MAX] (a PostgreSQL
 * integer), times within int64, |k| <= 2^50, the grids, nf, version, n. Equal samples give
 * equal bytes: comparing two blocks' bytes compares their samples bit for bit.
 *
 * Adding a field: nf says how many field columns a block holds, and this decoder refuses any
 * other count. A later list (fields are only ever appended) may read a block of fewer
 * columns with the fields it lacks NULL. (Before migration 0022 only OPTIONAL fields could be
 * NULL: a block of then has NULLS on those columns only, and reads the same.)
 *
 * Memory: no globals; nothing allocated but the growth of the caller's ww_buf by encode.
 * Every function is reentrant.
 */
#ifndef WW_SBLOCK_H
#define WW_SBLOCK_H

#include "ww_buf.h"
#include "ww_fields.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WW_SBLOCK_VERSION 1
/* The most samples a block may hold (an hour at 1 Hz is 3,600; a day 86,400). */
#define WW_SBLOCK_MAX_SAMPLES 1000000
/* Columns of a block: the time, then the fields. */
#define WW_SBLOCK_NCOLS (1 + WW_READING_NFIELDS)

/* One sample: the time, then one member per field of ww_fields.h (expanded from the list, in
 * its order, of the field's C type), each with a NULL flag <name>_null beside it (true: SQL
 * NULL, a reading not measured; the value is then ignored by encode, and 0 from decode).
 * time_us is a PostgreSQL timestamptz: microseconds since 2000-01-01 00:00 UTC. */
#define WW_SBLOCK_MEMBER_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)             \
    WW_FIELD_CTYPE(kind) name;                                                                     \
    bool name##_null;
typedef struct {
    int64_t time_us;
    WW_READING_FIELDS(WW_SBLOCK_MEMBER_)
} ww_sblock_sample_t;

/* One column as the codec sees it (ww_sblock_column()), for tests and tools. */
typedef struct {
    const char *name;     /* "time_us", then the field's name */
    ww_field_kind_t kind; /* the field's kind (time_us: U32, unused) */
    bool optional;        /* has a <name>_null flag */
    size_t off, null_off; /* offsetof the member, and of its NULL flag (optional only) */
    double res;           /* WW_FIELD_RES_<name> (time_us: 1) */
} ww_sblock_column_t;

/* Column i (0: time_us, 1 .. WW_READING_NFIELDS: the fields in list order), NULL past the
 * end. */
const ww_sblock_column_t *ww_sblock_column(size_t i);

/* v quantized to resolution res (a power of ten of ww_fields.h): what the agent sends
 * (agent/ww_quant.c), so that readings take the fast path. It is
 *   (float)((double)llround((double)v / res) * res),
 * or v itself when v is not finite or too large for the grid (|v / res| > 2^50). */
float ww_sblock_quantize(float v, double res);

/* The grid of res = 10^e, e in [-9, 9], exactly as the codec sees it: whether v is on it,
 * with its index *k (false for another res), and the value of index k (NaN for another res
 * or |k| > 2^50). */
bool ww_sblock_grid_index(float v, double res, int64_t *k);
float ww_sblock_grid_value(int64_t k, double res);

/* Appends the block of s[0 .. n) to out (n = 0 is allowed; s may then be NULL). Samples must
 * be in non-decreasing time order (two samples of one node may share a time) and every U32
 * field in [0, INT32_MAX]. Returns 0; -EINVAL when they are not or n is past
 * WW_SBLOCK_MAX_SAMPLES (nothing appended; when why is not NULL, why[0 .. why_cap) gets a
 * sentence naming the column and the sample); -ENOMEM when out ran out of memory (out->oom
 * is set, as ww_buf does). Canonical and deterministic: equal samples (bit for bit, the
 * values of NULL samples ignored) give equal bytes. */
int ww_sblock_encode(const ww_sblock_sample_t *s, size_t n, ww_buf_t *out, char *why,
                     size_t why_cap);

/* The count of samples of the block p[0 .. len), from its head (version, nf, n), which it
 * checks; nothing else (ww_sblock_decode and ww_sblock_iter_init check everything). 0 or
 * -EINVAL. */
int ww_sblock_count(const uint8_t *p, size_t len, size_t *n);

/* Checks the whole block p[0 .. len) and decodes it into out[0 .. cap); *n gets the count of
 * samples. Returns 0; -EINVAL when the block is invalid or not canonical (why as above: the
 * column, the sample, what is wrong; out's content is then unspecified); -ENOBUFS when the
 * block is valid but cap is below its count (*n gets the count; out is left alone). */
int ww_sblock_decode(const uint8_t *p, size_t len, ww_sblock_sample_t *out, size_t cap, size_t *n,
                     char *why, size_t why_cap);

/* ---- one sample at a time (for a set-returning SQL function) ------------------------ */

/* Private: the state of an iterator, declared here so that one can live on the stack or in a
 * caller's memory context (~5 KiB). Use it only through the functions below. */
typedef struct {
    const uint8_t *p; /* the bytes of the part and their count */
    size_t len, pos;  /* pos: the next byte to load (past len: zeros) */
    uint64_t cache;   /* the next bits, at the top */
    int avail;        /* valid bits in cache */
} ww_sblock_br_t;

typedef struct {
    ww_sblock_br_t br;
    uint64_t left; /* bools still to give */
    uint64_t run;  /* left in the current run */
    uint8_t k;
    bool bit; /* the current run's value */
} ww_sblock_runs_t;

typedef struct {
    ww_sblock_br_t br;
    uint64_t left;  /* values still to give */
    uint64_t zeros; /* RUNS: zeros left before the next non-zero value */
    uint8_t mode, k, k_val;
    bool need_run; /* RUNS: a run length comes next */
} ww_sblock_deltas_t;

typedef struct {
    uint8_t head;
    int8_t e;      /* F32: the grid's exponent */
    bool first;    /* the next value is x_1 */
    int64_t x;     /* the previous value (k, u, time) */
    int64_t y;     /* F32: the previous escaped value's image */
    uint64_t d;    /* time: the previous difference */
    uint64_t d2;   /* time: d_2 */
    uint64_t g, h; /* values, escaped values */
    ww_sblock_runs_t nul, esc, bools;
    ww_sblock_deltas_t dz, dy; /* the values' deltas, the escaped values' */
} ww_sblock_col_t;

typedef struct {
    size_t n, i; /* samples in the block, samples given */
    ww_sblock_col_t col[WW_SBLOCK_NCOLS];
} ww_sblock_iter_t;

/* Checks the whole block p[0 .. len), as ww_sblock_decode does (no allocation), and prepares
 * *it to give its samples in order. The bytes must stay in place until the last
 * ww_sblock_iter_next(). Returns 0, or -EINVAL with why as above (then *it gives nothing). */
int ww_sblock_iter_init(ww_sblock_iter_t *it, const uint8_t *p, size_t len, char *why,
                        size_t why_cap);

/* The count of samples of the block (after a successful init; 0 after a failed one). */
size_t ww_sblock_iter_count(const ww_sblock_iter_t *it);

/* Writes the next sample into *s and returns true, or returns false when all were given.
 * Cannot fail: ww_sblock_iter_init checked the whole block. */
bool ww_sblock_iter_next(ww_sblock_iter_t *it, ww_sblock_sample_t *s);

#endif
