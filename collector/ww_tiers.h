/* ww_tiers: the collector's tier job: builds and keeps the storage tiers (migration 0018:
 * node_rollup_1m/_1h, site_rollup_1m/_1h, latency_node_1h) in its own thread with its own
 * PostgreSQL connection, every tiers.interval, and applies their retention.
 *
 * Each run: (1) ww_tier_advance moves the watermark to the minute of now - tiers.grace, in
 * its own transaction (it waits for the writes in flight, see ww_late.h); (2) ww_tier_build
 * builds what closed since, at most tiers.max_minutes minutes and tiers.max_late late
 * buckets per transaction, again and again until it has caught up (a backlog, the history
 * of an upgraded database) or the collector stops; (3) when compaction.age is set, the
 * compaction of raw samples (migration 0019): ww_compact, max_nodes node-hours per
 * transaction, until it has caught up, then ww_compact_clear empties each day's raw rows
 * once the whole day is compacted; (4) once an hour, the retention of the per-node tiers
 * (ww_drop_old_tiers) and of the compacted samples (ww_drop_old_compact). All SQL is
 * collector/sql/22_functions_compact.sql and 25_functions_tiers.sql.
 *
 * Every collector of a site may run it; one builds at a time: the one holding the session
 * advisory lock WW_TIERS_LOCK (taken with a try at each run, kept while the connection
 * lives, so another collector takes over within one interval of this one's death or lost
 * connection). A failed step is logged (once per outage) and tried again at the next run:
 * nothing is lost, the progress only moves with what was built. The figures of each run go
 * to metrics (NULL: none).
 */
#ifndef WW_TIERS_H
#define WW_TIERS_H

#include "ww_cmetrics.h"

#include <stdint.h>

/* The session advisory lock of the tier builder (the migrator's is 7870001; the watermark's
 * transaction lock 7870002, in 25_functions_tiers.sql). */
#define WW_TIERS_LOCK "7870003"

typedef struct {
    int64_t interval_ns; /* between runs */
    int64_t grace_ns;    /* a minute closes this long after its end */
    int64_t max_minutes; /* minutes built per transaction */
    int64_t max_late;    /* late buckets rebuilt per transaction, of each kind */
    /* Retention in days, 0 = keep: node_rollup_1m, node_rollup_1h, latency_node_1h. */
    int64_t node_minute_days, node_hour_days, latency_node_days;
    /* Compaction (migration 0019): an hour this old is compacted (0 = never), node-hours per
     * transaction; retention of node_samples_compact in days (0 = keep). */
    int64_t compact_age_ns, compact_max_nodes, compact_days;
    /* Retention of latency_windows in days once their hours are built (migration 0020;
     * 0 = keep). */
    int64_t window_days;
} ww_tiers_conf_t;

typedef struct ww_tiers ww_tiers_t;

/* Starts the thread; conf is copied. conninfo as pg.conninfo. The first run waits one
 * interval (the ingest path migrates the schema first). NULL on failure (logged). */
ww_tiers_t *ww_tiers_start(const ww_tiers_conf_t *conf, const char *conninfo,
                           ww_cmetrics_t *metrics);

/* Stops the thread (a transaction under way is finished or rolled back by PostgreSQL) and
 * frees; NULLs *self_p. Safe on NULL and twice. */
void ww_tiers_stop(ww_tiers_t **self_p);

#endif
