/* ww_late: the late buckets of one write transaction, for the storage tiers (migration
 * 0018, collector/ww_tiers.h).
 *
 * The tier job builds a minute once it is closed (older than the watermark) and never
 * reads it again by itself. A write that brings data older than that (a spool replayed
 * after an outage, a clock-skewed agent) must say which buckets it changed, in its own
 * transaction, so that the job rebuilds exactly those: for every written sample older than
 * the watermark, (node, minute); for every written latency window (or second part of one)
 * that starts before the watermark's hour, (node, hour). The write transaction reads the
 * watermark with WW_LATE_WATERMARK_SQL first (it also takes the tier lock, see
 * 25_functions_tiers.sql), collects the buckets here and inserts them with WW_LATE_SQL.
 *
 * Buckets are UTC minutes and hours, as Unix seconds. A batch's samples come in time order,
 * so a bucket repeated back to back is kept once; the rest of the duplicates are
 * harmless (ON CONFLICT DO NOTHING).
 *
 * A zeroed ww_late_t is empty and ready; ww_late_fini() frees it (safe twice). */
#ifndef WW_LATE_H
#define WW_LATE_H

#include "ww_buf.h"
#include "ww_wire.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t watermark_ns;        /* Unix ns: samples before are late */
    ww_buf_t tiers, nodes, secs; /* the three array literals of WW_LATE_SQL */
    size_t n;                    /* buckets collected */
    char last_tier;              /* the last bucket added, to skip its repeats */
    const char *last_node;
    int64_t last_s;
} ww_late_t;

/* Reads the watermark (one row, one bigint: Unix microseconds) after taking the tier lock
 * for the rest of the transaction. */
#define WW_LATE_WATERMARK_SQL                                                                      \
    "SELECT ((extract(epoch FROM w) * 1000000))::bigint FROM ww_tier_watermark() AS w"

/* Inserts the buckets: $1 tiers ('s' minute of samples, 'l' hour of latency), $2 node ids,
 * $3 Unix seconds of the buckets. A bucket already recorded by an earlier write is updated
 * in place, not skipped: the update locks its entry until this transaction ends, so a tier
 * builder taking (deleting) that entry meanwhile waits, and then sees this write's rows.
 * Skipped, the entry could be taken and rebuilt without them, and nothing would record
 * them again. DISTINCT and ordered: one update per entry, locked in one order by every
 * writer. */
#define WW_LATE_SQL                                                                                \
    "INSERT INTO ww_tier_dirty (tier, node_id, time)"                                              \
    " SELECT DISTINCT t::\"char\", n, to_timestamp(s)"                                             \
    " FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(t, n, s) ORDER BY 1, 3, 2"            \
    " ON CONFLICT (tier, time, node_id) DO UPDATE SET node_id = excluded.node_id"

/* Starts a transaction's collection: no bucket, the watermark given (Unix ns). */
void ww_late_begin(ww_late_t *l, int64_t watermark_ns);

/* Adds the late buckets of a written batch: its samples and its latency windows. */
void ww_late_batch(ww_late_t *l, const ww_batch_t *b);

/* Closes the collection and fills params with the three parameters of WW_LATE_SQL; returns
 * params, or NULL when out of memory. Call it once, after the last ww_late_batch (nothing to
 * insert when l->n == 0). The strings live until the next ww_late_begin or ww_late_fini. */
const char *const *ww_late_params(ww_late_t *l, const char *params[3]);

/* Frees the buffers; the struct is zeroed. */
void ww_late_fini(ww_late_t *l);

#endif
