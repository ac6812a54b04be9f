/* ww_copy: the encoder of PostgreSQL's binary COPY format for the collector's tables, kept
 * apart from the connection so that it can be checked byte for byte without a server.
 *
 * Format (PostgreSQL docs, "COPY ... Binary Format"): an 11-byte signature
 * "PGCOPY\n\377\r\n\0", a 32-bit flags word (0) and a 32-bit header-extension length (0);
 * then per row a 16-bit field count and per field a 32-bit length (-1: NULL) and that many
 * bytes; then the 16-bit trailer -1. Every integer is big-endian; float4/float8 are their
 * IEEE bits, big-endian; timestamptz is int8 microseconds since 2000-01-01 UTC; a ww_hist
 * (the base type of the waferwatch extension, pgext/) is the bytes its receive function
 * takes, the packed form of lib/ww_hist_pack.h.
 *
 * Nothing is altered on its way into a column: a count that does not fit its (signed)
 * column sets `range`, and the caller refuses the write (WW_STORE_REJECT), never clamps.
 * Out of memory sets buf.oom (sticky): the caller checks both once, after ww_copy_end().
 */
#ifndef WW_COPY_H
#define WW_COPY_H

#include "ww_buf.h"
#include "ww_fields.h"
#include "ww_hist.h"
#include "ww_wire.h"

#include <stdbool.h>
#include <stdint.h>

/* The columns of node_samples a sample row fills, in its field order: time, node_id, then
 * the reading fields of proto/ww_fields.h in its order. */
#define WW_SAMPLE_COLUMNS "time, node_id" WW_READING_COLUMNS
#define WW_SAMPLE_NCOLS (2 + WW_READING_NFIELDS)

/* The columns of latency_windows (and of its staging table) a window row fills. */
#define WW_LATENCY_COLUMNS                                                                         \
    "time, node_id, model, duration_s, requests_ok, requests_error, requests_timeout, "            \
    "requests_rejected, prompt_tokens, output_tokens, queue, ttft, tpot, e2e"
#define WW_LATENCY_NCOLS 14

/* One COPY stream being built. Zeroed (`= {0}`) it is empty; its memory is kept across
 * ww_copy_begin() for reuse and released by ww_copy_fini(). */
typedef struct {
    ww_buf_t buf;
    bool range; /* a value did not fit its column: refuse the write, never clamp */
} ww_copy_t;

/* Empties the stream (clearing oom and range, keeping the memory) and writes the header. */
void ww_copy_begin(ww_copy_t *c);

/* Writes the trailer: the stream is then complete in c->buf.p[0..c->buf.len). */
void ww_copy_end(ww_copy_t *c);

/* Frees the memory; safe twice. */
void ww_copy_fini(ww_copy_t *c);

/* Microseconds since 2000-01-01 (PostgreSQL's timestamptz epoch) of ns since 1970, rounded
 * towards minus infinity. */
int64_t ww_copy_pg_time(int64_t unix_ns);

/* Big-endian integers, as they are (no field length). */
void ww_copy_put16(ww_copy_t *c, uint16_t v);
void ww_copy_put32(ww_copy_t *c, uint32_t v);
void ww_copy_put64(ww_copy_t *c, uint64_t v);

/* Fields, each with its length: text (the string's bytes, no NUL); int8 (sets range above
 * INT64_MAX); a ww_hist of the waferwatch extension, whose binary form is the packed bytes
 * of lib/ww_hist_pack.h (sets range when h cannot be packed: invalid, or a count above
 * INT64_MAX). */
void ww_copy_field_text(ww_copy_t *c, const char *s);
void ww_copy_field_i8(ww_copy_t *c, uint64_t v);
void ww_copy_field_hist(ww_copy_t *c, const ww_hist_t *h);

/* One node_samples row (WW_SAMPLE_COLUMNS), a field per entry of ww_fields.h by its kind:
 * F32 float4, U32 int4 (a count above INT32_MAX sets range), BOOL bool; an OPTIONAL field
 * the sample does not carry, and an ALWAYS one its not_measured marks, is NULL. */
void ww_copy_sample(ww_copy_t *c, const ww_node_sample_t *s);

/* One latency_windows row (WW_LATENCY_COLUMNS): duration in seconds, counts as int8, the
 * four histograms as ww_hist (packed; a missing one as an empty histogram). The window is
 * expected validated (ww_hist_from_pb bounds the span). */
void ww_copy_window(ww_copy_t *c, const Waferwatch__V1__LatencyWindow *w);

#endif
