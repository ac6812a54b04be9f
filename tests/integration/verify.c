/* verify: see verify.h. */
#include "verify.h"

#include "ww_agent_conf.h"
#include "ww_quant.h"
#include "ww_sim.h"
#include "ww_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Compares one stored row with the reading the agent sent (the simulated one, quantized);
 * true when every value is equal. */
static bool s_same(PGresult *r, int row, const ww_reading_t *w)
{
    /* A reading the node does not measure (its not_measured bit) is NULL, the others not. */
    static const struct {
        int col, pb;
    } cols[] = {{1, 3}, {2, 4},  {3, 5},  {4, 6},   {5, 7},   {6, 8},
                {7, 9}, {8, 10}, {9, 11}, {10, 14}, {11, 12}, {12, 13}};
    uint32_t nm = w->not_measured;
    for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++) {
        if (PQgetisnull(r, row, cols[k].col) != !!(nm & WW_FIELD_BIT(cols[k].pb))) {
            return false;
        }
    }
    const float got[] = {strtof(PQgetvalue(r, row, 1), NULL), strtof(PQgetvalue(r, row, 2), NULL),
                         strtof(PQgetvalue(r, row, 3), NULL), strtof(PQgetvalue(r, row, 4), NULL),
                         strtof(PQgetvalue(r, row, 5), NULL), strtof(PQgetvalue(r, row, 6), NULL),
                         strtof(PQgetvalue(r, row, 7), NULL), strtof(PQgetvalue(r, row, 12), NULL)};
    const float want[] = {w->power_w,         w->inlet_c,     w->outlet_c,     w->flow_lpm,
                          w->wafer_hotspot_c, w->utilization, w->tokens_per_s, w->throttle_factor};
    static const int want_pb[] = {3, 4, 5, 6, 7, 8, 9, 13};
    for (size_t f = 0; f < sizeof got / sizeof got[0]; f++) {
        if (!(nm & WW_FIELD_BIT(want_pb[f])) && got[f] != want[f]) {
            return false;
        }
    }
    /* humidity_pct: NULL when not measured (NaN), else the value */
    if (isnan(w->humidity_pct)
            ? !PQgetisnull(r, row, 13)
            : PQgetisnull(r, row, 13) || strtof(PQgetvalue(r, row, 13), NULL) != w->humidity_pct) {
        return false;
    }
    return ((nm & WW_FIELD_BIT(10)) ||
            atoll(PQgetvalue(r, row, 8)) == (long long)w->requests_queued) &&
           ((nm & WW_FIELD_BIT(11)) ||
            atoll(PQgetvalue(r, row, 9)) == (long long)w->requests_in_flight) &&
           ((nm & WW_FIELD_BIT(14)) ||
            atoll(PQgetvalue(r, row, 10)) == (long long)w->requests_completed) &&
           ((nm & WW_FIELD_BIT(12)) ||
            strcmp(PQgetvalue(r, row, 11), w->throttled ? "t" : "f") == 0);
}

void h_verify_sim(h_db_t *db, int argc, char **argv, int64_t first_tick, int64_t last_tick,
                  h_verify_t *out)
{
    memset(out, 0, sizeof *out);
    ww_agent_conf_t conf;
    memset(&conf, 0, sizeof conf);
    ww_cfg_err_t err;
    assert_int_equal(ww_cfg_parse_args(&ww_agent_schema, &conf, argc, argv, &err), WW_CFG_RUN);
    assert_int_equal(ww_agent_conf_finish(&conf, &err), 0);
    int64_t iv = conf.interval_ns;
    assert_true(last_tick >= first_tick);
    out->ticks = (last_tick - first_tick) / iv + 1;
    for (unsigned node = 0; node < (unsigned)conf.sim_nodes; node++) {
        char name[160], sql[768];
        ww_agent_node_name(&conf, node, name, sizeof name);
        snprintf(sql, sizeof sql,
                 "SELECT (extract(epoch from time) * 1000000)::bigint, power_w, inlet_c, outlet_c,"
                 " flow_lpm, wafer_hotspot_c, utilization, tokens_per_s, requests_queued,"
                 " requests_in_flight, requests_completed, throttled, throttle_factor,"
                 " humidity_pct"
                 " FROM node_samples WHERE node_id = '%s' AND time >= to_timestamp(%lld / 1e6)"
                 " AND time <= to_timestamp(%lld / 1e6) ORDER BY time",
                 name, (long long)(first_tick / 1000), (long long)(last_tick / 1000));
        PGresult *r = h_query(db, sql);
        int nrows = PQntuples(r);
        out->rows += nrows;
        void *sim = NULL;
        assert_int_equal(ww_sim_source.open(&conf.sim, node, first_tick, &sim), 0);
        int row = 0;
        for (int64_t t = first_tick; t <= last_tick; t += iv) {
            ww_reading_t want;
            memset(&want, 0, sizeof want);
            assert_int_equal(ww_sim_source.sample(sim, t, &want), 0);
            /* What the agent sent: each reading on its sensor's grid, as its tick does. */
            ww_quant_reading(&want);
            ww_request_t req[256];
            while (ww_sim_source.poll_requests(sim, req, 256) == 256) {
            }
            /* Rows before this tick that matched no tick are misplaced. */
            while (row < nrows && atoll(PQgetvalue(r, row, 0)) < t / 1000) {
                out->misplaced++;
                row++;
            }
            int found = 0;
            while (row < nrows && atoll(PQgetvalue(r, row, 0)) == t / 1000) {
                if (found == 0 && !s_same(r, row, &want)) {
                    out->altered++;
                }
                found++;
                row++;
            }
            if (found == 0) {
                out->lost++;
            } else {
                out->duplicated += found - 1;
            }
        }
        out->misplaced += nrows - row;
        ww_sim_source.close(&sim);
        PQclear(r);
    }
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(sum(skipped_ticks), 0) FROM stream_losses WHERE agent_id = '%s'",
             conf.agent_id);
    out->skipped = h_query_ll(db, sql) * conf.sim_nodes;
    ww_cfg_free(&ww_agent_schema, &conf);
}

