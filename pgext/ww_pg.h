/* ww_pg: what the functions of the waferwatch extension share (ww_pg.c: the type and its
 * scalar functions; ww_pg_agg.c: the ww_merge aggregate). A ww_hist Datum is a varlena
 * whose payload is exactly the canonical bytes of ww_hist_pack() (ww_hist_pack.h); these
 * helpers move between that and a ww_hist_t whose buckets live in the current memory
 * context (lib/ww_hist.c allocates through ww_pg_alloc.h). Every error is an ereport. */
#ifndef WW_PG_H
#define WW_PG_H

#include "postgres.h"

#include "fmgr.h"

#include "ww_buf.h"
#include "ww_hist.h"

#include <stddef.h>
#include <stdint.h>

/* The payload of a ww_hist (or bytea) Datum, detoasted if it must be (a short header is
 * read in place, no copy): sets *n and returns the bytes. */
const uint8_t *ww_pg_bytes(Datum d, size_t *n);

/* Decodes the payload p[0 .. n) of a stored ww_hist into h (initialised here). A value
 * that fails the decoder's checks can only be corrupt storage: ERROR data_corrupted with
 * the decoder's reason; out of memory: ERROR. */
void ww_pg_unpack(const uint8_t *p, size_t n, ww_hist_t *h);

/* The ww_hist Datum (a palloc'd varlena in the current context) of h. Every counter must
 * fit a bigint: else ERROR numeric_value_out_of_range naming it, `fn` the SQL function
 * that made h. */
Datum ww_pg_pack(const ww_hist_t *h, const char *fn);

/* ERRORs numeric_value_out_of_range, naming the first part (a bucket, zero_count,
 * underflow, overflow, then count) of a + b past INT64_MAX; b NULL: of a itself. Returns
 * only when nothing is out of range. a and b may have different scales (the finer one is
 * reduced, as a merge would). */
void ww_pg_check_range(const char *fn, const ww_hist_t *a, const ww_hist_t *b);

/* ERRORs for a failed merge of the packed p[0 .. n) into dst (rc and why from
 * ww_hist_merge_packed): corrupt input, a counter out of range (named), out of memory. */
pg_attribute_noreturn() void ww_pg_merge_failed(const char *fn, int rc, const char *why,
                                                const ww_hist_t *dst, const uint8_t *p, size_t n);

/* The bytea of a block a codec encoded into out (ww_sblock_encode, ww_wblock_encode: rc and
 * why are what it returned), out freed in every case. rc < 0: ERROR, out of memory or
 * invalid_parameter_value with why, naming fn (the SQL aggregate) and the n items (`what`:
 * "samples", "windows"). The bytea is palloc'd in the current context. */
bytea *ww_pg_block_bytea(ww_buf_t *out, int rc, const char *why, const char *fn, const char *what,
                         size_t n);

#endif
