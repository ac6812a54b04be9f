/* collector_metrics: the collector's Prometheus families (/metrics) and its /healthz.
 *
 * collector_main creates it when metrics.listen is set and hands it to the receive loop
 * (ww_ingest_run) and the SLO evaluator (ww_slo_eval_start); without metrics.listen they
 * get NULL, and every publishing function is a no-op on NULL (no global instance). Values are
 * atomics: the receive loop, the SLO evaluator thread and the HTTP thread never wait for each
 * other.
 *
 * /healthz is 503 while PostgreSQL is not connected: from start until the store is first
 * ensured, and after a write that had to be retried until one succeeds.
 */
#ifndef WW_CMETRICS_H
#define WW_CMETRICS_H

#include "ww_metrics.h"
#include "ww_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ww_cmetrics ww_cmetrics_t;

/* The receive loop's own counters (totals since start). */
typedef struct {
    uint64_t received;            /* messages read from the socket */
    uint64_t malformed;           /* refused: undecodable */
    uint64_t invalid;             /* refused: failed validation (version, size, ranges...) */
    uint64_t forbidden;           /* refused: not allowed for the authenticated key */
    uint64_t refused_by_database; /* refused: PostgreSQL rejected the data */
    size_t pending;               /* received and not yet committed (held while retrying) */
    uint64_t pending_replies;     /* Pending answers sent (held, not committed yet) */
    /* Handshakes that failed (see ww_zmon.h), by reason: protocol, auth, no_detail. */
    uint64_t handshake_failures[3];
} ww_ingest_counts_t;

/* Registers the families. Returns NULL when out of memory. */
ww_cmetrics_t *ww_cmetrics_new(void);

/* The registry of the families, for listing them without serving (ww_metrics_markdown:
 * the --reference pages). Owned by self. */
const ww_metrics_t *ww_cmetrics_registry(const ww_cmetrics_t *self);

/* Serves /metrics and /healthz on `address` (see ww_metrics_server_new). Returns 0, or
 * -EINVAL with the reason in why (bad address, address in use, ...). */
int ww_cmetrics_serve(ww_cmetrics_t *self, const char *address, char *why, size_t why_cap);

/* Stops the server and frees; NULLs *self_p; safe on NULL and twice. Call it once the
 * threads that publish to it have stopped. */
void ww_cmetrics_destroy(ww_cmetrics_t **self_p);

/* Copies the receive loop's counters and the store's totals (receive loop thread). */
void ww_cmetrics_publish(ww_cmetrics_t *self, const ww_ingest_counts_t *c,
                         const ww_store_stats_t *st);

/* One ww_store_write of a group of n messages that took `seconds`: a committed one is
 * observed in the write duration histogram and sets the group size; any answer from
 * PostgreSQL but RETRY marks it up, RETRY marks it down. */
void ww_cmetrics_write(ww_cmetrics_t *self, ww_store_rc_t rc, size_t n, double seconds);

/* One written batch's sample-to-commit delay (writer thread). */
void ww_cmetrics_delay(ww_cmetrics_t *self, double seconds);

/* PostgreSQL connected (the store is ensured) or not. */
void ww_cmetrics_pg_up(ww_cmetrics_t *self, bool up);

/* One SLO evaluation (committed: ok) that took `seconds` (SLO evaluator thread). */
void ww_cmetrics_slo_evaluated(ww_cmetrics_t *self, bool ok, double seconds);

/* A fleet database's evaluation (collector.role fleet), once committed: the (site label,
 * phase) pairs it found stale. */
void ww_cmetrics_fleet_stale(ww_cmetrics_t *self, int64_t pairs);

/* The SLO evaluator's leadership (ww_slo_lease.h), after each poll of the lease: leader or
 * not, the term it holds or last saw, and took_over when this poll took the lease over. */
void ww_cmetrics_slo_leader(ww_cmetrics_t *self, bool leader, int64_t term, bool took_over);

/* One run of the tier builder (ww_tiers.h). */
typedef struct {
    bool ok;                    /* every step succeeded */
    bool leader;                /* this collector builds the tiers (holds the builder's lock) */
    double seconds;             /* the run's duration */
    uint64_t minutes, hours;    /* built forward */
    uint64_t rebuilt;           /* late buckets rebuilt */
    uint64_t dropped;           /* partitions dropped by retention */
    double behind_s;            /* how far the built minutes still are from the watermark */
    uint64_t compacted;         /* node-hours compacted into blocks */
    uint64_t compacted_samples; /* their samples */
    uint64_t cleared;           /* days of raw rows emptied after compaction */
    bool compacting;            /* compaction is on */
    double compact_behind_s;    /* how far compaction is from now - compaction.age */
} ww_tiers_cycle_t;

/* Publishes one tier builder run (tier builder thread). */
void ww_cmetrics_tiers(ww_cmetrics_t *self, const ww_tiers_cycle_t *c);

#endif