int64_t h_verify_last_tick(const char *log, int64_t interval_ns)
{
    long long first = h_log_value(log, "agent ", "first_tick");
    long long ticks = h_log_value(log, "stats:", "ticks");
    long long skipped = h_log_value(log, "stats:", "skipped_ticks");
    assert_true(first > 0 && ticks > 0 && skipped >= 0);
    return first + (ticks + skipped - 1) * interval_ns;
}

void h_verify_assert_clean(const h_verify_t *v, const char *what)
{
    if (v->lost > v->skipped || v->duplicated || v->altered || v->misplaced) {
        fail_msg("%s: %lld ticks per node, %lld rows: %lld lost (%lld skipped by the agent), "
                 "%lld duplicated, %lld altered, %lld misplaced",
                 what, v->ticks, v->rows, v->lost, v->skipped, v->duplicated, v->altered,
                 v->misplaced);
    }
    if (v->lost > 0) {
        print_message("%s: %lld rows lost to ticks the agent skipped and reported\n", what,
                      v->lost);
    }
}

long long h_verify_rollups(h_db_t *db)
{
    /* The sums may differ in their last bits: float addition order. */
    return h_query_ll(
        db, "WITH m AS (SELECT date_trunc('minute', l.time) AS time,"
            " coalesce(n.phase, '') AS phase, l.model, count(*) AS windows,"
            " sum(l.requests_ok) AS ok, ww_hist_add(ww_merge(l.queue), NULL) AS queue,"
            " ww_hist_add(ww_merge(l.ttft), NULL) AS ttft,"
            " ww_hist_add(ww_merge(l.tpot), NULL) AS tpot,"
            " ww_hist_add(ww_merge(l.e2e), NULL) AS e2e"
            " FROM latency_windows l LEFT JOIN nodes n USING (node_id) GROUP BY 1, 2, 3)"
            " SELECT count(*) FROM m FULL JOIN latency_rollup_1m r USING (time, phase, model)"
            " WHERE r.windows IS DISTINCT FROM m.windows OR r.requests_ok <> m.ok"
            " OR ww_hist_counts(r.queue) IS DISTINCT FROM ww_hist_counts(m.queue)"
            " OR ww_hist_counts(r.ttft) IS DISTINCT FROM ww_hist_counts(m.ttft)"
            " OR ww_hist_counts(r.tpot) IS DISTINCT FROM ww_hist_counts(m.tpot)"
            " OR ww_hist_counts(r.e2e) IS DISTINCT FROM ww_hist_counts(m.e2e)"
            " OR ww_hist_offset(r.ttft) <> ww_hist_offset(m.ttft)"
            " OR ww_hist_offset(r.e2e) <> ww_hist_offset(m.e2e)"
            " OR ww_hist_scale(r.ttft) <> ww_hist_scale(m.ttft) OR ww_hist_count(r.ttft) <> "
            "ww_hist_count(m.ttft)"
            " OR ww_hist_min(r.ttft) IS DISTINCT FROM ww_hist_min(m.ttft)"
            " OR ww_hist_max(r.ttft) IS DISTINCT FROM ww_hist_max(m.ttft)"
            " OR ww_hist_zero_count(r.queue) <> ww_hist_zero_count(m.queue)"
            " OR abs(ww_hist_sum(r.e2e) - ww_hist_sum(m.e2e)) > 1e-9 * abs(ww_hist_sum(m.e2e))");
}

void h_verify_quantiles(h_db_t *db, const char *col, double *values, size_t n, const char *from)
{
    assert_true(n > 0);
    qsort(values, n, sizeof *values, ww_test_cmp_double);
    const double qs[] = {0.5, 0.9, 0.99};
    /* The histograms' bound at the scale they were merged at: 1% at the agent's (6, whose
     * bound is 0.54%), more when a histogram came coarser (an OTLP exporter's scale 5:
     * 1.08%). */
    char sql0[256];
    snprintf(sql0, sizeof sql0, "SELECT ww_hist_scale(ww_merge(%s)) FROM %s", col, from);
    double b = pow(2.0, pow(2.0, -(double)h_query_ll(db, sql0)));
    double bound = (b - 1) / (b + 1) * 1.0001;
    bound = bound > 0.01 ? bound : 0.01;
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        char sql[512];
        snprintf(sql, sizeof sql, "SELECT ww_quantile(ww_merge(%s), %g) FROM %s", col, qs[i], from);
        PGresult *r = h_query(db, sql);
        double got = strtod(PQgetvalue(r, 0, 0), NULL);
        PQclear(r);
        /* Nearest rank, the definition ww_quantile() uses. */
        size_t rank = (size_t)ceil(qs[i] * (double)n);
        double want = values[(rank < 1 ? 1 : rank) - 1];
        double err = fabs(got - want) / want;
        if (err > bound) {
            fail_msg("%s p%g from %s: SQL %.9g vs exact %.9g (%.3f%% off, bound %.3f%%)", col,
                     qs[i] * 100, from, got, want, err * 100, bound * 100);
        }
    }
}
