/* verify: checks the node_samples an agent run stored against a replay of the same
 * deterministic simulation, tick by tick: a missing tick is lost, a tick stored twice is
 * duplicated, a stored value that differs from what the agent sent for the simulation's
 * reading (each reading quantized to its sensor resolution by ww_quant_reading, the agent's
 * own step, so that the comparison stays exact) is altered. This is the oracle of the
 * pipeline and delivery tests; tests/integration/test_delivery.c shows it catches each kind
 * of damage. Ticks the agent skipped (and reported) are lost rows it explains. */
#ifndef WW_VERIFY_H
#define WW_VERIFY_H

#include "harness.h"

#include <stdint.h>

typedef struct {
    long long ticks;      /* ticks per node in [first, last] */
    long long rows;       /* rows found in range */
    long long lost;       /* (node, tick) pairs with no row */
    long long duplicated; /* extra rows for a (node, tick) */
    long long altered;    /* rows whose values differ from the simulation */
    long long misplaced;  /* rows in range not on a tick */
    long long skipped;    /* (node, tick) pairs the agent said it did not sample: its
                             stream_losses.skipped_ticks (all its epochs) times its nodes */
} h_verify_t;

/* argv/argc: the agent's command line (its configuration decides nodes, seed, interval).
 * first_tick: the run's first tick (the agent logs first_tick=); last_tick: its last. */
void h_verify_sim(h_db_t *db, int argc, char **argv, int64_t first_tick, int64_t last_tick,
                  h_verify_t *out);

/* The last tick of an agent run from its log: first_tick plus its ticks, sampled or skipped
 * (the stats line's ticks and skipped_ticks), less one, at interval_ns. */
int64_t h_verify_last_tick(const char *log, int64_t interval_ns);

/* Fails the test with the counts unless nothing was duplicated or altered and every row
 * lost is one the agent said it skipped (a machine stalled past its catch-up window: the
 * agent skips those ticks, counted; the tests that check skips check them exactly). */
void h_verify_assert_clean(const h_verify_t *v, const char *what);

/* The rows of latency_rollup_1m (the per-minute rollups the collector merges as it writes)
 * that differ from what SQL's ww_merge makes of the stored latency windows, with the rows
 * either side lacks: 0 when every rollup is exact. */
long long h_verify_rollups(h_db_t *db);

/* Fails the test unless the p50, p90 and p99 of column col (a ww_hist) merged over `from`
 * (a table, or a subquery with an alias) are within 1% of the nearest-rank quantiles of
 * values[0..n) (sorted here, in place): the histogram's bound is 0.542%. */
void h_verify_quantiles(h_db_t *db, const char *col, double *values, size_t n, const char *from);

#endif
